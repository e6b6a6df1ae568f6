"""Run an evaluation: every model variant × every search path, on one retrieval set.

A *variant* is a spec string as ``obembed.load`` takes it, plus a few options that belong to the
evaluation rather than the provider (they are removed before the provider is built):

* ``label=NAME``: the name shown in tables and charts (default: the spec);
* ``query_prefix=TEXT`` / ``document_prefix=TEXT``: text prepended to queries / documents by the
  evaluation (to measure what an instruction prefix is worth on a model that has none);
* ``prompts=off``: disable the model's own saved prompts (E5's ``query: `` ...), to compare on/off.

Search paths: brute-force numpy (the exact reference, always), and through the real store when asked:
the store's exact scan and its approximate index (``index`` types × ``ef_search`` values), or, with
``StoreOptions.modes``, one row per search mode (dense, sparse, full-text, hybrid with weights, any of them
reranked: :mod:`obembed.eval.modes`), each compared with the first mode by a paired bootstrap.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np

from ..errors import ConfigError, InvalidInputError, redact
from .data import Dataset
from .encode import encode
from .metrics import METRICS, per_query_metrics, summarize
from .modes import SearchMode, expand_modes, run_modes
from .search import exact_search

__all__ = ["EVAL_OPTIONS", "StoreOptions", "Variant", "evaluate", "parse_variant"]

log = logging.getLogger(__name__)

EVAL_OPTIONS = ("label", "query_prefix", "document_prefix", "prompts")


@dataclass(frozen=True)
class Variant:
    """One model configuration to evaluate."""

    label: str
    spec: str
    """What ``obembed.load`` receives (the evaluation's own options removed)."""
    query_prefix: str = ""
    document_prefix: str = ""
    prompts: bool = True
    shown: str = ""
    """The spec as tables, JSON, HTML and progress lines show it: secret options dropped, redacted."""

    @property
    def display_spec(self) -> str:
        return self.shown or _display_spec(self.spec)


def _display_spec(text: str) -> str:
    """``text`` without secret options (``api_key=`` ...) and with anything secret-looking redacted."""
    from ..providers.base import Provider

    base, _, query = text.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() not in Provider.secret_options]
    if len(kept) == len(pairs):
        return redact(text)  # nothing to drop: the text as written
    return redact(base + ("?" + urlencode(kept) if kept else ""))


def parse_variant(text: str) -> Variant:
    """``st:all-MiniLM-L6-v2?truncate_dim=128&label=mini128`` -> :class:`Variant`."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("a --model spec is empty; use BACKEND:MODEL[?option=value&...]")
    text = text.strip()
    base, _, query = text.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    own = {k: v for k, v in pairs if k in EVAL_OPTIONS}
    rest = [(k, v) for k, v in pairs if k not in EVAL_OPTIONS]
    spec = base + ("?" + urlencode(rest) if rest else "")
    prompts = own.get("prompts", "on").lower()
    if prompts not in ("on", "off", "true", "false", "yes", "no", "1", "0"):
        raise ConfigError(f"prompts={own['prompts']!r} in {text!r}: use prompts=on or prompts=off")
    shown = _display_spec(spec)
    label = redact(own["label"]) if own.get("label") else _display_spec(text)
    return Variant(label=label, spec=spec, query_prefix=own.get("query_prefix", ""),
                   document_prefix=own.get("document_prefix", ""),
                   prompts=prompts in ("on", "true", "yes", "1"), shown=shown)


@dataclass
class StoreOptions:
    """How to exercise the real store: which index types and ef_search values; ``None`` store = skip."""

    store: Any = None
    """An open :class:`obembed.store.Store` (the caller owns and closes it)."""
    indexes: Sequence[str] = ("hnsw",)
    ef_search: Sequence[int] = (64,)
    exact: bool = True
    max_queries: int | None = None
    """Time the store on at most this many queries (seeded sample); metrics use the same subset."""
    k: int | None = None
    """How many neighbours each store query asks for (default: the largest metric cut-off, 100). Metrics
    with a larger cut-off are not reported for store runs. The engine raises an ef_search below k to k."""
    keep: bool = False
    """Keep the evaluation collections (``eval_<n>_<index>``) instead of dropping them."""
    prefix: str = "eval"
    modes: Sequence[SearchMode | str] = ()
    """Search modes to compare (``"dense"``, ``"fulltext"``, ``"hybrid:dense=1,fulltext=0.5"``, ``"dense+rerank"``
    ...; :mod:`obembed.eval.modes`). Given, the store rows are these modes (searched with the store's default
    exact-or-index policy) instead of the exact scan and the ``indexes`` × ``ef_search`` sweep."""
    rerank: Any = None
    """A reranker spec (``cross-encoder:DIR``, ``cohere:rerank-v3.5`` ...) or object, for ``+rerank`` modes."""
    candidates: int | None = None
    """First-stage rows a reranked mode reads (default 40), and the rows each hybrid leg returns (default
    ``max(4k, 40)``, the store's)."""
    fulltext: bool | str = "auto"
    """The FULLTEXT parser of the mode collection: ``"auto"`` (default) the one ``obembed ingest`` would choose for
    the documents (:func:`obembed.languages.choose_fulltext_parser`), True ``ngram``, or a name (``space`` ...)."""


@dataclass
class _Run:
    name: str
    rankings: dict[str, list[str]]
    extra: dict[str, Any] = field(default_factory=dict)


def _disable_prompts(provider: Any) -> Callable[[], None]:
    """Switch off a provider's query/document prompts; returns a function that puts them back."""
    saved = (provider.query_prefix, provider.document_prefix)
    st = getattr(provider, "st_model", None) if hasattr(type(provider), "st_model") else None
    st_saved = (dict(st.prompts or {}), st.default_prompt_name) if st is not None else None
    provider.query_prefix = ""
    provider.document_prefix = ""
    if st is not None:
        st.prompts = {}
        st.default_prompt_name = None

    def restore() -> None:
        provider.query_prefix, provider.document_prefix = saved
        if st is not None and st_saved is not None:
            st.prompts, st.default_prompt_name = st_saved

    return restore


def _latency(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples, dtype=np.float64) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "mean_ms": float(a.mean()), "n": len(samples)}


