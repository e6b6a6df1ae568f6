"""Framework adapters benchmark: what LangChain's ``ObembedVectorStore`` costs over obembed's own API, and how it
compares with ``langchain-oceanbase``'s ``OceanbaseVectorStore`` on the same seekdb server.

    /work/main/.venv/bin/python benchmarks/frameworks.py                  # 5,000 texts + 500 searches, 3 rounds
    /work/main/.venv/bin/python benchmarks/frameworks.py --quick          # 1,000 texts + 100 searches, 2 rounds
    /work/main/.venv/bin/python benchmarks/frameworks.py --model st:all-MiniLM-L6-v2 --texts 1000 --queries 100
    /work/main/.venv/bin/python benchmarks/frameworks.py --no-server      # embedded only (no seekdb server start)

Texts are the first ``--texts`` English Debian package descriptions (../shared/data), queries the first
``--queries`` of their short-description queries; each text carries metadata ``{"pkg": id, "n": i}``.

Sides, interleaved round by round in this one process (each round writes fresh collections / tables):

own        obembed's API: ``store.create_collection`` + ``embed_documents`` + ``Collection.upsert`` (one call), then
           ``Collection.search(embed_query(q), k=4)`` per query: the baseline.
adapter    ``ObembedVectorStore.add_texts(texts, metadatas, ids)`` + ``similarity_search(q, k=4)`` on the same
           embedded store (goal: ≥ 0.9× the own API's speed).
server     with a seekdb server started from the pylibseekdb wheel (``scripts/seekdb-server.sh``): the adapter on
           it by DSN, and ``OceanbaseVectorStore`` (langchain-oceanbase, ``add_texts`` in its default batches of
           1000, ``similarity_search``), both HNSW with cosine distance, neither with a full-text index.

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


def timed(label: str, fn: Any) -> tuple[float, Any]:
    with Load() as load:
        out = fn()
    print(f"    {label:<34} {load.wall:7.2f} s   (other processes: {load.others_cores:.2f} cores)", flush=True)
    return load.wall, out


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
    ap.add_argument("--rounds", type=int, default=3)
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

            # ---- own API (embedded)
            def own_add(name: str = f"own_{tag}") -> Any:
                coll = store.create_collection(name, own_identity, fulltext=False)
                vecs = own_embed_docs(texts)
                coll.upsert([{"id": i, "vector": v, "content": t, "metadata": m}
                             for i, v, t, m in zip(ids, vecs, texts, metas, strict=True)])
                return coll

            t, coll = timed("own API: add", own_add)
            record("own", "add", t)
            t, own_hits = timed("own API: search", lambda coll=coll: [
                [h.id for h in coll.search(own_embed_query(q), K)] for q in queries])
            record("own", "search", t)

            # ---- adapter (embedded)
            def lc_add(name: str = f"lc_{tag}") -> Any:
                vs = ObembedVectorStore(lc_emb, name, store=store, fulltext=False)
                vs.add_texts(texts, metas, ids=ids)
                return vs

            t, vs = timed("ObembedVectorStore: add", lc_add)
            record("adapter", "add", t)
            t, lc_hits = timed("ObembedVectorStore: search", lambda vs=vs: [
                [d.id for d in vs.similarity_search(q, k=K)] for q in queries])
            record("adapter", "search", t)
            same_top.append(sum(a == b for a, b in zip(own_hits, lc_hits, strict=True)) / len(queries))
            store.drop_collection(f"own_{tag}")
            store.drop_collection(f"lc_{tag}")

            if dsn is None:
                continue
            # ---- the same server: ObembedVectorStore by DSN vs OceanbaseVectorStore
            from langchain_oceanbase.vectorstores import OceanbaseVectorStore

            def run_obembed(tag: str = tag) -> None:
                def add() -> Any:
                    vs_s = ObembedVectorStore(lc_emb, f"lcs_{tag}", target=dsn, fulltext=False)
                    vs_s.add_texts(texts, metas, ids=ids)
                    return vs_s

                t, vs_s = timed("ObembedVectorStore@server: add", add)
                record("obembed@server", "add", t)
                t, _ = timed("ObembedVectorStore@server: search",
                             lambda: [vs_s.similarity_search(q, k=K) for q in queries])
                record("obembed@server", "search", t)
                vs_s.store.drop_collection(f"lcs_{tag}")
                vs_s.close()

            def run_oceanbase(tag: str = tag) -> None:
                def add() -> Any:
                    ob = OceanbaseVectorStore(lc_emb, f"ob_{tag}", connection_args=ob_args, vidx_metric_type="cosine",
                                              embedding_dim=len(lc_emb.embed_query("probe")), drop_old=True)
                    ob.add_texts(texts, metas, ids=ids)
                    return ob

                t, ob = timed("OceanbaseVectorStore@server: add", add)
                record("oceanbase@server", "add", t)
                t, _ = timed("OceanbaseVectorStore@server: search",
                             lambda: [ob.similarity_search(q, k=K) for q in queries])
                record("oceanbase@server", "search", t)
                ob.obvector.drop_table_if_exist(f"ob_{tag}")

            for run in ((run_obembed, run_oceanbase) if rnd % 2 == 0 else (run_oceanbase, run_obembed)):
                run()
    finally:
        store.close()
        if dsn is not None:
            stop_server(server_dir)

    med = {s: {p: statistics.median(v) for p, v in ph.items()} for s, ph in results.items()}
    print("\nmedians (seconds)          add      search   texts/s  searches/s")
    for side, ph in med.items():
        print(f"  {side:<22} {ph['add']:7.2f}  {ph['search']:8.2f}  {len(texts) / ph['add']:7.0f}  "
              f"{len(queries) / ph['search']:9.0f}")
    print("\nratios (speed of the first relative to the second; > 1 = faster)")
    for phase in ("add", "search"):
        print(f"  adapter vs own API ({phase}):            {med['own'][phase] / med['adapter'][phase]:.3f}x "
              "(goal >= 0.9x)")
    if "oceanbase@server" in med:
        for phase in ("add", "search"):
            print(f"  obembed vs langchain-oceanbase ({phase}): "
                  f"{med['oceanbase@server'][phase] / med['obembed@server'][phase]:.2f}x (same server, same embedder)")
    print(f"  adapter and own API returned the same top-{K} ids for {100 * statistics.mean(same_top):.1f} % of "
          "queries")


if __name__ == "__main__":
    main()
