"""Similarity between any embeddings: cosine, dot product, euclidean distance."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInputError
from .types import Metric

__all__ = ["similarity"]


def _as_matrix(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must be a vector (d,) or a matrix (n, d); got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{name} contains NaN or inf; check the embeddings that produced it")
    return arr


def similarity(a: Any, b: Any | None = None, metric: Metric = "cosine") -> np.ndarray:
    """Pairwise matrix ``(n, m)`` between rows of ``a`` and ``b`` (``b`` defaults to ``a``).

    ``cosine`` and ``dot`` are similarities (higher = closer); ``l2`` is the euclidean *distance*
    (lower = closer). A single vector counts as a 1-row matrix.
    """
    A = _as_matrix(a, "a")
    B = A if b is None else _as_matrix(b, "b")
    if A.shape[1] != B.shape[1]:
        raise InvalidInputError(
            f"dimensions differ: a is {A.shape[1]}-d, b is {B.shape[1]}-d; compare vectors of one model"
        )
    if metric == "cosine":
        na = np.linalg.norm(A, axis=1, keepdims=True)
        nb = np.linalg.norm(B, axis=1, keepdims=True)
        An = np.divide(A, na, out=np.zeros_like(A), where=na > 0)
        Bn = np.divide(B, nb, out=np.zeros_like(B), where=nb > 0)
        cos: np.ndarray = np.clip(An @ Bn.T, -1.0, 1.0)
        return cos
    if metric == "dot":
        dot: np.ndarray = A @ B.T
        return dot
    if metric == "l2":
        sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
        dist: np.ndarray = np.sqrt(np.maximum(sq, 0.0))
        return dist
    raise InvalidInputError(f"unknown metric {metric!r}; use 'cosine', 'dot' or 'l2'")
