"""Brute-force exact search in numpy: the reference every store result is compared with."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError
from ..providers.base import l2_normalize

__all__ = ["exact_search"]


def _scores(docs: np.ndarray, queries: np.ndarray, distance: str) -> np.ndarray:
    """Higher = closer, float64, shape (n_queries, n_docs)."""
    if distance == "cosine":
        d, q = l2_normalize(docs).astype(np.float64), l2_normalize(queries).astype(np.float64)
        return q @ d.T
    if distance == "ip":
        out: np.ndarray = queries.astype(np.float64) @ docs.astype(np.float64).T
        return out
    if distance == "l2":
        d, q = docs.astype(np.float64), queries.astype(np.float64)
        neg: np.ndarray = 2.0 * (q @ d.T) - (d * d).sum(1)[None, :] - (q * q).sum(1)[:, None]  # = -||q - d||^2
        return neg
    raise InvalidInputError(f"unknown distance {distance!r}; use cosine, ip or l2")


def exact_search(docs: np.ndarray, queries: np.ndarray, k: int, *, distance: str = "cosine",
                 chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` document indexes and scores (higher = closer) for every query, exactly.

    Ties are broken by corpus order (the lower index first), so rankings are deterministic.
    """
    docs = np.asarray(docs, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    if docs.ndim != 2 or queries.ndim != 2 or docs.shape[1] != queries.shape[1]:
        raise InvalidInputError(f"shapes do not fit: documents {docs.shape}, queries {queries.shape}")
    k = min(int(k), docs.shape[0])
    n_q = queries.shape[0]
    idx_out = np.zeros((n_q, k), dtype=np.int64)
    sc_out = np.zeros((n_q, k), dtype=np.float64)
    for start in range(0, n_q, chunk):
        s = _scores(docs, queries[start:start + chunk], distance)
        for r in range(s.shape[0]):
            row = s[r]
            if k < row.size:
                kth = np.partition(row, row.size - k)[row.size - k]
                cand = np.nonzero(row >= kth)[0]  # every candidate tied at the threshold too
            else:
                cand = np.arange(row.size)
            order = np.lexsort((cand, -row[cand]))[:k]  # score desc, then index asc
            idx_out[start + r] = cand[order]
            sc_out[start + r] = row[cand[order]]
    return idx_out, sc_out
