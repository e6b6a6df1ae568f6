"""The store's contracts: :class:`Hit` (one search result), what it needs of a model (:class:`QueryModel`, defined
with the other contracts in :mod:`obembed.protocols`), and what it offers the layers above (:class:`VectorStore`,
:class:`VectorCollection`; the ingest pipeline, the CLI, the server and eval are written against these)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy.typing as npt

from ..protocols import QueryModel
from .filters import Where

__all__ = ["Hit", "ProviderFactory", "QueryModel", "RankedDocument", "RerankModel", "RerankerFactory",
           "VectorCollection", "VectorStore", "source_label"]


def source_label(source: str | None, metadata: Mapping[str, Any] | None, *, max_width: int | None = None,
                 width: Callable[[str], int] = len) -> str:
    """How a hit's origin is shown, the one rule of ``obembed search`` and the web page: ``path#record``.

    The path is relative to the working folder when it lies inside it, else just the file name (an absolute
    path of the machine is never shown); it is the file name too when ``path#record`` is wider than ``max_width``
    (measured by ``width``). The record is the row's ``metadata["id"]`` (a JSONL/CSV record's key) or
    ``L<line>``; nothing when neither is known."""
    import os

    src = source or ""
    if src:
        try:
            rel = os.path.relpath(src)
            src = rel if not rel.startswith("..") else os.path.basename(src) or src
        except ValueError:
            src = os.path.basename(src) or src
    meta = metadata if isinstance(metadata, Mapping) else {}
    key = meta.get("id")
    if key is None and "line" in meta:
        key = f"L{meta['line']}"
    suffix = f"#{key}" if key is not None else ""
    if max_width is not None and width(src + suffix) > max_width:
        src = os.path.basename(src)
    return src + suffix

ProviderFactory = Callable[..., QueryModel]
"""``factory(spec, **options) -> model`` (``obembed.load`` is one): how a collection rebuilds its own model."""


@runtime_checkable
class RankedDocument(Protocol):
    """One reranked candidate: its position in the list given to the reranker, and its score."""

    @property
    def index(self) -> int: ...

    @property
    def score(self) -> float: ...


@runtime_checkable
class RerankModel(Protocol):
    """What the store needs of a reranker (a second stage): the ``top_n`` best of ``documents`` for ``query``,
    best first. Every :class:`obembed.providers.rerank.Reranker` is one."""

    @property
    def spec(self) -> str: ...

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> Sequence[RankedDocument]: ...


RerankerFactory = Callable[..., RerankModel]
"""``factory(spec) -> reranker`` (``obembed.load_reranker`` is one): how a spec string given to ``search(rerank=)``
becomes a reranker."""


@dataclass
class Hit:
    """One search result.

    ``distance`` is what the engine computed (cosine distance, l2 distance, or negative inner product;
    ``None`` for a hybrid hit found only by full-text); ``score`` grows with similarity: ``1 - d`` for
    cosine, the inner product for ip, ``1 / (1 + d)`` for l2, the RRF score for hybrid search.
    ``rerank_score`` is the reranker's score when the search was reranked (hits are then in its order, and
    ``score`` stays the first stage's); ``None`` otherwise.
    """

    id: str
    content: str | None = None
    source: str | None = None
    chunk: int | None = None
    distance: float | None = None
    score: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)
    rerank_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (dates as ISO strings)."""
        d = asdict(self)
        d["columns"] = {k: _jsonable(v) for k, v in self.columns.items()}
        return d


def _jsonable(v: Any) -> Any:
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    try:
        from decimal import Decimal

        if isinstance(v, Decimal):
            return float(v)
    except ImportError:  # pragma: no cover
        pass
    return v


Query = str | npt.ArrayLike
"""A search query: a text (embedded with the collection's model) or a vector."""


class VectorCollection(Protocol):
    """One collection of vectors beside scalar data (:class:`obembed.store.Collection`)."""

    name: str
    dimension: int
    metadata: dict[str, Any]

    @property
    def spec(self) -> str | None: ...

    @property
    def model(self) -> QueryModel: ...

    def attach(self, provider: QueryModel) -> VectorCollection: ...

    def count(self, where: Where = None) -> int: ...

    def upsert(self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 1000) -> int: ...

    def get(self, ids: Iterable[str] | str, *, include_vectors: bool = False) -> list[dict[str, Any]]: ...

    def delete(self, ids: Iterable[str] | str | None = None, *, where: Where = None) -> int: ...

    def hashes(self, source: str | None = None) -> dict[str, str | None]: ...

    def sources(self) -> dict[str | None, int]: ...

    def iter_rows(self, batch_size: int = 1000, *, include_vectors: bool = True,
                  where: Where = None) -> Iterator[list[dict[str, Any]]]: ...

    def search(self, query: Query, k: int = 10, *, where: Where = None, exact: bool | None = None,
               ef_search: int | None = None, rerank: str | RerankModel | None = None,
               candidates: int | None = None) -> list[Hit]: ...

    def hybrid_search(self, text: str, k: int = 10, *, where: Where = None, candidates: int | None = None,
                      vector: npt.ArrayLike | None = None, weights: tuple[float, float] = (1.0, 1.0),
                      exact: bool | None = None, rerank: str | RerankModel | None = None) -> list[Hit]: ...


class VectorStore(Protocol):
    """A store of collections (:class:`obembed.store.Store`)."""

    def collection(self, name: str, provider: QueryModel | None = None) -> VectorCollection: ...

    def has_collection(self, name: str) -> bool: ...

    def list_collections(self) -> list[dict[str, Any]]: ...

    def drop_collection(self, name: str, *, missing_ok: bool = False) -> None: ...

    def close(self) -> None: ...
