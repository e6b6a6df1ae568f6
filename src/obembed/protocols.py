"""The typed contracts where the layers meet.

The ingest pipeline, the server's batcher and eval take an :class:`EmbeddingProvider` (every
:class:`~obembed.providers.base.Provider` is one; so is any object with these members), so ``mypy --strict``
checks each call across the boundary instead of ``Any`` and ``getattr(provider, ...)`` probes. The store needs
less of a model: :class:`QueryModel`, the part of :class:`EmbeddingProvider` a collection uses (the identity it
records, and query vectors), which a framework's embedding object adapted by ``obembed.integrations`` also is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from .types import Distance, EmbedResult, Kind, TruncatePolicy, Vector, Vectors

__all__ = ["EmbeddingProvider", "ImageEmbeddingProvider", "QueryModel"]


@runtime_checkable
class QueryModel(Protocol):
    """What the store needs of an embedding model: the facts recorded with a collection, and query vectors.

    Every :class:`EmbeddingProvider` is one."""

    @property
    def spec(self) -> str: ...
    @property
    def dimension(self) -> int: ...
    @property
    def space(self) -> str: ...

    def info(self) -> dict[str, Any]: ...
    def embed_query(self, item: Any) -> Vector: ...


@runtime_checkable
class EmbeddingProvider(QueryModel, Protocol):
    """What every layer may ask of a text embedding model (a :class:`QueryModel` with the rest of the
    provider contract)."""

    @property
    def name(self) -> str:
        """Backend name (the part of the spec before the colon)."""
        ...

    @property
    def model(self) -> str: ...
    @property
    def runtime(self) -> str:
        """Which execution path makes the vectors: ``torch``, ``onnx-fp32``, ``http`` ..."""
        ...

    @property
    def supports_image(self) -> bool: ...
    @property
    def distance(self) -> Distance: ...
    @property
    def normalized(self) -> bool: ...
    @property
    def max_input_tokens(self) -> int | None: ...
    @property
    def document_prefix(self) -> str: ...
    @property
    def query_prefix(self) -> str: ...

    def embed(self, items: Iterable[Any], *, kind: Kind = "document",
              truncate: TruncatePolicy | None = None) -> EmbedResult:
        """Vectors in input order plus the accounting (truncated inputs, tokens)."""
        ...

    def embed_documents(self, items: Iterable[Any], *, truncate: TruncatePolicy | None = None) -> Vectors: ...
    def embed_query(self, item: Any, *, truncate: TruncatePolicy | None = None) -> Vector: ...
    def count_tokens(self, texts: Sequence[str], *, kind: Kind = "document") -> list[int]: ...
    def embed_texts(self, texts: Sequence[str], *, kind: Kind, truncate: TruncatePolicy) -> EmbedResult:
        """The contract: validated texts and their kind -> vectors in input order with the counts."""
        ...

    def check_vectors(self, vectors: Any, n: int) -> Vectors:
        """Count, dimension and NaN/inf checks of a batch of this provider's vectors."""
        ...

    def embed_images(self, items: Iterable[Any]) -> Vectors:
        """Images to vectors; a text-only provider raises :class:`~obembed.errors.UnsupportedInputError`."""
        ...

    def public_options(self) -> dict[str, Any]: ...


@runtime_checkable
class ImageEmbeddingProvider(Protocol):
    """An image model (``clip:``): batch image embedding with per-item failures."""

    def embed_images_result(self, items: Iterable[Any], *, on_error: Any = "skip",
                            batch_size: int | None = None) -> EmbedResult: ...
