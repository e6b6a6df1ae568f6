"""Framework adapters benchmark: what LangChain's ``ObembedVectorStore`` costs over obembed's own API, and how it
compares with ``langchain-oceanbase``'s ``OceanbaseVectorStore`` on the same seekdb server.

    /work/main/.venv/bin/python benchmarks/frameworks.py                  # 5,000 texts + 500 searches, 2 rounds
    /work/main/.venv/bin/python benchmarks/frameworks.py --quick          # 1,000 texts + 100 searches, 2 rounds
    /work/main/.venv/bin/python benchmarks/frameworks.py --model st:all-MiniLM-L6-v2 --texts 1000 --queries 100
    /work/main/.venv/bin/python benchmarks/frameworks.py --no-server      # embedded only (no seekdb server start)

Texts are the first ``--texts`` English Debian package descriptions (../shared/data), queries the first
``--queries`` of their short-description queries; each text carries metadata ``{"pkg": id, "n": i}``.

Sides, interleaved in this one process: adds go in batches of 1,000 and searches query by query, each batch or
query run by every side in turn (the order rotating), so that the load of a shared machine hits all sides alike;
each round writes fresh collections / tables:

own        obembed's API: ``store.create_collection`` + ``embed_documents`` + ``Collection.upsert`` (one call), then
           ``Collection.search(embed_query(q), k=4)`` per query (obembed's search policy: exact up to 20,000 rows):
           the baseline.
adapter    ``ObembedVectorStore.add_texts(texts, metadatas, ids)`` + ``similarity_search(q, k=4)`` on the same
           embedded store (goal: ≥ 0.9× the own API's speed).
server     with a seekdb server started from the pylibseekdb wheel (``scripts/seekdb-server.sh``): the adapter on
           it by DSN, and ``OceanbaseVectorStore`` (langchain-oceanbase, ``add_texts`` in its default batches of
           1000, ``similarity_search``), both HNSW with cosine distance, neither with a full-text index; obembed's
           search with its policy (exact at this size) and with ``exact=False`` (the HNSW index, as
           langchain-oceanbase always does). The rows each side really stored are counted: langchain-oceanbase
           logs a failed batch (e.g. its client's 10 s query timeout on a loaded machine) and carries on.

The embedder is the same object on every side. By default a cheap deterministic one (a hash-seeded unit vector,
384-d, ~20 µs a text) so that the stores are what is measured, not the model; ``--model SPEC`` uses an obembed model
instead (own side: its provider; LangChain sides: ``ObembedEmbeddings`` over the same provider). Every phase is
printed with the CPU time other processes used meanwhile.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
DATA = ROOT.parent / "shared" / "data" / "debian-descriptions"
if not DATA.exists():
    DATA = Path("/work/shared/data/debian-descriptions")

from _cpuload import Load  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402

K = 4


class HashEmbeddings(Embeddings):
    """Deterministic, model-free: a unit vector seeded by the text's hash (same text, same vector)."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def _one(self, text: str) -> list[float]:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        out: list[float] = (v / np.linalg.norm(v)).tolist()
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


