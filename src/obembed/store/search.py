"""Search policy, in one place: when a search scans exactly and when the vector index answers, and the
reciprocal rank fusion of hybrid search (a pure function)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["EXACT_MAX_ROWS", "RRF_K", "rrf_fuse", "use_exact"]

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