def _store_runs(opts: StoreOptions, vi: int, variant: Variant, provider: Any, dataset: Dataset,
                doc_vecs: np.ndarray, query_vecs: np.ndarray, k: int, qidx: np.ndarray,
                ref: dict[str, list[str]]) -> list[_Run]:
    store = opts.store
    runs: list[_Run] = []
    k = min(int(opts.k), k) if opts.k else k
    ids = [d.id for d in dataset.corpus]
    base = re.sub(r"[^a-z0-9_]", "_", f"{opts.prefix}_{vi}")
    for n_index, index in enumerate(opts.indexes):
        name = f"{base}_{re.sub(r'[^a-z0-9]', '', index.lower())}"
        store.drop_collection(name, missing_ok=True)
        coll = store.create_collection(name, provider, index=None)  # load first, then build: the fast path
        try:
            rows = [{"id": i, "vector": v, "content": d.text}
                    for i, v, d in zip(ids, doc_vecs, dataset.corpus, strict=True)]
            t0 = time.perf_counter()
            coll.upsert(rows)
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            coll.create_index(index)
            build_s = time.perf_counter() - t0
            size = _store_size(store, coll)
            paths: list[tuple[str, dict[str, Any]]] = []
            if opts.exact and n_index == 0:
                paths.append(("store exact", {"exact": True}))
            if index.startswith("hnsw"):
                paths += [(f"{index} ef={ef}", {"ef_search": int(ef)}) for ef in opts.ef_search]
            else:
                paths.append((index, {"exact": False}))  # the index, whatever the store's default policy
            for run_name, kw in paths:
                rankings: dict[str, list[str]] = {}
                times: list[float] = []
                for qi in qidx:
                    q = dataset.queries[qi]
                    t = time.perf_counter()
                    hits = coll.search(query_vecs[qi], k=k, **kw)
                    times.append(time.perf_counter() - t)
                    rankings[q.id] = [h.id for h in hits]
                agree = np.mean([len(set(rankings[q][:10]) & set(ref[q][:10])) / max(1, min(10, len(ref[q])))
                                 for q in rankings])
                extra: dict[str, Any] = {"latency": _latency(times), "overlap_with_exact@10": float(agree), "k": k}
                if not kw.get("exact"):
                    extra |= {"index": index, "ef_search": kw.get("ef_search"), "load_seconds": load_s,
                              "build_seconds": build_s, "store_bytes": size}
                runs.append(_Run(run_name, rankings, extra))
        finally:
            if not opts.keep:
                store.drop_collection(name, missing_ok=True)
    return runs


