"""Ray ingest benchmark: `obembed ingest --engine ray` vs the local pipeline, the sink vs the store's upsert.

usage:
  python benchmarks/ray_ingest.py [--n 2000] [--repeat 1] [--actors N] [--dsn DSN]
  python benchmarks/ray_ingest.py --quick          # n=300, for a quick rerun

All in ONE process, against ONE seekdb server (started here from the pylibseekdb wheel by
scripts/seekdb-server.sh, or --dsn), interleaved per round:

ingest : N dev texts of the Debian corpus (seeded sample) as one .jsonl, into a fresh collection each time.
         local = the local pipeline (``Ingestor``, what ``obembed ingest --dsn`` runs; the baseline);
         ray   = ``obembed.ray.ingest`` (what ``obembed ingest --engine ray`` runs) on a local Ray runtime that is
                 already up. Ratio = ray rows/s / local rows/s. Ray's fixed start cost (``ray.init`` of a local
                 runtime) is measured once, separately, and not inside the ray figure.
actor  : one embedding actor's own rate (``embed()`` with concurrency=1, num_cpus=1: N texts minus 16 texts, so
         the actor's start and model load cancel out): the per-actor figure of docs/scale-out.md's sizing table.
sink   : the database write rate alone: N rows with precomputed vectors written by ``write_collection`` (a
         materialized dataset, no index) vs ``Collection.upsert`` of the same rows in the same batch size
         (goal: sink ≥ 0.9× upsert), rounds alternating which goes first, each measurement started from the same
         engine state (``quiet_engine``: memtable frozen, machine quiet; without it every second write pays for
         dumping the one before, whichever path it belongs to: ~3.6 s vs ~8 s at 2,000 rows). The first write of the
         Ray runtime (its write workers start, import obembed, connect) is measured once, separately, like Ray's
         start; Ray's fixed cost of every write job (a 16-row job each round) is printed apart, with the sink's
         marginal rate (N - 16 rows over the difference in wall time), as the actor's rate is measured.
index  : index-then-load (collection created with its HNSW index, then N rows upserted) vs load-then-index
         (no index, N rows upserted, then ``create_index``): what the sink does for a new collection.

Every phase prints the CPU time other processes used meanwhile (benchmarks/_cpuload.py).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# the shared data folder sits beside the checkout (or beside the folder of worktrees)
DATA = next((p / "shared" / "data" / "debian-descriptions" for p in ROOT.parents
             if (p / "shared" / "data" / "debian-descriptions").is_dir()),
            ROOT.parent / "shared" / "data" / "debian-descriptions")

from _cpuload import Load, quiet_engine  # noqa: E402


def corpus(n: int) -> list[dict[str, Any]]:
    with gzip.open(DATA / "en_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    random.Random(11).shuffle(docs)
    return docs[:n]


def start_server(tmp: Path) -> tuple[str, Path]:
    folder = tmp / "seekdb"
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run(["bash", str(ROOT / "scripts" / "seekdb-server.sh"), "start", str(folder)], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1], folder


def stop_server(folder: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", str(ROOT / "scripts" / "seekdb-server.sh"), "stop", str(folder)], env=env, check=False)


class ActorMemory:
    """Peak resident memory (VmRSS, MiB) of the embedding actor processes, sampled every 0.5 s."""

    def __init__(self) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    if b"MapBatches(Embedder)" not in Path(f"/proc/{d}/cmdline").read_bytes():
                        continue
                    for line in Path(f"/proc/{d}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak = max(self.peak, int(line.split()[1]) / 1024)
                except OSError:
                    continue
            self._stop.wait(0.5)

    def __enter__(self) -> ActorMemory:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def local_ingest(store: Any, provider: Any, name: str, path: Path, batch: int) -> Any:
    from obembed.ingest.loaders import LoadOptions
    from obembed.ingest.pipeline import Ingestor, open_collection

    coll = open_collection(store, name, provider)
    return Ingestor(coll, provider, options=LoadOptions(columns=dict(coll.columns)),
                    batch_size=batch).run([str(path)])


def sizing_table(per_actor: float, cap: float) -> str:
    """docs/scale-out.md's table from this run's two measured figures: one actor's texts/s (``actor``) and the
    database's write rate (``sink``, this machine's seekdb server). The rest is arithmetic: the actors' sum
    assumes every actor core is as fast as this one's (CPU actors, one per core minus one per machine)."""
    lines = [f"measured: one actor {per_actor:.1f} texts/s (num_cpus=1), database write cap {cap:.0f} rows/s "
             "(the sink into this machine's seekdb server); extrapolated: the rest",
             "", "| machines x cores | actors | actors' sum (extrapolated) | with the measured cap | 10 M chunks |",
             "| --- | --- | --- | --- | --- |"]
    for machines, cores in ((1, 2), (1, 8), (4, 8), (16, 8)):
        actors = machines * max(1, cores - 1)
        rate = actors * per_actor
        capped = min(rate, cap)
        hours = 10_000_000 / capped / 3600
        lines.append(f"| {machines} x {cores} | {actors} | {rate:.0f} rows/s | {capped:.0f} rows/s"
                     f"{' (database-bound)' if rate > cap else ''} | {hours:.0f} h |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="n=300")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--actors", type=int, default=None, help="embedding actors (default: CPUs - 1, at least 1)")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--dsn", default=None, help="use this server instead of starting one")
    ap.add_argument("--index-rows", type=int, default=20000, help="rows of the index-order comparison")
    ap.add_argument("--phases", default="ingest,actor,sink,index",
                    help="comma-separated: ingest, actor, sink, index")
    args = ap.parse_args()
    if args.quick:
        args.n, args.index_rows = 300, 5000
    phases = set(args.phases.split(","))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import numpy as np
    import ray

    import obembed
    import obembed.ray as obray
    from obembed.ray.embed import load_bulk_provider
    from obembed.ray.ingest import ensure_ray

    docs = corpus(args.n)
    provider = load_bulk_provider("st:all-MiniLM-L6-v2")
    provider.embed([d["text"] for d in docs[:16]])  # load + warm up (and make the ONNX export if missing)
    print(f"model {provider.spec} ({getattr(provider, 'runtime', '?')}), n={args.n}", flush=True)
    with tempfile.TemporaryDirectory(prefix="obembed-raybench-") as tmpd:
        tmp = Path(tmpd)
        folder = None
        dsn = args.dsn
        if dsn is None:
            with Load() as ls:
                dsn, folder = start_server(tmp)
            print(f"seekdb server up in {ls.wall:.1f} s", flush=True)
        path = tmp / "dev.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({"id": d["id"], "text": d["text"]}, ensure_ascii=False) + "\n")
        store = obembed.connect(dsn)
        try:
            with Load() as lr:
                for attempt in range(3):  # a raylet on a busy machine can miss Ray's own start-up window
                    try:
                        ensure_ray()  # as obembed ingest --engine ray starts a local Ray
                        break
                    except Exception:
                        ray.shutdown()
                        if attempt == 2:
                            raise
            ray.data.DataContext.get_current().enable_progress_bars = False
            print(f"Ray fixed start (local ray.init): {lr.wall:.1f} s; {lr.describe()}", flush=True)
            result: list[str] = [f"Ray start {lr.wall:.1f} s (not in the ray figure)"]
            per_actor: float | None = None
            cap: float | None = None
            if "actor" in phases:
                # one embedding actor's own rate (the sizing table's per-actor figure): N texts vs 16 texts through
                # embed() with one actor of num_cpus=1; the difference removes the actor's start and model load
                small = ray.data.from_items([{"text": d["text"]} for d in docs[:16]]).materialize()
                full = ray.data.from_items([{"text": d["text"]} for d in docs],
                                           override_num_blocks=max(1, len(docs) // args.batch_size)).materialize()
                walls = {}
                for label, ds_in in (("16", small), ("all", full)):
                    with Load() as la:
                        obray.embed(ds_in, model="st:all-MiniLM-L6-v2", concurrency=1, num_cpus=1,
                                    batch_size=args.batch_size).materialize()
                    walls[label] = la
                    print(f"one actor, {ds_in.count()} texts: {la.wall:.2f} s; {la.describe()}", flush=True)
                per_actor = (len(docs) - 16) / max(walls["all"].wall - walls["16"].wall, 1e-9)
                result.append(f"one actor (num_cpus=1) {per_actor:.1f} texts/s (start + model load "
                              f"{walls['16'].wall:.1f} s; others' cores {walls['all'].others_cores:.2f})")
            rounds = []
            for r in range(args.repeat if "ingest" in phases else 0):
                name_l, name_r = f"bench_local_{r}", f"bench_ray_{r}"
                for n in (name_l, name_r):
                    store.drop_collection(n, missing_ok=True)
                with Load() as ll:
                    rep_l = local_ingest(store, provider, name_l, path, args.batch_size)
                print(f"[{r}] local : {rep_l.chunks_embedded / ll.wall:.2f} rows/s ({rep_l.chunks_embedded} rows, "
                      f"{ll.wall:.1f} s); {ll.describe()}", flush=True)
                with Load() as lg, ActorMemory() as mem:
                    rep_r = obray.ingest([str(path)], name_r, dsn=dsn, model="st:all-MiniLM-L6-v2", provider=provider,
                                         concurrency=args.actors, batch_size=args.batch_size)
                print(f"[{r}] ray   : {rep_r.chunks_embedded / lg.wall:.2f} rows/s ({rep_r.chunks_embedded} rows, "
                      f"{lg.wall:.1f} s); embedding actor peak RSS {mem.peak:.0f} MiB; {lg.describe()}", flush=True)
                assert rep_r.chunks_embedded == rep_l.chunks_embedded
                rounds.append((ll, lg, rep_l, rep_r))
            if rounds:
                with Load() as lz:
                    rerun = obray.ingest([str(path)], f"bench_ray_{args.repeat - 1}", dsn=dsn,
                                         model="st:all-MiniLM-L6-v2", provider=provider)
                print(f"ray no-change rerun: {lz.wall:.2f} s, embedded {rerun.chunks_embedded}; {lz.describe()}",
                      flush=True)
                lw = statistics.median(ll.wall for ll, _, _, _ in rounds)
                rw = statistics.median(lg.wall for _, lg, _, _ in rounds)
                busy = ", ".join(f"({ll.others / ll.wall:.2f}, {lg.others / lg.wall:.2f})" for ll, lg, _, _ in rounds)
                result.append(f"local {args.n / lw:.2f} rows/s, ray {args.n / rw:.2f} rows/s, ray/local "
                              f"{lw / rw:.3f} (others' cores local/ray per round: {busy}); no-change rerun "
                              f"{lz.wall:.2f} s")

            # ------------------------------------------------ sink vs upsert: the same rows, no index
            # random unit vectors: a write rate does not depend on the values, and no model time is spent here
            vecs = np.random.default_rng(5).standard_normal((len(docs), provider.dimension)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            rows = [{"id": d["id"], "content": d["text"], "source": "bench", "chunk": 0,
                     "content_hash": str(i), "metadata": {"i": i}} for i, d in enumerate(docs)]
            items = [{**row, "metadata": json.dumps(row["metadata"]), "embedding": vecs[i]}
                     for i, row in enumerate(rows)]
            sink_t, up_t, sink_db, job_t = [], [], [], []
            small_ds = ray.data.from_items(items[:16]).materialize() if "sink" in phases else None
            if "sink" in phases:
                # the first write of a Ray runtime starts its write workers (imports, one connection each): a
                # fixed cost like ray.init, measured once here and not inside the rate
                store.drop_collection("bench_warm", missing_ok=True)
                warm = ray.data.from_items(items[:16]).materialize()
                with Load() as lw:
                    obray.write_collection(warm, "bench_warm", dsn=dsn, model=provider, index=None)
                print(f"sink first write (worker start, 16 rows): {lw.wall:.2f} s; {lw.describe()}", flush=True)
                result.append(f"sink first-write start {lw.wall:.1f} s (not in the sink figure)")
                store.drop_collection("bench_warm", missing_ok=True)
            for r in range(max(3, args.repeat) if "sink" in phases else 0):
                for n in ("bench_upsert", "bench_sink"):
                    store.drop_collection(n, missing_ok=True)
                coll = store.create_collection("bench_upsert", provider, index=None, fulltext=True)
                store.create_collection("bench_sink", provider, index=None, fulltext=True)
                ds = ray.data.from_items(items, override_num_blocks=max(1, len(items) // args.batch_size)) \
                    .materialize()

                def upsert(coll: Any = coll) -> Load:
                    quiet_engine(store)
                    with Load() as lu:
                        for s in range(0, len(rows), args.batch_size):
                            part = [{**row, "vector": vecs[s + j]}
                                    for j, row in enumerate(rows[s:s + args.batch_size])]
                            coll.upsert(part)
                    return lu

                def sink(ds: Any = ds) -> tuple[Load, Any]:
                    quiet_engine(store)
                    with Load() as lk:
                        st = obray.write_collection(ds, "bench_sink", dsn=dsn, model=provider, index=None,
                                                    rows_per_write=args.batch_size)
                    return lk, st

                if r % 2:  # alternate which goes first: the table and the machine warm up in turns
                    (lk, stats), lu = sink(), upsert()
                else:
                    lu, (lk, stats) = upsert(), sink()
                up_t.append(lu.wall)
                sink_t.append(lk.wall)
                sink_db.append(stats.write_seconds)
                assert stats.rows_written == len(rows) == store.collection("bench_sink").count()
                # Ray's fixed cost of one write job (the executor's start, scheduling one task, its stats): a
                # 16-row job into a fresh collection, so the sink's marginal rate is (N - 16) / (wall_N - wall_16)
                store.drop_collection("bench_job", missing_ok=True)
                store.create_collection("bench_job", provider, index=None, fulltext=True)
                quiet_engine(store)
                with Load() as lj:
                    obray.write_collection(small_ds, "bench_job", dsn=dsn, model=provider, index=None)
                job_t.append(lj.wall)
                print(f"[{r}] upsert {len(rows) / lu.wall:.0f} rows/s; sink {len(rows) / lk.wall:.0f} rows/s "
                      f"= {lu.wall / lk.wall:.3f}x (tasks' DB time {stats.write_seconds:.2f} s); {lu.describe()} / "
                      f"{lk.describe()}", flush=True)

            if sink_t:
                ratios = sorted(u / k for u, k in zip(up_t, sink_t, strict=True))
                cap = args.n / statistics.median(sink_t)
                result.append(f"sink {args.n / statistics.median(sink_t):.0f} rows/s vs upsert "
                              f"{args.n / statistics.median(up_t):.0f} rows/s = "
                              f"{statistics.median(up_t) / statistics.median(sink_t):.3f}x (per-round ratios "
                              f"{', '.join(f'{x:.2f}' for x in ratios)}; write tasks' own DB time: "
                              f"{statistics.median(up_t) / statistics.median(sink_db):.3f}x)")
                job = statistics.median(job_t)
                marginal = [(args.n - 16) / max(k - j, 1e-9) for k, j in zip(sink_t, job_t, strict=True)]
                up_rates = [args.n / u for u in up_t]
                m_ratios = sorted(m / u for m, u in zip(marginal, up_rates, strict=True))
                result.append(f"Ray's fixed cost per write job (16 rows) {job:.2f} s; the sink's marginal rate "
                              f"(N - 16 rows over wall_N - wall_16) {statistics.median(marginal):.0f} rows/s = "
                              f"{statistics.median(m_ratios):.3f}x upsert (per round "
                              f"{', '.join(f'{x:.2f}' for x in m_ratios)})")

            # ------------------------------------------------ index-then-load vs load-then-index
            # random unit vectors (no model time): the question is the engine's, at a size where it matters
            if "index" in phases:
                rng = np.random.default_rng(3)
                big = rng.standard_normal((args.index_rows, provider.dimension)).astype(np.float32)
                big /= np.linalg.norm(big, axis=1, keepdims=True)
                full = [{"id": f"r{i}", "vector": big[i], "content": f"row {i}"} for i in range(args.index_rows)]
                store.drop_collection("bench_idx", missing_ok=True)
                with Load() as li:
                    c = store.create_collection("bench_idx", provider, fulltext=True)
                    for s in range(0, len(full), args.batch_size):
                        c.upsert(full[s:s + args.batch_size])
                store.drop_collection("bench_idx")
                with Load() as lt:
                    c = store.create_collection("bench_idx", provider, index=None, fulltext=True)
                    for s in range(0, len(full), args.batch_size):
                        c.upsert(full[s:s + args.batch_size])
                    t_load = time.perf_counter() - lt.t0
                    c.create_index("hnsw")
                print(f"{args.index_rows} rows: index-then-load {li.wall:.2f} s; load-then-index {lt.wall:.2f} s "
                      f"(load {t_load:.2f} s + index {lt.wall - t_load:.2f} s); {li.describe()} / {lt.describe()}",
                      flush=True)
                result.append(f"{args.index_rows} rows index-then-load {li.wall:.2f} s vs load-then-index "
                              f"{lt.wall:.2f} s")
            for n in ("bench_upsert", "bench_sink", "bench_job", "bench_idx",
                      *(f"bench_local_{r}" for r in range(args.repeat)),
                      *(f"bench_ray_{r}" for r in range(args.repeat))):
                store.drop_collection(n, missing_ok=True)
        finally:
            store.close()
            ray.shutdown()
            if folder is not None:
                stop_server(folder)
    if per_actor and cap:
        print("\n" + sizing_table(per_actor, cap))
    print(f"\nRESULT n={args.n} repeat={args.repeat} actors={args.actors or 'auto'} cpus={os.cpu_count()}: "
          + "; ".join(result))


if __name__ == "__main__":
    main()
