"""Search policy, in one place: when a search scans exactly and when the vector index answers, the
reciprocal rank fusion of hybrid search, and how a reranker orders the first stage's candidates (pure
functions)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from ..errors import InvalidInputError, ProviderResponseError
from .base import Hit, RerankModel

__all__ = ["EXACT_MAX_ROWS", "RRF_K", "SEARCH_MODES", "hybrid_weights", "rerank_candidates",
           "rerank_hits", "rrf_fuse", "use_exact"]

SEARCH_MODES = ("dense", "sparse", "fulltext", "hybrid")
HYBRID_LEGS = ("dense", "sparse", "fulltext")

EXACT_MAX_ROWS = 20_000
"""Up to this many rows a search scans exactly by default (SEEKDB.md: ~220 ms per query at 100k x 384, so a few
ms here, and exact: HNSW loses recall on crowded vectors, e.g. MiniLM on Japanese text); above it, the index."""

RRF_K = 60
"""The constant of reciprocal rank fusion: a hit at rank r (from 1) adds ``weight / (RRF_K + r)``."""


def use_exact(exact: bool | None, *, has_index: bool, rows: Callable[[], int], ef_search: int | None = None) -> bool:
    """Whether a search scans exactly: ``exact`` when given (True/False force it); else exact without a vector
    index, with the index when an HNSW breadth (``ef_search``) is asked for, else exact up to
    :data:`EXACT_MAX_ROWS` rows (``rows()`` is called only then)."""
    if exact is not None:
        return bool(exact) or not has_index
    if not has_index:
        return True
    if ef_search is not None:
        return False
    return rows() <= EXACT_MAX_ROWS


def rrf_fuse(rankings: Sequence[tuple[Sequence[str], float]], k: int, *, rrf_k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of ranked id lists, each with its weight: the ``k`` best ``(id, score)`` pairs,
    best first; equal scores keep the order in which ids were first seen (earlier rankings first)."""
    fused: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, i in enumerate(ids):
            fused[i] = fused.get(i, 0.0) + float(weight) / (rrf_k + rank + 1)
    order = sorted(fused, key=lambda i: -fused[i])[:k]
    return [(i, fused[i]) for i in order]


def rerank_candidates(k: int, candidates: int | None, *, limit: int) -> int:
    """How many first-stage rows a reranked search reads: ``candidates``, default ``max(4k, 40)``, at most
    ``limit``; never fewer than ``k`` (the reranker only reorders, it cannot find more)."""
    if candidates is None:
        return min(limit, max(4 * k, 40))
    if isinstance(candidates, bool) or not isinstance(candidates, int) or not 1 <= candidates <= limit:
        raise InvalidInputError(f"candidates={candidates!r} must be an int between 1 and {limit}")
    if candidates < k:
        raise InvalidInputError(f"candidates={candidates} is fewer than k={k}: the reranker orders the first stage's "
                                "candidates and cannot add rows; pass candidates >= k")
    return candidates


def rerank_hits(query: str, hits: Sequence[Hit], reranker: RerankModel, k: int) -> list[Hit]:
    """The ``k`` best of ``hits`` by ``reranker``, best first, ties in first-stage order; each hit keeps its
    first-stage ``score`` and gets ``rerank_score``.

    What the reranker returns is checked, whoever wrote it: each index must be a candidate's, once, with a
    finite score, and there must be ``min(k, len(hits))`` of them; otherwise :class:`ProviderResponseError`
    and nothing is reordered. A candidate without text is an :class:`InvalidInputError` naming the row.
    """
    if not hits:
        return []
    docs = []
    for h in hits:
        if not isinstance(h.content, str) or not h.content.strip():
            raise InvalidInputError(f"row {h.id!r} has no text content, so the reranker cannot read it; rerank "
                                    "collections whose rows have content, or search without rerank")
        docs.append(h.content)
    ranked = list(reranker.rerank(query, docs, top_n=k))
    spec = getattr(reranker, "spec", type(reranker).__name__)
    want = min(k, len(hits))
    seen: set[int] = set()
    scored: list[tuple[float, int]] = []
    for pos, r in enumerate(ranked):
        idx, value = getattr(r, "index", None), getattr(r, "score", None)
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(hits) or idx in seen:
            raise ProviderResponseError(
                f"reranker {spec}: result {pos} has index {idx!r}, not a unique index of the {len(hits)} candidates; "
                "nothing was reordered")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ProviderResponseError(f"reranker {spec}: the score of candidate {idx} is {value!r}, not a finite "
                                        "number; nothing was reordered")
        seen.add(idx)
        scored.append((float(value), idx))
    if len(scored) != want:
        raise ProviderResponseError(f"reranker {spec} returned {len(scored)} results for the {want} asked (of "
                                    f"{len(hits)} candidates); nothing was reordered")
    out = []
    for value, idx in sorted(scored, key=lambda t: (-t[0], t[1])):
        h = hits[idx]
        h.rerank_score = value
        out.append(h)
    return out


def hybrid_weights(weights: Mapping[str, float] | None, *, dense: bool, sparse: bool, fulltext: bool,
                   name: str) -> dict[str, float]:
    """The RRF weight of each leg of a hybrid search: by default 1 for every leg the collection has; given
    weights are checked (known legs, finite, ≥ 0, at least one > 0); legs left out of a given mapping get 0."""
    has = {"dense": dense, "sparse": sparse, "fulltext": fulltext}
    if weights is None:
        out = {leg: 1.0 for leg in HYBRID_LEGS if has[leg]}
    else:
        if not isinstance(weights, Mapping):
            raise InvalidInputError(f"weights={weights!r} must be a dict such as {{'dense': 1, 'sparse': 1, "
                                    "'fulltext': 1}")
        unknown = set(weights) - set(HYBRID_LEGS)
        if unknown:
            raise InvalidInputError(f"weights: unknown leg(s) {sorted(unknown)}; use {HYBRID_LEGS}")
        out = {}
        for leg, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
                raise InvalidInputError(f"weights[{leg!r}]={w!r} must be a finite number ≥ 0")
            out[leg] = float(w)
    out = {leg: w for leg, w in out.items() if w > 0}
    if not out:
        raise InvalidInputError(f"hybrid search of {name!r} has no leg with a weight > 0")
    return out
