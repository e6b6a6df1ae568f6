"""Model migration: rows/s of `collection.migrate` vs a fresh load of the same texts with the new model, and search
latency during the migration vs before (embedded seekdb, real Debian descriptions, MiniLM as the new model).

    .venv/bin/python benchmarks/migrate.py            # 20,000 rows (the issue's figure)
    .venv/bin/python benchmarks/migrate.py --quick    # 2,000 rows (<= 5 min on an idle 2-core box)
    .venv/bin/python benchmarks/migrate.py --rows 100 # smoke

The fresh load is what ingest does per batch (embed the texts, upsert the rows) in the same batches, in the same
process: half of it before the migration and half after, so a load change on a shared machine hits both sides.
The old vectors are random (a bare-dimension collection), only the new model's work counts. Goals: migration
rows/s >= 0.9x the fresh load's; search p50 during the migration vs before is reported as a ratio.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpuload import Load

_ROOT = Path(__file__).resolve().parent.parent
DATA = next((p / "shared" / "data" / "debian-descriptions" for p in (_ROOT.parent, _ROOT.parent.parent)
             if (p / "shared" / "data" / "debian-descriptions").is_dir()), _ROOT.parent / "shared")


def texts(n: int) -> list[tuple[str, str]]:
    out = []
    with gzip.open(DATA / "en_corpus.jsonl.gz", "rt") as f:
        for line in f:
            r = json.loads(line)
            out.append((r["id"], r["text"]))
            if len(out) >= n:
                break
    return out


QPS = 10
"""Searches per second beside the migration (and before it): a steady light load, not a tight loop that would
take a core from the migration it is measuring."""


def searches(coll, stop: threading.Event | None, n: int, dim: int) -> list[float]:
    rng = np.random.default_rng(1)
    lat: list[float] = []
    while (stop is not None and not stop.is_set()) or (stop is None and len(lat) < n):
        q = rng.standard_normal(dim).astype(np.float32)
        t = time.perf_counter()
        coll.search(q, k=10)
        lat.append(time.perf_counter() - t)
        time.sleep(max(0.0, 1 / QPS - lat[-1]))
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--quick", action="store_true", help="2,000 rows")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    n = 2000 if args.quick else args.rows
    import obembed

    model = obembed.load("st:all-MiniLM-L6-v2")
    rows = texts(n)
    rng = np.random.default_rng(0)
    old = rng.standard_normal((len(rows), 384)).astype(np.float32)
    old /= np.linalg.norm(old, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as d, obembed.connect(d) as store:
        coll = store.create_collection("mig", 384)
        coll.upsert([{"id": i, "content": t, "vector": v} for (i, t), v in zip(rows, old, strict=True)])
        before = searches(coll, None, 100, 384)

        fresh = store.create_collection("fresh", model)
        half = (len(rows) // 2 // args.batch) * args.batch or len(rows)

        def fresh_load(part_rows: list[tuple[str, str]]) -> Load:
            with Load() as lf:
                for s in range(0, len(part_rows), args.batch):
                    part = part_rows[s:s + args.batch]
                    vecs = model.embed_documents([t for _, t in part])
                    fresh.upsert([{"id": i, "content": t, "vector": v}
                                  for (i, t), v in zip(part, vecs, strict=True)])
            return lf

        lf1 = fresh_load(rows[:half])

        stop = threading.Event()
        during: list[float] = []
        th = threading.Thread(target=lambda: during.extend(searches(coll, stop, 0, 384)))
        th.start()
        with Load() as lm:
            coll.migrate(model, batch_size=args.batch)
        stop.set()
        th.join()
        lf2 = fresh_load(rows[half:]) if half < len(rows) else None
    f_wall = lf1.wall + (lf2.wall if lf2 else 0.0)
    f_ours = lf1.ours + (lf2.ours if lf2 else 0.0)
    f_others = lf1.others + (lf2.others if lf2 else 0.0)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "")
    print(f"cpu {cpu}; avx512f {'avx512f' in flags}, avx_vnni {'avx_vnni' in flags}, "
          f"avx512_vnni {'avx512_vnni' in flags}")
    print(f"rows {len(rows)}, batch {args.batch}, {os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.1f}")
    print(f"fresh load  {len(rows) / f_wall:8.1f} rows/s  (half before, half after the migration; ours "
          f"{f_ours:.0f} CPU-s, others {f_others:.0f} CPU-s)")
    print(f"migration   {len(rows) / lm.wall:8.1f} rows/s  (ours {lm.ours:.0f} CPU-s, others {lm.others:.0f} CPU-s; "
          f"{QPS} searches/s ran beside it)")
    print(f"ratio migration/fresh: {f_wall / lm.wall:.2f}x (goal >= 0.9x)")
    b, m = statistics.median(before), statistics.median(during) if during else float("nan")
    print(f"search p50 before {b * 1e3:.1f} ms, during {m * 1e3:.1f} ms ({len(during)} searches): "
          f"ratio {m / b:.2f}x")


if __name__ == "__main__":
    main()