def load_data(n_texts: int, n_queries: int) -> tuple[list[str], list[str], list[dict[str, Any]], list[str]]:
    texts, ids, metas = [], [], []
    with gzip.open(DATA / "en_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= n_texts:
                break
            r = json.loads(line)
            texts.append(r["text"])
            ids.append(r["id"])
            metas.append({"pkg": r["id"], "n": i})
    queries = []
    with gzip.open(DATA / "en_queries.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= n_queries:
                break
            queries.append(json.loads(line)["text"])
    return texts, ids, metas, queries


def paired(label: str, sides: list[tuple[str, Any]], items: list[Any], flip: bool) -> dict[str, float]:
    """Run every side on each item in turn (the order rotating item by item), so that load changes on a shared
    machine hit all sides alike; returns each side's total seconds."""
    total = {name: 0.0 for name, _ in sides}
    with Load() as load:
        for n, item in enumerate(items):
            order = sides[(n + flip) % len(sides):] + sides[:(n + flip) % len(sides)]
            for name, fn in order:
                t0 = time.perf_counter()
                fn(item)
                total[name] += time.perf_counter() - t0
    parts = "  ".join(f"{name} {t:6.2f} s" for name, t in total.items())
    print(f"    {label:<32} {parts}   (other processes: {load.others_cores:.2f} cores)", flush=True)
    return total


def start_server(folder: Path) -> str:
    env = dict(os.environ, PYTHON=sys.executable)
    out = subprocess.run(["bash", str(ROOT / "scripts" / "seekdb-server.sh"), "start", str(folder)],
                         capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"the seekdb server did not start:\n{out.stdout}\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def stop_server(folder: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run(["bash", str(ROOT / "scripts" / "seekdb-server.sh"), "stop", str(folder)], env=env,
                   capture_output=True, timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=5000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="1,000 texts, 100 queries, 2 rounds")
    ap.add_argument("--model", default=None, help="an obembed model spec instead of the hash embedder")
    ap.add_argument("--no-server", action="store_true", help="skip the seekdb-server comparison")
    args = ap.parse_args()
    if args.quick:
        args.texts, args.queries, args.rounds = 1000, 100, 2

    import obembed
    from obembed.integrations.langchain import ObembedEmbeddings, ObembedVectorStore

    texts, ids, metas, queries = load_data(args.texts, args.queries)
    flags = {f for f in open("/proc/cpuinfo").read().split() if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni")}
    model_name = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
                      platform.processor())
    print(f"CPU: {model_name} ({os.cpu_count()} cores; {' '.join(sorted(flags)) or 'no avx2/vnni'}); "
          f"load avg {os.getloadavg()[0]:.2f}")
    print(f"{len(texts)} texts, {len(queries)} queries, k={K}, {args.rounds} rounds, embedder: "
          f"{args.model or 'hash (deterministic, 384-d)'}")

    if args.model:
        provider = obembed.load(args.model)
        provider.dimension  # noqa: B018 - load now
        lc_emb: Embeddings = ObembedEmbeddings(provider=provider)

        def own_embed_docs(ts: list[str]) -> Any:
            return provider.embed_documents(ts)

        def own_embed_query(t: str) -> Any:
            return provider.embed_query(t)
        own_identity: Any = provider
    else:
        lc_emb = HashEmbeddings()
        hash_emb = lc_emb

        def own_embed_docs(ts: list[str]) -> Any:
            return np.asarray(hash_emb.embed_documents(ts), dtype=np.float32)

        def own_embed_query(t: str) -> Any:
            return hash_emb.embed_query(t)

        own_identity = 384

    tmp = Path(tempfile.mkdtemp(prefix="obembed-fw-bench-"))
    store = obembed.connect(path=tmp / "embedded.db")
    results: dict[str, dict[str, list[float]]] = {}
    same_top: list[float] = []
    stored: list[tuple[int, int]] = []

    def record(side: str, phase: str, seconds: float) -> None:
        results.setdefault(side, {}).setdefault(phase, []).append(seconds)

    server_dir = tmp / "server"
    dsn = None
    ob_args: dict[str, Any] = {}
    if not args.no_server:
        print("starting a seekdb server from the pylibseekdb wheel ...", flush=True)
        dsn = start_server(server_dir)
        from obembed.store import parse_dsn

        dsn = dsn.rsplit("/", 1)[0] + "/fwbench"
        obembed.connect(dsn).close()  # creates the database
        p = parse_dsn(dsn)
        ob_args = {"host": p["host"], "port": str(p["port"]), "user": p["user"], "password": p["password"],
                   "db_name": p["database"]}
        print(f"  server: {dsn}")

    try:
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds}", flush=True)
            tag = uuid.uuid4().hex[:6]
            flip = rnd % 2 == 1

            # ---- embedded: obembed's own API vs the adapter, batch by batch and query by query, alternating
            coll = store.create_collection(f"own_{tag}", own_identity, fulltext=False)
            vs = ObembedVectorStore(lc_emb, f"lc_{tag}", store=store, fulltext=False)

            def own_add(sl: slice, coll: Any = coll) -> None:
                vecs = own_embed_docs(texts[sl])
                coll.upsert([{"id": i, "vector": v, "content": t, "metadata": m}
                             for i, v, t, m in zip(ids[sl], vecs, texts[sl], metas[sl], strict=True)])

            def lc_add(sl: slice, vs: Any = vs) -> None:
                vs.add_texts(texts[sl], metas[sl], ids=ids[sl])

            times = paired("embedded: add (batches of 1000)", [("own", own_add), ("adapter", lc_add)],
                           [slice(i, i + 1000) for i in range(0, len(texts), 1000)], flip)
            for side, t in times.items():
                record(side, "add", t)
            hits: dict[str, list[list[str]]] = {"own": [], "adapter": []}

            def own_search(q: str, coll: Any = coll, hits: Any = hits) -> None:
                hits["own"].append([h.id for h in coll.search(own_embed_query(q), K)])

            def lc_search(q: str, vs: Any = vs, hits: Any = hits) -> None:
                hits["adapter"].append([d.id for d in vs.similarity_search(q, k=K)])

            times = paired("embedded: search", [("own", own_search), ("adapter", lc_search)], queries, flip)
            for side, t in times.items():
                record(side, "search", t)
            same_top.append(sum(x == y for x, y in zip(hits["own"], hits["adapter"], strict=True)) / len(queries))
            store.drop_collection(f"own_{tag}")
            store.drop_collection(f"lc_{tag}")

            if dsn is None:
                continue
            # ---- the same server: ObembedVectorStore by DSN vs OceanbaseVectorStore, alternating the same way
            from langchain_oceanbase.vectorstores import OceanbaseVectorStore

            vs_s = ObembedVectorStore(lc_emb, f"lcs_{tag}", target=dsn, fulltext=False)
            ob = OceanbaseVectorStore(lc_emb, f"ob_{tag}", connection_args=ob_args, vidx_metric_type="cosine",
                                      embedding_dim=len(lc_emb.embed_query("probe")), drop_old=True)

            def srv_add(sl: slice, vs_s: Any = vs_s) -> None:
                vs_s.add_texts(texts[sl], metas[sl], ids=ids[sl])

            def ob_add(sl: slice, ob: Any = ob) -> None:
                ob.add_texts(texts[sl], metas[sl], ids=ids[sl])

            times = paired("server: add (batches of 1000)", [("obembed@server", srv_add),
                                                              ("oceanbase@server", ob_add)],
                           [slice(i, i + 1000) for i in range(0, len(texts), 1000)], flip)
            for side, t in times.items():
                record(side, "add", t)
            n_ob = int(vs_s.store.execute(f"SELECT COUNT(*) FROM `ob_{tag}`")[0][0][0])
            n_ours = vs_s.collection.count()
            print(f"    rows stored: obembed {n_ours}, langchain-oceanbase {n_ob} (of {len(texts)})")
            stored.append((n_ours, n_ob))

            def srv_search(q: str, vs_s: Any = vs_s) -> None:
                vs_s.similarity_search(q, k=K)

            def srv_search_index(q: str, vs_s: Any = vs_s) -> None:
                vs_s.similarity_search(q, k=K, exact=False)

            def ob_search(q: str, ob: Any = ob) -> None:
                ob.similarity_search(q, k=K)

            times = paired("server: search", [("obembed@server", srv_search),
                                              ("obembed@server exact=False", srv_search_index),
                                              ("oceanbase@server", ob_search)], queries, flip)
            for side, t in times.items():
                record(side, "search", t)
            vs_s.store.drop_collection(f"lcs_{tag}")
            vs_s.store.execute(f"DROP TABLE IF EXISTS `ob_{tag}`", fetch=False)
            vs_s.close()
    finally:
        store.close()
        if dsn is not None:
            stop_server(server_dir)

    med = {s: {p: statistics.median(v) for p, v in ph.items()} for s, ph in results.items()}
    print("\nmedians over rounds (seconds)        add     search   texts/s  searches/s")
    for side, ph in med.items():
        add = ph.get("add")
        print(f"  {side:<32} {f'{add:7.2f}' if add else '      -'}  {ph['search']:8.2f}  "
              f"{f'{len(texts) / add:7.0f}' if add else '      -'}  {len(queries) / ph['search']:9.0f}")
    print("\nratios (speed of the first relative to the second; > 1 = faster)")
    for phase in ("add", "search"):
        ratio = med["own"][phase] / med["adapter"][phase]
        print(f"  adapter vs own API ({phase + '):':<8} {ratio:.3f}x (goal >= 0.9x)")
    if "oceanbase@server" in med:
        for phase in ("add", "search"):
            print(f"  obembed vs langchain-oceanbase ({phase + '):':<8} "
                  f"{med['oceanbase@server'][phase] / med['obembed@server'][phase]:.2f}x (same server, same embedder)")
        print(f"  obembed exact=False vs langchain-oceanbase (search): "
              f"{med['oceanbase@server']['search'] / med['obembed@server exact=False']['search']:.2f}x "
              "(both through the HNSW index)")
        print(f"  rows stored per round (obembed, langchain-oceanbase): {stored}")
    print(f"  adapter and own API returned the same top-{K} ids for {100 * statistics.mean(same_top):.1f} % of "
          "queries")


if __name__ == "__main__":
    main()
