"""Remote-provider benchmark: the ``dashscope:`` preset vs the guide's sequential ``RemoteEmbedding`` logic.

usage:
  python benchmarks/remote.py [--n 10000] [--latency 0.05] [--max-items 10] [--concurrency 8,16] [--repeat 3]
  python benchmarks/remote.py --quick          # n=2000, repeat 1

A local DashScope compatible-mode server (tests/providers/fakeapi.py: the documented reply shape, data in
reversed index order, 400 "should not be larger than 10" above 10 inputs) runs in a *separate process* (as a
real service would: its CPU is not ours) and sleeps ``--latency`` per request. In ONE process, against it:

* baseline — the guide's ``RemoteEmbedding`` logic: one request per 10-item batch, one after another,
  ``dimensions`` always sent, ``data`` read in reply order (requests.Session, so keep-alive is not the
  difference);
* obembed  — ``obembed.load("dashscope:text-embedding-v3").embed_documents(texts)``: split by items and tokens,
  ``concurrency`` requests in flight, order by ``index``, retries.

Both results are checked against the vectors the server derives from each text: "wrong rows" counts vectors that
are not the right vector for their text (the baseline's reply-order bug shows up there). Ratio = baseline wall /
obembed wall (median of ``--repeat`` runs; the baseline runs once: it is the slow one). The CPU time other
processes used meanwhile is recorded from /proc/stat minus this process tree (server included).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "providers"))

KEY = "sk-bench-0123456789abcdef"
MODEL = "text-embedding-v3"


# ---------------------------------------------------------------------------------------------- CPU accounting
from _cpuload import Load  # noqa: E402  (benchmarks/_cpuload.py, shared by the benchmarks)


# ---------------------------------------------------------------------------------------------- server process
def _serve(texts: list[str], latency: float, max_items: int, conn: Any, max_concurrent: int | None = None) -> None:
    from fakeapi import FakeAPI, _float_json

    for t in texts:  # the server's own cost (vector + JSON per text) is paid before timing, for both sides
        _float_json(t, MODEL, 1024)
    api = FakeAPI("dashscope", api_key=KEY, latency=latency, max_items=max_items, record=False,
                  max_concurrent=max_concurrent).start()
    conn.send(api.port)
    conn.recv()  # wait for "stop"
    conn.send(api.n_throttled)
    api.stop()


# ---------------------------------------------------------------------------------------------- the guide's way
class GuideRemoteEmbedding:
    """The guide's RemoteEmbedding, batched at 10 so DashScope accepts it: sequential, no retries, no ordering."""

    def __init__(self, base_url: str, api_key: str, model: str, dimensions: int, batch: int = 10) -> None:
        import requests

        self.url, self.model, self.dimensions, self.batch = base_url, model, dimensions, batch
        self.session = requests.Session()
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch):
            resp = self.session.post(self.url, headers=self.headers, json={
                "model": self.model, "input": texts[i:i + self.batch], "dimensions": self.dimensions})
            data = resp.json()
            out.extend(d["embedding"][: self.dimensions] for d in data["data"])
        return out


def make_texts(n: int) -> list[str]:
    words = ("vector database embedding OceanBase seekdb hybrid search 向量 检索 文档 埋め込み 検索 "
             "chunk token batch retry latency throughput").split()
    rng = np.random.default_rng(7)
    return [f"text {i}: " + " ".join(rng.choice(words, size=int(rng.integers(5, 40)))) for i in range(n)]


def wrong_rows(vectors: Any, texts: list[str]) -> int:
    from fakeapi import vector_for

    arr = np.asarray(vectors, dtype=np.float32)
    if arr.shape != (len(texts), 1024):
        return len(texts)
    want = np.stack([vector_for(t, MODEL, 1024) for t in texts])
    return int((np.abs(arr - want).max(axis=1) > 1e-5).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--max-items", type=int, default=10)
    ap.add_argument("--concurrency", default="8,16,32", help="comma list; 16 is the dashscope: preset's default")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="n=2000, repeat 1")
    ap.add_argument("--max-concurrent", type=int, default=None,
                    help="the server answers 429 above this many requests in flight (a rate-limiting gateway)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeat = 2000, 1
    import obembed

    texts = make_texts(args.n)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(texts, args.latency, args.max_items, child, args.max_concurrent),
                         daemon=True)
    server.start()
    port = parent.recv()
    base = f"http://127.0.0.1:{port}/compatible-mode/v1"
    print(f"n={args.n} texts, server latency {args.latency * 1000:.0f} ms/request, {args.max_items} items/request, "
          f"server pid {server.pid} (separate process)"
          + (f", 429 above {args.max_concurrent} requests in flight" if args.max_concurrent else ""))
    try:
        guide = GuideRemoteEmbedding(base + "/embeddings", KEY, MODEL, 1024, batch=args.max_items)
        guide.embed_documents(texts[:20])  # warm the connection
        with Load() as lb:
            base_vecs = guide.embed_documents(texts)
        base_wrong = wrong_rows(base_vecs, texts)
        print(f"baseline (guide, sequential): {lb.describe()}; wrong rows {base_wrong}/{args.n}")
        rows = []
        for conc in [int(c) for c in args.concurrency.split(",")]:
            p = obembed.load("dashscope:text-embedding-v3", base_url=base, api_key=KEY, concurrency=conc)
            p.embed_documents(texts[:20])  # warm the pool
            walls, errors, wrong, loads = [], 0, 0, []
            for _ in range(args.repeat):
                with Load() as lo:
                    try:
                        vecs = p.embed_documents(texts)
                        wrong = max(wrong, wrong_rows(vecs, texts))
                    except obembed.errors.ObembedError as exc:
                        errors += 1
                        print(f"  error: {exc}")
                walls.append(lo.wall)
                loads.append(lo)
            if p.throttle.throttled:
                print(f"  429s seen: {p.throttle.throttled}; live limit at the end: {p.throttle.limit}")
            med = statistics.median(walls)
            mid = loads[walls.index(med)] if med in walls else loads[0]
            rows.append((conc, med, walls, errors, wrong, mid))
            print(f"obembed dashscope: concurrency={conc}: median {med:.2f}s of {[round(w, 2) for w in walls]}; "
                  f"{lb.wall / med:.1f}x baseline; errors {errors}, wrong rows {wrong}/{args.n}; {mid.describe()}")
            p.close()
        print("\n| run | wall (s) | vs baseline | requests/s | errors | wrong rows | other processes' CPU |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        n_req = -(-args.n // args.max_items)
        print(f"| guide RemoteEmbedding, sequential | {lb.wall:.2f} | 1.0x | {n_req / lb.wall:.0f} | 0 | "
              f"{base_wrong} | {lb.others / lb.wall:.2f} cores |")
        for conc, med, _walls, errors, wrong, mid in rows:
            print(f"| dashscope: concurrency={conc} (median of {args.repeat}) | {med:.2f} | {lb.wall / med:.1f}x | "
                  f"{n_req / med:.0f} | {errors} | {wrong} | {mid.others / mid.wall:.2f} cores |")
    finally:
        parent.send("stop")
        if parent.poll(5):
            print(f"server answered 429 {parent.recv()} times")
        server.join(5)
        if server.is_alive():
            server.terminate()


if __name__ == "__main__":
    main()
