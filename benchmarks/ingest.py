"""Ingest benchmark: pipeline throughput vs the model alone, no-change rerun, retrieval quality.

usage:
  python benchmarks/ingest.py speed [--n 2000] [--repeat 1] [--batch-size 1024]
  python benchmarks/ingest.py quality [--sets en,ja] [--en-docs 3000]
  python benchmarks/ingest.py tree [--files 100000]
  python benchmarks/ingest.py states [--quick] [--n 600] [--states a,b,c,d,e] [--cores 0-3]
  python benchmarks/ingest.py cli [--n 1000] [--rounds 3] [--variants auto,2,1]
  python benchmarks/ingest.py split [--n 1000] [--rounds 2]
  python benchmarks/ingest.py engine [--n 4000] [--variants space-deferred,space,ngram,off]
  python benchmarks/ingest.py build [--sizes 0,250,1000,4000] [--rounds 2]

speed   : N dev texts of the Debian corpus (seeded sample) as one .jsonl. In ONE process, interleaved:
          the model's own encode of the same texts (``provider.embed(texts)``, one call: the best case for
          the model) and the end-to-end ingest pipeline (``Ingestor``, the code ``obembed ingest`` runs: read,
          chunk, hash, embed in batches, upsert into embedded seekdb with an HNSW index) into a fresh collection.
          Then a rerun with nothing changed (must embed nothing). Ratio = model time / pipeline time (goal ≥ 0.9).
quality : the BASELINES.md slices (en 3000 docs + en/xl queries; ja whole corpus + ja queries), ingested with
          ``--truncate truncate`` (the reference cut texts at 256 tokens), queried through the code
          ``obembed search`` runs (``obembed.ingest.search``, HNSW index), recall@1/@10, MRR@10, nDCG@10 beside
          the exact brute-force reference in BASELINES.md (goal ≥ 0.99× its recall@10).
engine  : the engine's CPU per row written (dumps included) per full-text choice, deferred build included
build   : what a new collection's FULLTEXT build costs by row count (wall and engine CPU, from an engine at
          rest): its fixed part (an empty table) and its part per row, beside CREATE TABLE with the index inline
states  : issue 19's machine states (benchmarks/_states.py): idle, just after a heavy command, own engine
          writing, a competitor per core, one pinned competitor; pipeline vs the model alone in each (goal >= 0.9x).
cli     : the main job as a user runs it: ``obembed ingest`` of N texts as a fresh process (its own engine
          start, collection, indexes) into a fresh store, back to back, with the thread rule (``auto``) and with
          OBEMBED_THREADS fixed, in rotating order; wall time per run, the ratio to ``auto`` in the same round,
          and the thread counts the rule chose (from its ``-vv`` log).
split   : where the pipeline's CPU goes beyond the model's: this process vs the embedded engine, for the model
          alone and for the pipeline with its full-text index on and off (each from a quiet engine).
tree    : memory on a large tree: N small files through the whole pipeline (real model and store), our RSS
          sampled as files complete (flat = bounded queues work), then a no-change rerun over the tree.

Every phase records the CPU time other processes used meanwhile (from /proc/stat minus this process tree),
so a busy run can be told from an idle one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = next((p / "shared" for p in ROOT.parents if (p / "shared" / "data").is_dir()), ROOT.parent / "shared")
"""The workplace's shared folder: beside the checkout (/work/main) or further up (a worktree under /work/wt)."""
DATA = SHARED / "data" / "debian-descriptions"
SLICE = SHARED / "tools" / "debian_slice.py"


# ---------------------------------------------------------------------------------------------- CPU accounting
from _cpuload import Load  # noqa: E402  (benchmarks/_cpuload.py, shared by the benchmarks)


