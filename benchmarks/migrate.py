"""Model migration: rows/s of `collection.migrate` vs a fresh load of the same texts with the new model, and search
latency during the migration vs before (embedded seekdb, real Debian descriptions, MiniLM as the new model).

    .venv/bin/python benchmarks/migrate.py            # 20,000 rows (the issue's figure; ~25 min on an idle 2-core box)
    .venv/bin/python benchmarks/migrate.py --quick    # 2,000 rows (<= 5 min on an idle 2-core box)
    .venv/bin/python benchmarks/migrate.py --rows 100 # smoke

The fresh load is what ingest does per batch (embed the texts, upsert the rows) in the same batches, in the same
process: half of it before the migration and half after, so a load change on a shared machine hits both sides.
Both sides run with the same search load beside them (10 searches/s against the collection being migrated): a
fresh load is the alternative to a migration only while the old collection keeps serving, and at 20,000 rows each
search is an exact scan of ~50-70 ms (obembed searches exactly up to 20,000 rows), a third of a core that neither
side may be spared. The old vectors are random (a bare-dimension collection), only the new model's work counts.
Rows: the English descriptions (16,655), then the Japanese ones (2,820), then English ones again under other ids
with a marker (distinct texts) up to ``--rows``. Goals: migration rows/s >= 0.9x the fresh load's; search p50
during the migration vs before is reported as a ratio.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpuload import Load, quiet_engine

_ROOT = Path(__file__).resolve().parent.parent
DATA = next((p / "shared" / "data" / "debian-descriptions" for p in (_ROOT.parent, _ROOT.parent.parent)
             if (p / "shared" / "data" / "debian-descriptions").is_dir()), _ROOT.parent / "shared")


def texts(n: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name in ("en", "ja"):
        with gzip.open(DATA / f"{name}_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                out.append((f"{name}:{r['id']}", r["text"]))  # the two sets share package names
                if len(out) >= n:
                    return out
    first = len(out)
    for i in range(n - first):  # more rows than the data set has: English texts again, distinct ids and texts
        rid, text = out[i % first]
        out.append((f"{rid}#again{i // first}", f"{text} (again)"))
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
        quiet_engine(store)  # the load's own dump and merges are over: "before" is the collection at rest
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

        def beside(work: Callable[[], Load | None]) -> tuple[Load | None, list[float]]:
            """``work()`` with QPS searches against the old collection beside it; its Load and the latencies."""
            stop = threading.Event()
            lat: list[float] = []
            th = threading.Thread(target=lambda: lat.extend(searches(coll, stop, 0, 384)))
            th.start()
            try:
                return work(), lat
            finally:
                stop.set()
                th.join()

        lf1, lat_f1 = beside(lambda: fresh_load(rows[:half]))

        def migrate() -> Load:
            with Load() as lm:
                coll.migrate(model, batch_size=args.batch)
            return lm

        lm_, during = beside(migrate)
        assert lm_ is not None
        lm = lm_
        lf2, lat_f2 = beside(lambda: fresh_load(rows[half:]) if half < len(rows) else None)
        fresh_lat = lat_f1 + lat_f2
    f_wall = lf1.wall + (lf2.wall if lf2 else 0.0)
    f_ours = lf1.ours + (lf2.ours if lf2 else 0.0)
    f_others = lf1.others + (lf2.others if lf2 else 0.0)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    flags = next((ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")), "")
    print(f"cpu {cpu}; avx512f {'avx512f' in flags}, avx_vnni {'avx_vnni' in flags}, "
          f"avx512_vnni {'avx512_vnni' in flags}")
    print(f"rows {len(rows)}, batch {args.batch}, {os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.1f}")
    print(f"fresh load  {len(rows) / f_wall:8.1f} rows/s  (half before, half after the migration; ours "
          f"{f_ours:.0f} CPU-s, others {f_others:.0f} CPU-s; {QPS} searches/s ran beside it)")
    print(f"migration   {len(rows) / lm.wall:8.1f} rows/s  (ours {lm.ours:.0f} CPU-s, others {lm.others:.0f} CPU-s; "
          f"{QPS} searches/s ran beside it)")
    print(f"ratio migration/fresh: {f_wall / lm.wall:.2f}x (goal >= 0.9x)")
    b, m = statistics.median(before), statistics.median(during) if during else float("nan")
    fl = statistics.median(fresh_lat) if fresh_lat else float("nan")
    print(f"search p50 before {b * 1e3:.1f} ms, during the migration {m * 1e3:.1f} ms ({len(during)} searches): "
          f"ratio {m / b:.2f}x; during the fresh load {fl * 1e3:.1f} ms ({len(fresh_lat)} searches)")


if __name__ == "__main__":
    main()