def _store_size(store: Any, coll: Any) -> int | None:
    """Bytes the store reports for the collection, when it can tell (``Collection.stats()``/``size_bytes()``)."""
    for attr in ("size_bytes", "stats"):
        fn = getattr(coll, attr, None)
        if callable(fn):
            try:
                val = fn()
            except Exception as exc:  # a size is a nice-to-have; never fail the evaluation for it
                log.info("could not read the store size of %s: %s", coll.name, exc)
                return None
            if isinstance(val, dict):
                val = val.get("bytes", val.get("size_bytes", val.get("data_bytes")))
            return int(val) if isinstance(val, int | float) else None
    return None


def evaluate(
    dataset: Dataset,
    variants: Iterable[Variant | str],
    *,
    metrics: Sequence[str] = METRICS,
    store: StoreOptions | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    cache_dir: str | None = None,
    provider_factory: Callable[..., Any] | None = None,
    progress: Callable[[str], None] | None = None,
    keep_rankings: bool = False,
    speed_rounds: int = 0,
    speed_docs: int = 200,
) -> dict[str, Any]:
    """Evaluate every variant on ``dataset``; returns a JSON-serialisable report (see docs/eval.md).

    ``keep_rankings``: also return every run's ranked document ids per query (``runs[i]["rankings"]``).
    ``speed_rounds``: after the evaluation, time every variant again on the same seeded sample of
    ``speed_docs`` documents, ``speed_rounds`` times, interleaved (round-robin, order rotated each round), so
    load changes on a shared machine hit all variants alike; reports the median and the per-round ratio to
    the first variant (``encode.speed``).
    """
    if speed_rounds < 0 or speed_docs < 1:
        raise ConfigError(f"speed_rounds={speed_rounds} must be ≥ 0 and speed_docs={speed_docs} ≥ 1")
    import obembed

    factory = provider_factory or obembed.load
    say = progress or (lambda msg: log.info("%s", msg))
    vs = [parse_variant(v) if isinstance(v, str) else v for v in variants]
    if not vs:
        raise ConfigError("no model to evaluate: give at least one --model SPEC")
    labels = [v.label for v in vs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two variants share a label ({labels}); add &label=NAME to tell them apart")
    modes = expand_modes(store.modes, reranker=store.rerank is not None) if store is not None and store.modes else []
    if store is not None and store.rerank is not None and not modes:
        raise ConfigError("a reranker applies to search modes: add --mode (e.g. --mode dense) to rerank its rows")
    if store is not None and store.candidates is not None and (
            isinstance(store.candidates, bool) or not isinstance(store.candidates, int)
            or not 1 <= store.candidates <= 16384):
        raise ConfigError(f"candidates={store.candidates!r} must be an int between 1 and 16384")
    reranker: Any = None
    if modes and store is not None and store.rerank is not None:
        reranker = obembed.load_reranker(store.rerank) if isinstance(store.rerank, str) else store.rerank
        load = getattr(reranker, "load", None)
        if callable(load):
            load()  # loaded before the clock: reranked rows time the scoring, not the model load
    k_max = max(int(m.partition("@")[2]) for m in metrics)
    k_search = min(k_max, len(dataset.corpus))
    qrels = {q.id: dataset.qrels[q.id] for q in dataset.queries}
    rng = np.random.default_rng(seed)
    n_q = len(dataset.queries)
    if store is not None and store.max_queries and store.max_queries < n_q:
        qidx = np.sort(rng.choice(n_q, size=store.max_queries, replace=False))
    else:
        qidx = np.arange(n_q)
    report: dict[str, Any] = {
        "dataset": dataset.summary(), "metrics": list(metrics),
        "bootstrap": {"resamples": n_resamples, "confidence": confidence, "seed": seed},
        "store_queries": len(qidx) if store is not None else 0,
        **({"modes": [m.name for m in modes]} if modes else {}),
        **({"rerank": {"spec": _display_spec(str(getattr(reranker, "spec", reranker))),
                       "candidates": store.candidates or 40}} if reranker is not None and store is not None else {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "models": [],
    }
    providers: list[Any] = []
    for vi, v in enumerate(vs):
        say(f"[{vi + 1}/{len(vs)}] {v.label}: loading {v.display_spec}")
        provider = factory(v.spec)
        restore: Callable[[], None] = lambda: None  # noqa: E731
        if not v.prompts:
            provider.dimension  # noqa: B018 - load first, then clear the prompts it read
            restore = _disable_prompts(provider)
        try:
            entry = _evaluate_one(vi, len(vs), v, provider, dataset, qrels, qidx, metrics, store, k_search,
                                  n_resamples, confidence, seed, cache_dir, keep_rankings, say, modes, reranker)
        finally:
            restore()
        report["models"].append(entry)
        if speed_rounds:
            providers.append(provider)
    if speed_rounds:
        _speed_rounds(report, vs, providers, dataset, speed_rounds, speed_docs, seed, say)
    if len(report["models"]) > 1:
        report["paired"] = _paired(report["models"], metrics, n_resamples, confidence, seed)
    return report


def _evaluate_one(vi: int, n_variants: int, v: Variant, provider: Any, dataset: Dataset,
                  qrels: dict[str, dict[str, int]], qidx: np.ndarray, metrics: Sequence[str],
                  store: StoreOptions | None, k_search: int, n_resamples: int, confidence: float, seed: int,
                  cache_dir: str | None, keep_rankings: bool, say: Callable[[str], None],
                  modes: Sequence[SearchMode] = (), reranker: Any = None) -> dict[str, Any]:
    n_q = len(dataset.queries)
    doc_texts = [v.document_prefix + d.text for d in dataset.corpus]
    query_texts = [v.query_prefix + q.text for q in dataset.queries]
    say(f"[{vi + 1}/{n_variants}] {v.label}: encoding {len(doc_texts)} documents")
    docs_enc = encode(provider, doc_texts, "document", cache_dir=cache_dir)
    say(f"[{vi + 1}/{n_variants}] {v.label}: encoding {len(query_texts)} queries")
    q_enc = encode(provider, query_texts, "query", cache_dir=cache_dir)
    distance = provider.distance
    t0 = time.perf_counter()
    top, _ = exact_search(docs_enc.vectors, q_enc.vectors, k_search, distance=distance)
    exact_s = time.perf_counter() - t0
    ids = [d.id for d in dataset.corpus]
    ref = {q.id: [ids[j] for j in top[i]] for i, q in enumerate(dataset.queries)}
    runs = [_Run("numpy exact", ref, {"latency": {"mean_ms": exact_s * 1000 / max(1, n_q), "batched": True}})]
    mode_info: dict[str, Any] | None = None
    if store is not None and store.store is not None and modes:
        say(f"[{vi + 1}/{n_variants}] {v.label}: loading the store and searching by mode ({len(qidx)} queries)")
        k_store = min(int(store.k), k_search) if store.k else k_search
        base = re.sub(r"[^a-z0-9_]", "_", f"{store.prefix}_{vi}_modes")
        mruns, mode_info = run_modes(
            store.store, base, provider, dataset, doc_texts, query_texts, docs_enc.vectors, q_enc.vectors, qidx,
            k_store, ref, modes, reranker=reranker, candidates=store.candidates, fulltext=store.fulltext,
            keep=store.keep, index=store.indexes[0] if store.indexes else None,
            say=lambda msg: say(f"[{vi + 1}/{n_variants}] {v.label}: {msg}"))
        runs += [_Run(r.name, r.rankings, r.extra) for r in mruns]
    elif store is not None and store.store is not None:
        say(f"[{vi + 1}/{n_variants}] {v.label}: loading the store and searching ({len(qidx)} queries)")
        runs += _store_runs(store, vi, v, provider, dataset, docs_enc.vectors, q_enc.vectors, k_search,
                            qidx, ref)
    info = provider.info()
    dim = int(docs_enc.vectors.shape[1])
    entry: dict[str, Any] = {
        "label": v.label, "spec": v.display_spec, "provider": info,
        "query_prefix": v.query_prefix, "document_prefix": v.document_prefix, "prompts": v.prompts,
        "dimension": dim, "distance": distance,
        "encode": {"documents": len(doc_texts), "doc_seconds": docs_enc.seconds,
                   "docs_per_s": docs_enc.per_second, "queries": len(query_texts),
                   "query_seconds": q_enc.seconds, "queries_per_s": q_enc.per_second,
                   "truncated_docs": docs_enc.n_truncated, "tokens": docs_enc.n_tokens,
                   "cached": docs_enc.cached},
        "index_bytes": {"vectors": len(doc_texts) * dim * 4},
        "runs": [],
    }
    if mode_info is not None:
        entry["modes"] = mode_info
    first_mode: tuple[str, dict[str, np.ndarray]] | None = None
    for run in runs:
        sub = qrels if len(run.rankings) == n_q else {qid: qrels[qid] for qid in run.rankings}
        run_k = int(run.extra.get("k") or k_search)
        usable = [m for m in metrics if int(m.partition("@")[2]) <= run_k or run_k >= len(dataset.corpus)]
        pq = per_query_metrics(run.rankings, sub, usable)
        summary: dict[str, Any] = summarize(pq, n_resamples=n_resamples, confidence=confidence, seed=seed)
        summary |= {m: None for m in metrics if m not in usable}
        row: dict[str, Any] = {"search": run.name, "queries": len(sub), "metrics": summary, **run.extra}
        if "mode" in run.extra:  # search-mode rows: paired differences against the first mode row
            if first_mode is None:
                first_mode = (run.name, pq)
            else:
                row["paired"] = _paired_runs(first_mode, pq, n_resamples, confidence, seed)
        if keep_rankings:
            row["rankings"] = run.rankings
        entry["runs"].append(row)
        if run.extra.get("store_bytes"):
            entry["index_bytes"]["store"] = run.extra["store_bytes"]
    entry["per_query"] = {m: [round(float(x), 6) for x in vals]
                          for m, vals in per_query_metrics(ref, qrels, metrics).items()}
    r10 = entry["runs"][0]["metrics"].get("recall@10")
    say(f"[{vi + 1}/{n_variants}] {v.label}: exact recall@10 {r10['mean']:.4f}" if r10 else f"{v.label}: done")
    return entry


def _speed_rounds(report: dict[str, Any], vs: Sequence[Variant], providers: Sequence[Any], dataset: Dataset,
                  rounds: int, n_docs: int, seed: int, say: Callable[[str], None]) -> None:
    """Interleaved encode timing of every variant on one document sample (see :func:`evaluate`)."""
    rng = np.random.default_rng(seed + 1)
    n = min(n_docs, len(dataset.corpus))
    pick = np.sort(rng.choice(len(dataset.corpus), size=n, replace=False))
    rates: list[list[float]] = [[] for _ in vs]
    ratios: list[list[float]] = [[] for _ in vs]
    for r in range(rounds):
        say(f"speed round {r + 1}/{rounds}: {n} documents per variant")
        order = [(r + i) % len(vs) for i in range(len(vs))]  # rotate who goes first
        this = [0.0] * len(vs)
        for i in order:
            v, p = vs[i], providers[i]
            texts = [v.document_prefix + dataset.corpus[j].text for j in pick]
            restore = _disable_prompts(p) if not v.prompts else (lambda: None)
            try:
                t0 = time.perf_counter()
                p.embed(texts, kind="document")
                this[i] = n / (time.perf_counter() - t0)
            finally:
                restore()
        for i in range(len(vs)):
            rates[i].append(this[i])
            ratios[i].append(this[i] / this[0])
    for i, m in enumerate(report["models"]):
        m["encode"]["speed"] = {"docs": n, "rounds": rounds, "docs_per_s": rates[i],
                                "median_docs_per_s": float(np.median(rates[i])),
                                "vs_first": float(np.median(ratios[i]))}


def _paired(models: list[dict[str, Any]], metrics: Sequence[str], n_resamples: int, confidence: float,
            seed: int) -> list[dict[str, Any]]:
    """Each model minus the first, per metric, with a paired bootstrap interval over the same queries."""
    from .metrics import bootstrap_ci

    base = models[0]
    out = []
    for m in models[1:]:
        row: dict[str, Any] = {"label": m["label"], "versus": base["label"]}
        for name in metrics:
            diff = np.asarray(m["per_query"][name]) - np.asarray(base["per_query"][name])
            lo, hi = bootstrap_ci(diff, n_resamples=n_resamples, confidence=confidence, seed=seed)
            row[name] = {"delta": float(diff.mean()), "ci_low": lo, "ci_high": hi}
        out.append(row)
    return out


def _paired_runs(first: tuple[str, dict[str, np.ndarray]], pq: dict[str, np.ndarray], n_resamples: int,
                 confidence: float, seed: int) -> dict[str, Any]:
    """A mode row minus the first mode row, per metric both report, with a paired bootstrap interval (same
    queries, same resamples)."""
    from .metrics import bootstrap_ci

    name, base = first
    out: dict[str, Any] = {"versus": name}
    for metric, vals in pq.items():
        if metric not in base:
            continue
        diff = np.asarray(vals) - np.asarray(base[metric])
        lo, hi = bootstrap_ci(diff, n_resamples=n_resamples, confidence=confidence, seed=seed)
        out[metric] = {"delta": float(diff.mean()), "ci_low": lo, "ci_high": hi}
    return out


def check_variants(variants: Sequence[str]) -> list[Variant]:
    """Parse every spec up front so a typo fails before any encoding starts."""
    out = [parse_variant(v) for v in variants]
    if not out:
        raise InvalidInputError("give at least one --model SPEC")
    return out
