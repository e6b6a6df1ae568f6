"""Full Debian-descriptions evaluation of the bundled MiniLM, compared with the folder's BASELINES.md.

Runs ``obembed.eval.evaluate`` on the standard slices made by ``shared/tools/debian_slice.py``:
``en 3000`` (en queries and xl = Japanese query -> English document) and ``ja 0`` (the whole Japanese
corpus), through numpy exact search and the real store (embedded seekdb: exact scan, HNSW at several
ef_search, optionally HNSW_SQ/BQ), and checks recall@1/@10, MRR@10 and nDCG@10 of the exact search
against BASELINES.md (|difference| <= 0.01). Optional extra variants (hf:, onnx:, truncate_dim,
max_seq_length) are compared with the st: baseline on the en set.

    .venv/bin/python benchmarks/eval_debian.py                      # en + xl + ja, store, ~15-40 min busy
    .venv/bin/python benchmarks/eval_debian.py --sets en --quick    # 600 docs / 100 queries, no baseline check
    .venv/bin/python benchmarks/eval_debian.py --variants hf,dim128,seq128,onnx --sets en
    --cache DIR keeps the vectors (re-runs with other index settings cost no encoding; flagged in the output)

Writes ``--out DIR`` (default ``benchmarks/out/eval``, not committed): one JSON, PNG and HTML per set.
The load of other processes is read from /proc/stat during the run and printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data" / "debian-descriptions"
SLICER = SHARED / "tools" / "debian_slice.py"

BASE = "st:all-MiniLM-L6-v2"
VARIANTS = {
    "hf": "hf:all-MiniLM-L6-v2",
    "onnx": "onnx:all-MiniLM-L6-v2",
    "dim128": "st:all-MiniLM-L6-v2?truncate_dim=128&label=st dim=128",
    "dim64": "st:all-MiniLM-L6-v2?truncate_dim=64&label=st dim=64",
    "seq128": "st:all-MiniLM-L6-v2?max_seq_length=128&label=st seq=128",
    "prefix": "st:all-MiniLM-L6-v2?query_prefix=query: &label=st query prefix",
}
METRIC_COLUMNS = {"recall@1": 3, "recall@10": 4, "mrr@10": 5, "ndcg@10": 6}


class CpuLoad:
    """Busy CPU of *other* processes (in cores) between start() and stop(), from /proc/stat minus our own time."""

    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _stat() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    def start(self) -> None:
        self.t0, self.s0, self.own0 = time.perf_counter(), self._stat(), self._own()

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        busy1, _ = self._stat()
        busy = (busy1 - self.s0[0]) / self.hz
        own = self._own() - self.own0
        return {"wall_s": wall, "all_busy_cores": busy / wall, "own_cores": own / wall,
                "others_busy_cores": max(0.0, (busy - own) / wall), "cores": os.cpu_count() or 0}


def baselines() -> dict[str, dict[str, float]]:
    """The reference rows of BASELINES.md: {"en"|"xl"|"ja": {metric: value}}."""
    out: dict[str, dict[str, float]] = {}
    for line in (DATA / "BASELINES.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7 or not re.match(r"^(en|xl|ja)\b", cells[0]):
            continue
        try:
            out[cells[0][:2]] = {m: float(cells[i]) for m, i in METRIC_COLUMNS.items()}
        except ValueError:
            continue
    return out


def make_slice(lang: str, max_docs: int, folder: Path) -> None:
    if not (folder / "corpus.jsonl").exists():
        subprocess.run([sys.executable, str(SLICER), lang, str(max_docs), str(folder)], check=True)


def quick_subset(corpus: Path, queries: Path, out: Path, n_docs: int, n_queries: int) -> tuple[Path, Path]:
    """A smaller seeded subset: n_queries queries, their relevant documents, filled to n_docs."""
    import random

    docs = [json.loads(x) for x in corpus.open(encoding="utf-8")]
    qs = [json.loads(x) for x in queries.open(encoding="utf-8")]
    random.Random(11).shuffle(qs)
    qs = qs[:n_queries]
    need = {r for q in qs for r in q["relevant"]}
    keep = [d for d in docs if d["id"] in need]
    rest = [d for d in docs if d["id"] not in need]
    random.Random(12).shuffle(rest)
    keep += rest[: max(0, n_docs - len(keep))]
    out.mkdir(parents=True, exist_ok=True)
    c, q = out / "corpus.jsonl", out / queries.name
    c.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in keep), encoding="utf-8")
    q.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in qs), encoding="utf-8")
    return c, q


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="en,xl,ja", help="comma list of en, xl, ja")
    ap.add_argument("--variants", default="", help=f"extra variants on the en set: {','.join(VARIANTS)}")
    ap.add_argument("--quick", action="store_true", help="600 docs / 100 queries per set; no baseline check")
    ap.add_argument("--ef-search", default="32,64,128,256")
    ap.add_argument("--index", default="hnsw", help="hnsw,hnsw_sq,hnsw_bq")
    ap.add_argument("--no-store", action="store_true")
    ap.add_argument("--store-k", type=int, default=None, help="neighbours per store query (default 100)")
    ap.add_argument("--speed-rounds", type=int, default=0, help="interleaved encode-speed rounds (median)")
    ap.add_argument("--speed-docs", type=int, default=200)
    ap.add_argument("--cache", default=None, help="vector cache folder (reuse encodings between runs)")
    ap.add_argument("--work", default=None, help="where the slices go (default: a temp folder)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "eval"))
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import obembed
    from obembed.eval import StoreOptions, evaluate, format_table, load_dataset, write_html, write_json, write_png
    from obembed.store import connect

    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    extra = [VARIANTS[v.strip()] for v in args.variants.split(",") if v.strip()]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="obembed-evalbench-"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ref = baselines()
    efs = [int(x) for x in args.ef_search.split(",")]
    indexes = [x.strip() for x in args.index.split(",") if x.strip()]
    failures: list[str] = []
    summary: dict[str, object] = {"command": " ".join(["benchmarks/eval_debian.py", *sys.argv[1:]]), "sets": {}}

    cache: dict[str, object] = {}

    def factory(spec: str) -> object:  # one loaded model per spec for the whole run
        if spec not in cache:
            cache[spec] = obembed.load(spec)
        return cache[spec]

    db = tempfile.mkdtemp(prefix="obembed-evalbench-db-")
    store = None if args.no_store else connect(path=str(Path(db) / "db"))
    try:
        for name in sets:
            lang = "ja" if name == "ja" else "en"
            folder = work / lang
            make_slice(lang, 0 if lang == "ja" else 3000, folder)
            corpus, queries = folder / "corpus.jsonl", folder / f"{name}_queries.jsonl"
            if args.quick:
                corpus, queries = quick_subset(corpus, queries, work / f"{name}-quick", 600, 100)
            ds = load_dataset(corpus, queries, name=name)
            variants = [BASE] + (extra if name == "en" else [])
            load = CpuLoad()
            load.start()
            sopts = StoreOptions(store=store, indexes=indexes, ef_search=efs, k=args.store_k) if store else None
            report = evaluate(ds, variants, store=sopts, cache_dir=args.cache, provider_factory=factory,
                              progress=lambda m: print(m, file=sys.stderr, flush=True),
                              speed_rounds=args.speed_rounds, speed_docs=args.speed_docs)
            cpu = load.stop()
            report["cpu"] = cpu
            print(f"\n== {name}: {len(ds.corpus)} documents, {len(ds.queries)} queries ==")
            print(format_table(report))
            print(f"load: other processes kept {cpu['others_busy_cores']:.2f} of {cpu['cores']} cores busy "
                  f"(this run {cpu['own_cores']:.2f}) over {cpu['wall_s']:.0f} s")
            stem = f"{name}{'-quick' if args.quick else ''}{f'-k{args.store_k}' if args.store_k else ''}"
            write_json(report, out / f"{stem}.json", per_query=False)
            write_png(report, out / f"{stem}.png")
            write_html(report, out / f"{stem}.html")
            got = report["models"][0]["runs"][0]["metrics"]
            row = {m: round(got[m]["mean"], 4) for m in METRIC_COLUMNS}
            check = {}
            if not args.quick and name in ref:
                for m, want in ref[name].items():
                    diff = row[m] - want
                    check[m] = {"got": row[m], "baseline": want, "diff": round(diff, 4), "ok": abs(diff) <= 0.01}
                    if abs(diff) > 0.01:
                        failures.append(f"{name} {m}: {row[m]:.4f} vs baseline {want:.3f}")
                print("baseline check: " + ", ".join(f"{m} {c['got']:.3f} vs {c['baseline']:.3f} "
                                                     f"({'ok' if c['ok'] else 'OFF'})" for m, c in check.items()))
            summary["sets"][name] = {  # type: ignore[index]
                "documents": len(ds.corpus), "queries": len(ds.queries), "exact": row, "baseline_check": check,
                "cpu": cpu,
                "models": [{"label": m["label"], "encode": m["encode"],
                            "runs": [{"search": r["search"], "recall@10": round(r["metrics"]["recall@10"]["mean"], 4),
                                      "ndcg@10": round(r["metrics"]["ndcg@10"]["mean"], 4),
                                      "latency": r.get("latency"), "overlap": r.get("overlap_with_exact@10"),
                                      "build_s": r.get("build_seconds")}
                                     for r in m["runs"]]} for m in report["models"]],
            }
    finally:
        if store is not None:
            store.close()
        shutil.rmtree(db, ignore_errors=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    print(f"\nwrote {out}/")
    if failures:
        print("BASELINE MISMATCH: " + "; ".join(failures))
        return 1
    if not args.quick:
        print("all exact-search figures within 0.01 of BASELINES.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
