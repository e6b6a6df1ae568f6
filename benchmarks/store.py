"""Store benchmark: bulk upsert, index build, approximate search recall/QPS, filtered and hybrid search.

    .venv/bin/python benchmarks/store.py --rows 20000 --dim 384          # a size that fits a busy 2-core box
    .venv/bin/python benchmarks/store.py --rows 100000 --dim 384         # the issue's full sizes (long)
    .venv/bin/python benchmarks/store.py --rows 20000 --dim 1024 --real 0
    .venv/bin/python benchmarks/store.py --quick                         # ~2 minutes

Phases (one embedded seekdb in a temp folder, random unit vectors, seed 0):

upsert     ``Collection.upsert`` (multi-row INSERT ... ON DUPLICATE KEY UPDATE, float32 binary, 1000 rows per
           transaction) into an unindexed collection, median of 3 fresh loads; the baselines in the same process:
           single-row autocommit INSERTs (``--single`` rows) and pyseekdb ``collection.add`` (``--pyseekdb`` rows,
           batches of 1000, the same vectors); and upsert into a collection that already has its HNSW index
           (``--indexed-rows``), i.e. the engine's own index maintenance.
index      ``create_index()`` (HNSW, m=16, ef_construction=200) on the loaded table: load-then-index.
search     ``--queries`` random unit queries; recall@10 against exact numpy top-10 and QPS (one client,
           sequential) for each ``--ef`` value, plus the exact SQL scan for comparison.
filtered   10 % and 1 % selective scalar filters: recall@10 against numpy over the filtered rows, median / p95
           latency, and how often the store's exact fallback ran.
real       ``--real N`` Debian descriptions (../shared/data, English) embedded with the bundled all-MiniLM-L6-v2
           (vectors cached in ``--cache``), their short-description queries: recall@10 of the HNSW search
           against exact numpy, the task's recall@10 (relevant package found) exact vs approximate, and hybrid
           (full-text + vector, RRF) latency.

Every phase records the CPU that *other* processes used meanwhile (/proc/stat minus this process tree, which
includes the embedded seekdb), in cores of the machine's total.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "debian-descriptions"
NCPU = os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------- CPU accounting
from _cpuload import busy_seconds as _busy_seconds  # noqa: E402
from _cpuload import tree_seconds as _tree_seconds  # noqa: E402

LOAD: dict[str, float] = {}


@contextmanager
def phase(name: str):
    b0, t0, w0 = _busy_seconds(), _tree_seconds(os.getpid()), time.perf_counter()
    yield
    wall = time.perf_counter() - w0
    others = max(0.0, (_busy_seconds() - b0) - (_tree_seconds(os.getpid()) - t0))
    LOAD[name] = others / wall if wall > 0 else 0.0
    print(f"  [{name}: {wall:.1f} s, other processes used {LOAD[name]:.2f} of {NCPU} cores]", flush=True)


# ---------------------------------------------------------------------------------------------- data
def unit_vectors(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 10000):
        v = rng.standard_normal((min(10000, n - s), d)).astype(np.float32)
        out[s:s + len(v)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def rows(vecs: np.ndarray, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"r{start + i:07d}", "vector": v, "content": f"row {start + i}", "grp": (start + i) % 100}
            for i, v in enumerate(vecs)]


def topk(matrix: np.ndarray, q: np.ndarray, k: int, ids: np.ndarray | None = None) -> list[str]:
    s = matrix @ q
    idx = np.argpartition(-s, min(k, len(s) - 1))[:k]
    idx = idx[np.argsort(-s[idx])]
    src = ids if ids is not None else idx
    return [f"r{int(src[i] if ids is not None else i):07d}" for i in idx]


def recall(got: list[str], want: list[str]) -> float:
    return len(set(got) & set(want)) / max(1, len(want))


# ---------------------------------------------------------------------------------------------- phases
def bench_upsert(store, vecs: np.ndarray, args) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n = len(vecs)
    data = rows(vecs)
    times = []
    with phase("upsert (unindexed, 3 loads)"):
        for rep in range(3):
            coll = store.create_collection(f"bench_load{rep}", args.dim, index=None, columns={"grp": "int"})
            t = time.perf_counter()
            coll.upsert(data, batch_size=1000)
            times.append(time.perf_counter() - t)
            if rep < 2:
                store.drop_collection(coll.name)
    out["upsert_rows_s"] = n / statistics.median(times)
    out["upsert_runs_s"] = [round(n / t) for t in times]
    print(f"upsert, unindexed: {out['upsert_rows_s']:,.0f} rows/s (runs {out['upsert_runs_s']})", flush=True)

    # baseline 1: single-row autocommit INSERTs, same SQL shape, same data
    single = store.create_collection("bench_single", args.dim, index=None, columns={"grp": "int"})
    m = min(args.single, n)
    sql = single._insert_sql(1)
    prepared = single._prepare(data[:m])
    with phase("single-row INSERT"):
        t = time.perf_counter()
        for values, vec in prepared:
            store.execute(sql, [*values, vec], fetch=False)
        dt = time.perf_counter() - t
    out["single_rows_s"] = m / dt
    print(f"single-row INSERT (autocommit, {m} rows): {out['single_rows_s']:,.0f} rows/s", flush=True)
    store.drop_collection(single.name)

    # baseline 2: pyseekdb collection.add (its own embedded engine in another folder, same vectors)
    if args.pyseekdb:
        try:
            import pyseekdb
        except ImportError:
            print("pyseekdb not installed: baseline skipped")
        else:
            m = min(args.pyseekdb, n)
            client = pyseekdb.Client(path=str(Path(args.workdir) / "pyseekdb.db"), database="test")
            col = client.create_collection(
                "bench_add", configuration=pyseekdb.HNSWConfiguration(dimension=args.dim, distance="cosine"),
                embedding_function=None)
            with phase("pyseekdb add"):
                t = time.perf_counter()
                for s in range(0, m, 1000):
                    col.add(ids=[r["id"] for r in data[s:s + 1000]], embeddings=vecs[s:s + 1000].tolist(),
                            documents=[r["content"] for r in data[s:s + 1000]],
                            metadatas=[{"grp": r["grp"]} for r in data[s:s + 1000]])
                dt = time.perf_counter() - t
            out["pyseekdb_rows_s"] = m / dt
            print(f"pyseekdb collection.add ({m} rows, HEAP table + async HNSW): {out['pyseekdb_rows_s']:,.0f} "
                  "rows/s", flush=True)
            client.delete_collection("bench_add")
    return out


def bench_indexed_upsert(store, vecs: np.ndarray, args) -> dict[str, Any]:
    m = min(args.indexed_rows, len(vecs))
    coll = store.create_collection("bench_indexed", args.dim, columns={"grp": "int"})
    with phase("upsert (indexed)"):
        t = time.perf_counter()
        coll.upsert(rows(vecs[:m]), batch_size=1000)
        dt = time.perf_counter() - t
    print(f"upsert into an HNSW-indexed collection ({m} rows): {m / dt:,.0f} rows/s", flush=True)
    store.drop_collection(coll.name)
    return {"indexed_rows_s": m / dt, "indexed_rows": m}


def bench_search(store, coll, vecs: np.ndarray, args) -> dict[str, Any]:
    out: dict[str, Any] = {}
    queries = unit_vectors(args.queries, args.dim, seed=1)
    want = [topk(vecs, q, 10) for q in queries]
    with phase("exact SQL scan"):
        ne = min(10, len(queries))
        t = time.perf_counter()
        got = [[h.id for h in coll.search(q, k=10, exact=True)] for q in queries[:ne]]
        dt = time.perf_counter() - t
    out["exact_ms"] = 1000 * dt / ne
    out["exact_recall"] = float(np.mean([recall(g, w) for g, w in zip(got, want, strict=False)]))
    print(f"exact SQL search: {out['exact_ms']:.1f} ms/query, recall@10 {out['exact_recall']:.3f}", flush=True)
    out["ef"] = {}
    default_ef = coll.metadata["index_params"]["ef_search"]
    for ef in [None, *args.ef]:
        with phase(f"search ef={ef}"):
            t = time.perf_counter()
            got = [[h.id for h in coll.search(q, k=10, ef_search=ef)] for q in queries]
            dt = time.perf_counter() - t
        r = float(np.mean([recall(g, w) for g, w in zip(got, want, strict=True)]))
        out["ef"][ef] = (r, len(queries) / dt)
        label = f"not given (index default {default_ef})" if ef is None else str(ef)
        print(f"HNSW ef_search={label}: recall@10 {r:.4f}, {len(queries) / dt:,.0f} QPS", flush=True)
    grp = np.arange(len(vecs)) % 100
    out["filtered"] = {}
    for label, where, mask in (("10%", {"grp": {"<": 10}}, grp < 10), ("1%", {"grp": 0}, grp == 0)):
        sub = vecs[mask]
        sub_ids = np.nonzero(mask)[0]
        nq = max(10, len(queries) // 2)
        before = store.stats["exact_fallbacks"]
        lat, rec = [], []
        with phase(f"filtered {label}"):
            for q in queries[:nq]:
                t = time.perf_counter()
                hits = coll.search(q, k=10, where=where, exact=False)
                lat.append(1000 * (time.perf_counter() - t))
                rec.append(recall([h.id for h in hits], topk(sub, q, 10, ids=sub_ids)))
        fb = store.stats["exact_fallbacks"] - before
        lat.sort()
        out["filtered"][label] = (float(np.mean(rec)), statistics.median(lat), lat[int(0.95 * (len(lat) - 1))], fb, nq)
        print(f"filtered {label}: recall@10 {np.mean(rec):.4f}, median {statistics.median(lat):.1f} ms, "
              f"p95 {lat[int(0.95 * (len(lat) - 1))]:.1f} ms, exact fallbacks {fb}/{nq}", flush=True)
    return out


def _load_real(n: int, cache: Path) -> tuple[list[str], list[str], np.ndarray, list[tuple[str, str]], np.ndarray]:
    """n English Debian descriptions (every kept query's relevant one included) and their queries, embedded."""
    queries = []
    with gzip.open(DATA / "en_queries.jsonl.gz", "rt", encoding="utf-8") as f:
        queries = [json.loads(line) for line in f]
    corpus: dict[str, str] = {}
    with gzip.open(DATA / "en_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            corpus[r["id"]] = r["text"]
    nq = min(len(queries), max(10, n // 4))
    queries = queries[:nq]
    ids = list(dict.fromkeys([q["relevant"][0] for q in queries]))
    for pid in corpus:
        if len(ids) >= n:
            break
        if pid not in ids:
            ids.append(pid)
    texts = [corpus[i] for i in ids]
    qs = [(q["text"], q["relevant"][0]) for q in queries]
    cache.mkdir(parents=True, exist_ok=True)
    fd, fq = cache / f"debian_en_docs_{n}.npy", cache / f"debian_en_queries_{n}.npy"
    if fd.exists() and fq.exists():
        print(f"real: vectors from the cache {cache}", flush=True)
        return ids, texts, np.load(fd), qs, np.load(fq)
    import obembed

    model = obembed.load("st:all-MiniLM-L6-v2", device="cpu")
    with phase("real: embed (MiniLM, CPU)"):
        dv = model.embed_documents(texts)
        qv = model.embed_queries([q for q, _ in qs])
    np.save(fd, dv)
    np.save(fq, qv)
    return ids, texts, dv, qs, qv


def bench_real(store, args) -> dict[str, Any]:
    ids, texts, dv, qs, qv = _load_real(args.real, Path(args.cache))
    coll = store.create_collection("bench_real", dv.shape[1], fulltext=True)
    coll.upsert([{"id": i, "vector": v, "content": t} for i, v, t in zip(ids, dv, texts, strict=True)])
    pid = np.array(ids)
    out: dict[str, Any] = {"n": len(ids), "queries": len(qs)}
    for ef in sorted({64, coll.metadata["index_params"]["ef_search"]}):
        ann = task_ann = task_exact = 0.0
        with phase(f"real search ef={ef}"):
            for (_, rel), q in zip(qs, qv, strict=True):
                got = [h.id for h in coll.search(q, k=10, ef_search=ef)]
                s = dv @ q
                want = [str(pid[i]) for i in np.argsort(-s)[:10]]
                ann += recall(got, want)
                task_ann += rel in got
                task_exact += rel in want
        out[ef] = (ann / len(qs), task_ann / len(qs), task_exact / len(qs))
        print(f"real MiniLM vectors, ef_search={ef}: recall@10 vs exact {ann / len(qs):.4f}; task recall@10 "
              f"approximate {task_ann / len(qs):.3f} vs exact {task_exact / len(qs):.3f}", flush=True)
    lat = []
    with phase("hybrid"):
        for (text, _), q in zip(qs, qv, strict=True):
            t = time.perf_counter()
            coll.hybrid_search(text, k=10, vector=q, exact=False)
            lat.append(1000 * (time.perf_counter() - t))
    lat.sort()
    vlat = []
    for q in qv:
        t = time.perf_counter()
        coll.search(q, k=10, exact=False)
        vlat.append(1000 * (time.perf_counter() - t))
    out["hybrid_ms"] = statistics.median(lat)
    out["hybrid_p95"] = lat[int(0.95 * (len(lat) - 1))]
    out["vector_ms"] = statistics.median(vlat)
    print(f"hybrid_search (full-text + vector, RRF, 40 candidates each): median {out['hybrid_ms']:.1f} ms, p95 "
          f"{out['hybrid_p95']:.1f} ms (vector-only search: {out['vector_ms']:.1f} ms)", flush=True)
    return out


def bench_real_npz(store, args) -> dict[str, Any]:
    """ANN recall@10 vs exact numpy on real vectors cached as .npz (``vectors`` + JSON ``meta`` with ``kind``)."""
    docs, queries = [], []
    for f in args.real_npz.split(","):
        z = np.load(f)
        kind = json.loads(str(z["meta"])).get("kind") if "meta" in z.files else "document"
        (queries if kind == "query" else docs).append(z["vectors"].astype(np.float32))
    dv, qv = np.concatenate(docs), np.concatenate(queries)
    coll = store.create_collection("bench_real_npz", dv.shape[1])
    with phase("real npz: upsert (indexed)"):
        coll.upsert([{"id": f"r{i:07d}", "vector": v} for i, v in enumerate(dv)])
    out: dict[str, Any] = {"n": len(dv), "queries": len(qv)}
    want = [topk(dv, q, 10) for q in qv]
    for ef in [None, 64, 128, 256]:
        with phase(f"real npz search ef={ef}"):
            t = time.perf_counter()
            got = [[h.id for h in coll.search(q, k=10, ef_search=ef)] for q in qv]
            dt = time.perf_counter() - t
        r = float(np.mean([recall(g, w) for g, w in zip(got, want, strict=True)]))
        out[ef] = (r, len(qv) / dt)
        label = f"not given (index default {coll.metadata['index_params']['ef_search']})" if ef is None else ef
        print(f"real vectors ({len(dv)} docs, {len(qv)} queries), ef_search={label}: recall@10 vs exact {r:.4f}, "
              f"{len(qv) / dt:,.0f} QPS", flush=True)
    store.drop_collection(coll.name)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--single", type=int, default=1000, help="rows for the single-row INSERT baseline")
    ap.add_argument("--pyseekdb", type=int, default=10_000, help="rows for the pyseekdb add baseline (0: skip)")
    ap.add_argument("--indexed-rows", type=int, default=10_000, help="rows upserted into an indexed collection")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef", default="32,64,128,256", help="ef_search values to sweep")
    ap.add_argument("--real", type=int, default=1000, help="real Debian texts to embed with MiniLM (0: skip)")
    ap.add_argument("--real-npz", default="", help="comma-separated .npz files of real vectors (documents and "
                    "queries, told apart by meta.kind) for an extra recall check")
    ap.add_argument("--skip-bulk", action="store_true", help="only the real-vector phases")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "obembed-bench-cache"))
    ap.add_argument("--workdir", default=None, help="folder for the engines (default: a temp folder)")
    ap.add_argument("--parallel", type=int, default=0, help="CREATE /*+ parallel(n) */ VECTOR INDEX")
    ap.add_argument("--quick", action="store_true", help="5000 rows, 100 queries, 300 real texts")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.single, args.pyseekdb, args.indexed_rows = 5000, 300, 2000, 2000
        args.queries, args.real = 100, min(args.real, 300)
    args.ef = [int(x) for x in args.ef.split(",") if x]
    tmp = tempfile.TemporaryDirectory(prefix="obembed-bench-store-")
    args.workdir = args.workdir or tmp.name
    sys.path.insert(0, str(ROOT / "src"))
    from obembed.store import connect

    print(f"store benchmark: {args.rows:,} rows x {args.dim}-d, {args.queries} queries, ef {args.ef}; "
          f"{NCPU} CPUs; engines in {args.workdir}", flush=True)
    t_all = time.perf_counter()
    b0, c0 = _busy_seconds(), _tree_seconds(os.getpid())
    res: dict[str, Any] = {}
    with connect(path=Path(args.workdir) / "obembed.db") as store:
        res["engine"] = store.engine_version
        if args.real_npz:
            res["real_npz"] = bench_real_npz(store, args)
        if args.skip_bulk:
            if args.real:
                res["real"] = bench_real(store, args)
            tmp.cleanup()
            return 0
        with phase("generate"):
            vecs = unit_vectors(args.rows, args.dim, seed=0)
        res.update(bench_upsert(store, vecs, args))
        coll = store.collection("bench_load2")
        with phase("index build"):
            t = time.perf_counter()
            coll.create_index("hnsw", parallel=args.parallel or None)
            res["index_s"] = time.perf_counter() - t
        par = f", parallel {args.parallel}" if args.parallel else ""
        print(f"HNSW build after the load (m=16, ef_construction=200{par}): {res['index_s']:.1f} s "
              f"({args.rows / res['index_s']:,.0f} rows/s)", flush=True)
        res["load_then_index_rows_s"] = args.rows / (args.rows / res["upsert_rows_s"] + res["index_s"])
        res.update(bench_indexed_upsert(store, vecs, args))
        res["search"] = bench_search(store, coll, vecs, args)
        if args.real:
            res["real"] = bench_real(store, args)
    wall = time.perf_counter() - t_all
    others = max(0.0, (_busy_seconds() - b0) - (_tree_seconds(os.getpid()) - c0)) / wall
    print("\n## summary (ratios against baselines measured in this run)")
    print(f"- upsert {res['upsert_rows_s']:,.0f} rows/s = {res['upsert_rows_s'] / res['single_rows_s']:.1f}x "
          f"single-row INSERT ({res['single_rows_s']:,.0f} rows/s)"
          + (f", {res['upsert_rows_s'] / res['pyseekdb_rows_s']:.1f}x pyseekdb add ({res['pyseekdb_rows_s']:,.0f} "
             "rows/s)" if "pyseekdb_rows_s" in res else ""))
    print(f"- indexed upsert {res['indexed_rows_s']:,.0f} rows/s; load-then-index overall "
          f"{res['load_then_index_rows_s']:,.0f} rows/s")
    print(f"- whole run {wall:.0f} s; other processes used {others:.2f} of {NCPU} cores on average; engine "
          f"{res['engine']}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