# ---------------------------------------------------------------------------------------------- data
def load_gz(name: str) -> list[dict]:
    with gzip.open(DATA / name, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def sample(n: int) -> tuple[list[dict], list[str]]:
    """The seeded sample of N English Debian descriptions every ingest benchmark uses, and their texts."""
    corpus = load_gz("en_corpus.jsonl.gz")
    random.Random(11).shuffle(corpus)
    docs = corpus[:n]
    return docs, [d["text"].strip() for d in docs]


def write_jsonl(folder: Path, docs: list[dict]) -> Path:
    """``docs`` as the .jsonl file the pipeline ingests (id and text per line)."""
    path = folder / "dev.jsonl"
    path.write_text("".join(json.dumps({"id": d["id"], "text": d["text"]}, ensure_ascii=False) + "\n"
                            for d in docs), encoding="utf-8")
    return path


def make_store(tmp: Path):
    import obembed

    return obembed.connect(path=tmp / "db", provider_factory=obembed.load)


def run_ingest(store, provider, coll_name: str, path: Path, policy: str, batch_size: int,
               fulltext: bool | str = "auto"):
    """What ``obembed ingest`` runs (the full-text parser chosen from the file, as the CLI does)."""
    from obembed.ingest.loaders import LoadOptions
    from obembed.ingest.model_choice import choose_ingest_parser
    from obembed.ingest.pipeline import Ingestor, open_collection

    fulltext, _ = choose_ingest_parser(store, coll_name, [path], fulltext)
    coll = open_collection(store, coll_name, provider, fulltext=fulltext)
    opts = LoadOptions(columns=dict(coll.columns))
    return Ingestor(coll, provider, options=opts, policy=policy, batch_size=batch_size).run([str(path)])


# ---------------------------------------------------------------------------------------------- speed
def speed(args: argparse.Namespace) -> None:
    import obembed

    docs, texts = sample(args.n)
    provider = obembed.load("st:all-MiniLM-L6-v2", device="cpu")
    provider.embed(texts[:16])  # load + warm up
    with tempfile.TemporaryDirectory(prefix="obembed-bench-") as tmpd:
        tmp = Path(tmpd)
        path = write_jsonl(tmp, docs)
        store = make_store(tmp)
        model_t, pipe_t, rows = [], [], []
        try:
            for r in range(args.repeat):
                with Load() as lm:
                    res = provider.embed(texts)
                assert len(res) == len(texts)
                model_t.append(lm.wall)
                print(f"[{r}] model only: {len(texts) / lm.wall:.2f} texts/s; {lm.describe()}", flush=True)
                name = f"bench_ingest_{r}_{os.getpid()}"
                with Load() as lp:
                    rep = run_ingest(store, provider, name, path, args.policy, args.batch_size)
                pipe_t.append(lp.wall)
                print(f"[{r}] pipeline  : {rep.chunks_embedded / lp.wall:.2f} chunks/s ({rep.chunks_embedded} chunks, "
                      f"embed {rep.embed_seconds:.1f} s, write {rep.write_seconds:.1f} s); {lp.describe()}", flush=True)
                rows.append((lm, lp, rep))
            with Load() as lr:
                rerun = run_ingest(store, provider, name, path, args.policy, args.batch_size)
            print(f"no-change rerun: {lr.wall:.2f} s, embedded {rerun.chunks_embedded}, skipped {rerun.chunks_skipped};"
                  f" {lr.describe()}", flush=True)
            for r in range(args.repeat):
                store.drop_collection(f"bench_ingest_{r}_{os.getpid()}", missing_ok=True)
        finally:
            store.close()
    m, p = statistics.median(model_t), statistics.median(pipe_t)
    cpu = statistics.median(lm.ours / lp.ours for lm, lp, _ in rows)
    busy = [(lm.others / lm.wall, lp.others / lp.wall) for lm, lp, _ in rows]
    print(f"\nRESULT n={args.n} repeat={args.repeat} batch={args.batch_size} policy={args.policy}: model-only "
          f"{args.n / m:.2f} texts/s, pipeline {args.n / p:.2f} texts/s, wall ratio (median) {m / p:.3f}; "
          f"CPU ratio (model CPU-s / pipeline CPU-s incl. seekdb, median) {cpu:.3f}; other processes' cores "
          f"(model, pipeline) per round: {', '.join(f'({a:.2f}, {b:.2f})' for a, b in busy)}; "
          f"rerun {lr.wall:.2f} s (embedded {rerun.chunks_embedded})")


# ---------------------------------------------------------------------------------------------- machine states
def watch_threads(provider: Any) -> dict[int, int]:
    """Count the thread rule's answers (one per batch) on ``provider``'s advisor: ``{threads: batches}``."""
    picks: dict[int, int] = {}
    adv = getattr(getattr(provider, "_runner", None), "advisor", None)
    if adv is None:
        return picks
    inner = adv.decide

    def decide() -> Any:
        d = inner()
        picks[d.threads] = picks.get(d.threads, 0) + 1
        return d

    adv.decide = decide
    return picks


def states(args: argparse.Namespace) -> None:
    """Issue 19: pipeline vs the model alone in each machine state (benchmarks/_states.py), goal >= 0.9x.

    Both sides use what ``obembed ingest`` loads for the default model (the CLI's bulk path), freshly loaded
    for every measurement (a fresh thread advisor, as a new command gets); model loading is not timed.
    Each measurement starts from an engine at rest (``quiet_engine``: memtable dumped, engine idle, before the
    state is entered): otherwise the dumps of one pipeline's rows land at random in a later measurement, model
    alone or pipeline. What that rest costs after a pipeline (its rows' freeze and dumps, in the engine) is
    printed as the pipeline's after-work; ``--no-quiet`` measures back to back instead.
    """
    from _cpuload import cpu_line, quiet_engine
    from _states import LABELS, States, parse_cores

    from obembed.cli._common import load_provider

    spec = "st:all-MiniLM-L6-v2"
    docs, texts = sample(args.n)
    print(cpu_line(), flush=True)
    machine = States(heavy_seconds=args.heavy_seconds, cores=parse_cores(args.cores))
    results: dict[str, list[tuple[str, float, float, int, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="obembed-bench-") as tmpd:
        tmp = Path(tmpd)
        path = write_jsonl(tmp, docs)
        store = make_store(tmp)
        k = 0
        try:
            for st in [x.strip() for x in args.states.split(",") if x.strip()]:
                rows = results.setdefault(st, [])
                for r in range(args.repeat):
                    order = ("pipeline", "model") if (r % 2 == 0) else ("model", "pipeline")
                    for what in order:
                        if args.quiet:
                            e0 = eng()
                            quiet_engine(store)
                            after = eng() - e0
                            print(f"  engine at rest: {after:.1f} CPU-s of engine work left by the last "
                                  "measurement", flush=True)
                        with machine.enter(st) as info:
                            provider = load_provider(spec, purpose="bulk")  # a fresh advisor, as a new command
                            if hasattr(provider, "load"):
                                provider.load()
                            picks = watch_threads(provider)
                            build = 0.0  # the pipeline's FULLTEXT build (a new collection's, over its load)
                            beside = False  # ... run beside the model's last slice (then not a serial tail)
                            with Load() as m:
                                if what == "model":
                                    n = len(provider.embed(texts))
                                else:
                                    k += 1
                                    rep = run_ingest(store, provider, f"bench_states_{k}_{os.getpid()}", path,
                                                     args.policy, args.batch_size, args.fulltext)
                                    n, build = rep.chunks_embedded, rep.fulltext_seconds
                                    beside = rep.fulltext_beside
                            adv = getattr(getattr(provider, "_runner", None), "advisor", None)
                            threads = adv.last.threads if adv is not None and adv.last is not None else 0
                        rows.append((what, m.wall, m.others_cores, threads, 0.0 if beside else build))
                        print(f"{LABELS[st]:<36} r{r + 1} {what:<8} {n / m.wall:6.2f} texts/s, threads {threads} "
                              f"(batches per thread count: {dict(sorted(picks.items()))}); {m.describe()} {info}"
                              + (f"; full-text index built in {build:.1f} s"
                                 + (" beside the model's last slice" if beside else " after the load")
                                 if build else ""),
                              flush=True)
                        # the pipeline's collections stay until the temporary store goes: a DROP sets the engine
                        # purging and merging for 10-30 s (seen per engine thread), and that bill would land on
                        # whichever measurement comes next, model alone or pipeline
        finally:
            store.close()
            machine.close()
    print(f"\n{args.n} Debian texts, `obembed ingest`'s default path (full-text {args.fulltext}), cores "
          f"{machine.cores}, {args.repeat} interleaved round(s) per state, engine at rest before each "
          f"measurement: {'yes' if args.quiet else 'no'}")
    print("| machine state | model alone texts/s | pipeline texts/s | pipeline × model | per round | without a "
          "full-text build after the load | threads (model / pipeline) | others' CPU (cores: model / pipeline) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for st, rows in results.items():
        mw = [w for what, w, _, _, _ in rows if what == "model"]
        pw = [w for what, w, _, _, _ in rows if what == "pipeline"]
        builds = [b for what, _, _, _, b in rows if what == "pipeline"]
        per_round = [a / b for a, b in zip(mw, pw, strict=True)]
        no_build = statistics.median(a / (b - c) for a, b, c in zip(mw, pw, builds, strict=True))
        th = "/".join(str(t) for what, _, _, t, _ in rows if what == "model") + " / " + \
            "/".join(str(t) for what, _, _, t, _ in rows if what == "pipeline")
        oth = ", ".join(f"{o:.2f}" for what, _, o, _, _ in rows if what == "model") + " / " + \
            ", ".join(f"{o:.2f}" for what, _, o, _, _ in rows if what == "pipeline")
        print(f"| {LABELS[st]} | {args.n / statistics.median(mw):.1f} | {args.n / statistics.median(pw):.1f} "
              f"| **{statistics.median(per_round):.2f}×** | {', '.join(f'{x:.2f}' for x in per_round)} "
              f"| {no_build:.2f}× (build {statistics.median(builds):.1f} s) | {th} | {oth} |")
    print(f"loadavg at the end {os.getloadavg()}")


# ---------------------------------------------------------------------------------------------- quality
MODES = [("default (text)", {}), ("HNSW", {"exact": False}), ("HNSW ef_search=200", {"ef_search": 200}),
         ("exact", {"exact": True})]
"""Query modes: ``obembed search`` as a user runs it (text in; exact scan up to 20k rows, HNSW above), the
HNSW index at its default breadth, a wider HNSW search, and an exact scan (what BASELINES.md computed)."""


def read_baselines() -> dict[str, dict[str, float]]:
    text = (DATA / "BASELINES.md").read_text(encoding="utf-8")
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.match(r"^(en|xl|ja)\b", cells[0]):
            try:
                out[cells[0][:2]] = {"recall@1": float(cells[3]), "recall@10": float(cells[4]),
                                     "mrr@10": float(cells[5]), "ndcg@10": float(cells[6])}
            except ValueError:
                continue
    return out


def metrics(ranked: list[list[str]], relevant: list[set[str]]) -> dict[str, float]:
    r1 = r10 = mrr = ndcg = 0.0
    for got, rel in zip(ranked, relevant, strict=True):
        for rank, doc in enumerate(got[:10], 1):
            if doc in rel:
                r10 += 1
                r1 += rank == 1
                mrr += 1 / rank
                ndcg += 1 / math.log2(rank + 1)
                break
    n = len(ranked)
    return {"recall@1": r1 / n, "recall@10": r10 / n, "mrr@10": mrr / n, "ndcg@10": ndcg / n}


def quality(args: argparse.Namespace) -> None:
    import obembed
    from obembed.ingest.search import search

    base = read_baselines()
    provider = obembed.load("st:all-MiniLM-L6-v2", device="cpu")
    results = []
    with tempfile.TemporaryDirectory(prefix="obembed-quality-") as tmpd:
        tmp = Path(tmpd)
        store = make_store(tmp)
        try:
            for lang in args.sets.split(","):
                out = tmp / lang
                n_docs = args.en_docs if lang == "en" else 0
                subprocess.run([sys.executable, str(SLICE), lang, str(n_docs), str(out)], check=True)
                name = f"quality_{lang}_{os.getpid()}"
                with Load() as li:
                    rep = run_ingest(store, provider, name, out / "corpus.jsonl", "truncate", args.batch_size)
                print(f"{lang}: ingested {rep.chunks_embedded} docs ({rep.chunks_truncated} truncated, "
                      f"{len(rep.failures)} failures); {li.describe()}", flush=True)
                for qset in ["en", "xl"] if lang == "en" else ["ja"]:
                    qs = [json.loads(x) for x in (out / f"{qset}_queries.jsonl").read_text("utf-8").splitlines()]
                    qvecs = provider.embed_queries([q["text"] for q in qs])  # the vectors `search` would compute
                    for mode, kw in MODES:
                        ranked = []
                        with Load() as lq:
                            if mode == "default (text)":  # the exact code path of `obembed search`, text in
                                for q in qs:
                                    hits = search(store, name, q["text"], k=10, provider=provider)
                                    ranked.append([h.metadata.get("id") for h in hits])
                            else:
                                coll = store.collection(name, provider=provider)
                                for v in qvecs:
                                    ranked.append([h.metadata.get("id") for h in coll.search(v, k=10, **kw)])
                        m = metrics(ranked, [set(q["relevant"]) for q in qs])
                        ref = base.get(qset, {})
                        results.append((f"{qset}, {mode}", rep.chunks_embedded, len(qs), m, ref, lq))
                        print(f"  {qset} {mode}: " + ", ".join(f"{k} {v:.3f} (ref {ref.get(k, float('nan')):.3f})"
                                                               for k, v in m.items())
                              + f"; recall@10 ratio {m['recall@10'] / ref['recall@10']:.3f}; {lq.describe()}",
                              flush=True)
                store.drop_collection(name, missing_ok=True)
        finally:
            store.close()
    print("\n| set | corpus | queries | recall@1 | recall@10 | MRR@10 | nDCG@10 | reference recall@10 | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for qset, nd, nq, m, ref, _ in results:
        print(f"| {qset} | {nd:,} | {nq} | {m['recall@1']:.3f} | {m['recall@10']:.3f} | {m['mrr@10']:.3f} | "
              f"{m['ndcg@10']:.3f} | {ref['recall@10']:.3f} | {m['recall@10'] / ref['recall@10']:.3f} |")


# ---------------------------------------------------------------------------------------------- tree (memory)
def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def tree(args: argparse.Namespace) -> None:
    """Memory on a large tree: N small files (10 distinct texts, so the model's work stays small: identical
    texts in a batch are embedded once), real MiniLM, real store (collection without a vector index, to
    measure the pipeline rather than HNSW inserts). Our RSS is sampled as files complete."""
    import threading

    import obembed
    from obembed.ingest.loaders import LoadOptions
    from obembed.ingest.pipeline import Ingestor

    provider = obembed.load("st:all-MiniLM-L6-v2", device="cpu")
    provider.embed(["warm up"])
    with tempfile.TemporaryDirectory(prefix="obembed-tree-") as tmpd:
        tmp = Path(tmpd)
        root = tmp / "tree"
        t0 = time.perf_counter()
        for i in range(args.files):
            d = root / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                d.mkdir(parents=True)
            (d / f"f{i:06d}.txt").write_text(f"Document about topic {i % 10}. It has one more sentence.\n")
        print(f"made {args.files} files in {time.perf_counter() - t0:.1f} s", flush=True)
        store = make_store(tmp)
        try:
            coll = store.create_collection("tree", provider, index=None)
            done = [0]
            samples: list[tuple[int, float]] = []
            stop = threading.Event()

            def progress(event: str, n: int) -> None:
                if event == "file":
                    done[0] += n

            def sample() -> None:
                while not stop.wait(0.5):
                    samples.append((done[0], _rss_mb()))

            base = _rss_mb()
            th = threading.Thread(target=sample, daemon=True)
            th.start()
            with Load() as li:
                rep = Ingestor(coll, provider, options=LoadOptions(), progress=progress).run([str(root)])
            stop.set()
            th.join()
            print(f"ingest: {rep.files_seen} files, {rep.chunks_embedded} rows, {len(rep.failures)} failures; "
                  f"{li.describe()}", flush=True)
            print(f"RSS before the run {base:.0f} MB; during the run:", flush=True)
            for frac in (0.1, 0.25, 0.5, 0.75, 1.0):
                want = int(args.files * frac)
                got = next(((f, r) for f, r in samples if f >= want), samples[-1] if samples else (0, base))
                print(f"  after {got[0]:>7} files: {got[1]:.0f} MB", flush=True)
            print(f"  peak {max(r for _, r in samples) if samples else base:.0f} MB", flush=True)
            with Load() as lr:
                again = Ingestor(coll, provider, options=LoadOptions()).run([str(root)])
            print(f"no-change rerun over {again.files_seen} files: embedded {again.chunks_embedded}, skipped "
                  f"{again.chunks_skipped}; {lr.describe()}; RSS {_rss_mb():.0f} MB", flush=True)
        finally:
            store.close()



# ---------------------------------------------------------------------------------------------- the CLI, end to end
def cli(args: argparse.Namespace) -> None:
    """Issue 19's headline case: ``obembed ingest`` run after other commands, the rule vs fixed thread counts."""
    import shutil

    from _cpuload import cpu_line

    docs, _ = sample(args.n)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    exe = Path(sys.executable).with_name("obembed")
    cmd0 = [str(exe)] if exe.exists() else [sys.executable, "-m", "obembed"]
    print(cpu_line(), flush=True)
    walls: dict[str, list[float]] = {v: [] for v in variants}
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="obembed-bench-cli-") as tmpd:
        tmp = Path(tmpd)
        path = write_jsonl(tmp, docs)
        k = 0
        for r in range(args.rounds):
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            this: dict[str, float] = {}
            for v in order:
                k += 1
                env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                           OBEMBED_DB_PATH=str(tmp / f"db{k}"), OBEMBED_ENGINE_IDLE="0")
                env.pop("OBEMBED_THREADS", None)
                if v != "auto":
                    env["OBEMBED_THREADS"] = v
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                with Load() as m:
                    out = subprocess.run([*cmd0, "-v", "-v", "ingest", str(path), "-c", "bench",
                                          "--truncate", "truncate"], cwd=tmp, env=env, capture_output=True,
                                         text=True, check=False)
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                # the command and its engine have exited (reaped), so their CPU is in RUSAGE_CHILDREN, not /proc
                run_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
                if out.returncode != 0:
                    raise SystemExit(f"obembed ingest failed ({out.returncode}):\n{out.stderr[-3000:]}")
                picks = re.findall(r"threads per process: (\d+) thread", out.stderr)
                this[v] = m.wall
                walls[v].append(m.wall)
                others = max(0.0, m.others - run_cpu) / m.wall
                print(f"r{r + 1} {v:<5} {m.wall:6.1f} s  {args.n / m.wall:5.1f} texts/s  thread decisions "
                      f"{'->'.join(picks) or '(fixed)'}; the command and its engine {run_cpu:.1f} CPU-s, "
                      f"others {others:.2f} cores", flush=True)
                shutil.rmtree(tmp / f"db{k}", ignore_errors=True)
            for v in variants:
                ratios[v].append(this[variants[0]] / this[v])
    base = variants[0]
    print(f"\n`obembed ingest` of {args.n} Debian texts, a fresh process and store per run, {args.rounds} round(s), "
          f"rotating order; x {base} = {base}'s wall / this wall in the same round (median)")
    print("| threads | wall s (median) | texts/s | × " + base + " | per round |")
    print("| --- | --- | --- | --- | --- |")
    for v in variants:
        w = statistics.median(walls[v])
        print(f"| {v} | {w:.1f} | {args.n / w:.1f} | **{statistics.median(ratios[v]):.2f}×** | "
              f"{', '.join(f'{x:.2f}' for x in ratios[v])} |")
    print(cpu_line())


# ---------------------------------------------------------------------------------------------- CPU split
def split(args: argparse.Namespace) -> None:
    """The pipeline's CPU beyond the model's, split between this process and the engine: the default full-text
    parser (words for this English sample), the ``ngram`` parser, no full-text index."""
    from _cpuload import cpu_line, quiet_engine

    from obembed.cli._common import load_provider

    docs, texts = sample(args.n)
    print(cpu_line(), flush=True)
    with tempfile.TemporaryDirectory(prefix="obembed-bench-split-") as tmpd:
        tmp = Path(tmpd)
        path = write_jsonl(tmp, docs)
        store = make_store(tmp)
        provider = load_provider("st:all-MiniLM-L6-v2", purpose="bulk")
        provider.embed(texts[:50])  # loaded and warm
        k = 0
        try:
            def measure(label: str, fn: Any) -> None:
                quiet_engine(store)
                p0 = time.process_time()
                with Load() as m:
                    fn()
                own = time.process_time() - p0
                print(f"{label:<26} wall {m.wall:6.1f} s  {args.n / m.wall:5.1f} texts/s  CPU: tree {m.ours:6.1f} s, "
                      f"this process {own:6.1f} s, engine {m.ours - own:5.1f} s  (others {m.others_cores:.2f} "
                      "cores)", flush=True)

            for _ in range(args.rounds):
                measure("model alone", lambda: provider.embed(texts))
                for ft in ("auto", "ngram", False):
                    k += 1

                    def go(ft: bool | str = ft, k: int = k) -> None:
                        run_ingest(store, provider, f"split_{k}_{os.getpid()}", path, "truncate", 1024, ft)

                    label = {"auto": "full-text auto (space)", "ngram": "full-text ngram", False: "no full-text"}
                    measure(f"pipeline, {label[ft]}", go)
        finally:
            store.close()

# ---------------------------------------------------------------------------------------------- engine cost
def eng() -> float:
    """The engine's CPU-s so far: this process tree minus this process."""
    from _cpuload import tree_seconds

    return tree_seconds(os.getpid()) - time.process_time()


def engine(args: argparse.Namespace) -> None:
    """What the engine spends on the rows an ingest writes, dumps included, per full-text choice (no model:
    fixed unit vectors, the real texts): HNSW kept as rows arrive in every variant; ``deferred`` loads first
    and builds the FULLTEXT index after (what ``obembed ingest`` does for a new collection)."""
    import numpy as np
    from _cpuload import cpu_line, quiet_engine, settle

    _, texts = sample(args.n)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(texts), 384)).astype("float32")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    print(cpu_line(), flush=True)

    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        parser, _, how = variant.partition("-")
        with tempfile.TemporaryDirectory(prefix="obembed-bench-engine-") as tmpd:
            store = make_store(Path(tmpd))
            try:
                settle(0.15, 1.0, 60)
                coll = store.create_collection("c", 384, fulltext=False if parser == "off" else parser,
                                               defer_fulltext=how == "deferred")
                quiet_engine(store)
                rows = [{"id": f"r{i}", "vector": v, "content": t, "source": "x.jsonl", "chunk": 0,
                         "content_hash": "h" * 16, "metadata": {"k": "v"}}
                        for i, (t, v) in enumerate(zip(texts, vecs, strict=True))]
                e0, t0 = eng(), time.perf_counter()
                for i in range(0, len(rows), 256):
                    coll.upsert(rows[i:i + 256])
                load_s, e1 = time.perf_counter() - t0, eng()
                t1 = time.perf_counter()
                if coll.fulltext_pending:
                    coll.create_fulltext_index()
                build_s, e2 = time.perf_counter() - t1, eng()
                time.sleep(2.0)
                settle(0.15, 2.0, 120)
                e3 = eng()
                quiet_engine(store)  # what is left in memory: frozen, dumped
                e4 = eng()
            finally:
                store.close()
        print(f"| {variant} | {load_s:.1f} s, {e1 - e0:.1f} | {build_s:.1f} s, {e2 - e1:.1f} | {e3 - e2:.1f} | "
              f"{e4 - e3:.1f} | **{e4 - e0:.1f}** ({(e4 - e0) / args.n * 1000:.2f} per 1,000 rows) |", flush=True)
    print(f"(columns: variant | load wall, engine CPU-s | FULLTEXT build wall, CPU-s | engine until quiet | freeze "
          f"and dump | total engine CPU-s), {args.n} Debian texts")


# ---------------------------------------------------------------------------------------------- FULLTEXT build
def build(args: argparse.Namespace) -> None:
    """``Collection.create_fulltext_index()`` (what ``obembed ingest`` runs after a new collection's first load)
    over 0..N loaded rows: wall seconds and engine CPU-s, each from an engine at rest; and CREATE TABLE with the
    index inline, for the fixed part's sake. Fixed vectors, real Debian texts, the ``space`` parser."""
    import numpy as np
    from _cpuload import cpu_line, quiet_engine

    try:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 0:
        raise SystemExit(f"build: --sizes {args.sizes!r} must be row counts ≥ 0, comma-separated (e.g. 0,250,1000)")
    _, texts = sample(max([*sizes, 1]))
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(texts), 384)).astype("float32")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    print(cpu_line(), flush=True)

    out: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="obembed-bench-build-") as tmpd:
        store = make_store(Path(tmpd))
        k = 0
        try:
            for r in range(args.rounds):
                for n in sizes:
                    k += 1
                    coll = store.create_collection(f"b{k}", 384, fulltext="space", defer_fulltext=True)
                    rows = [{"id": f"r{i}", "vector": vecs[i], "content": texts[i], "source": "x.jsonl",
                             "chunk": 0, "content_hash": "h" * 16, "metadata": {}} for i in range(n)]
                    for i in range(0, n, 256):
                        coll.upsert(rows[i:i + 256])
                    quiet_engine(store)
                    e0, t0 = eng(), time.perf_counter()
                    coll.create_fulltext_index()
                    w, e = time.perf_counter() - t0, eng() - e0
                    out.setdefault(f"build over {n} rows", []).append((w, e))
                    print(f"r{r + 1} FULLTEXT build over {n:>5} rows: {w:.2f} s, engine {e:.2f} CPU-s", flush=True)
                quiet_engine(store)
                e0, t0 = eng(), time.perf_counter()
                store.create_collection(f"i{r}", 384, fulltext="space")
                w, e = time.perf_counter() - t0, eng() - e0
                out.setdefault("CREATE TABLE, index inline", []).append((w, e))
                print(f"r{r + 1} CREATE TABLE with the index inline: {w:.2f} s, engine {e:.2f} CPU-s", flush=True)
        finally:
            store.close()
    print("\n| step | wall s (median) | engine CPU-s (median) |\n| --- | --- | --- |")
    for label, vals in out.items():
        print(f"| {label} | {statistics.median(v[0] for v in vals):.2f} | "
              f"{statistics.median(v[1] for v in vals):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--n", type=int, default=2000)
    s.add_argument("--repeat", type=int, default=1)
    s.add_argument("--batch-size", type=int, default=1024)
    s.add_argument("--policy", default="truncate", choices=["truncate", "chunk"])
    q = sub.add_parser("quality")
    q.add_argument("--sets", default="en,ja")
    q.add_argument("--en-docs", type=int, default=3000)
    q.add_argument("--batch-size", type=int, default=1024)
    m = sub.add_parser("states", help="issue 19's machine states: pipeline vs model alone in each")
    m.add_argument("--n", type=int, default=600)
    m.add_argument("--repeat", type=int, default=1)
    m.add_argument("--batch-size", type=int, default=1024)
    m.add_argument("--policy", default="truncate", choices=["truncate", "chunk"])
    m.add_argument("--states", default="a,b,c,d,e")
    m.add_argument("--fulltext", default="auto", help="the pipeline's full-text parser (auto: as obembed ingest)")
    m.add_argument("--no-quiet", dest="quiet", action="store_false",
                   help="do not bring the engine to rest before each measurement")
    m.add_argument("--heavy-seconds", type=float, default=20.0)
    m.add_argument("--cores", default="")
    m.add_argument("--quick", action="store_true", help="200 texts, 12 s heavy command: a few minutes")
    c = sub.add_parser("cli", help="`obembed ingest` end to end, the thread rule vs fixed thread counts")
    c.add_argument("--n", type=int, default=1000)
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--variants", default="auto,2,1", help="auto (the rule) first, then OBEMBED_THREADS values")
    sp = sub.add_parser("split", help="the pipeline's CPU beyond the model's: this process vs the engine")
    sp.add_argument("--n", type=int, default=1000)
    sp.add_argument("--rounds", type=int, default=2)
    e = sub.add_parser("engine", help="the engine's CPU per row written, dumps included, per full-text choice")
    e.add_argument("--n", type=int, default=4000)
    e.add_argument("--variants", default="space-deferred,space,ngram,off")
    b = sub.add_parser("build", help="a new collection's FULLTEXT build by row count: fixed part and per row")
    b.add_argument("--sizes", default="0,250,1000,4000")
    b.add_argument("--rounds", type=int, default=2)
    t = sub.add_parser("tree")
    t.add_argument("--files", type=int, default=100_000)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if getattr(args, "quick", False):
        args.n, args.heavy_seconds = min(args.n, 200), 12.0
    {"speed": speed, "quality": quality, "tree": tree, "states": states, "cli": cli,
     "split": split, "engine": engine, "build": build}[args.cmd](args)


if __name__ == "__main__":
    main()
