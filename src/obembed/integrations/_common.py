"""What both framework adapters need from obembed: opening a store, and the identity of a model."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInputError
from ..store import Store
from ..store.base import QueryModel

__all__ = ["ForeignModel", "model_identity", "open_store"]


def open_store(target: str | os.PathLike[str] | None = None, store: Store | None = None) -> tuple[Store, bool]:
    """``(store, owned)``: the given store, else one opened on ``target`` (a folder, or a DSN with ``://``;
    None: ``OBEMBED_DSN`` or ``./obembed.db``). ``owned`` says whether the caller must close it."""
    import obembed

    if store is not None:
        if target is not None:
            raise InvalidInputError("pass either store= (an open obembed store) or target= (a folder or DSN), not both")
        return store, False
    return obembed.connect(target), True  # the library decides folder vs DSN


class ForeignModel:
    """The identity of an embedding model from another framework (a LangChain ``Embeddings``, a LlamaIndex
    ``BaseEmbedding``), recorded with the collection like an obembed provider's: spec, dimension, space.

    The adapter embeds through the framework's object and hands the store vectors; ``embed_query`` (the
    framework's query embedding) makes it a :class:`~obembed.store.base.QueryModel`, so the collection can embed a
    text query with it too (hybrid search from text alone).
    """

    normalized = False  # unknown: cosine distance ranks the same either way

    def __init__(self, framework: str, obj: Any, dimension: int,
                 embed_query: Callable[[str], Any] | None = None) -> None:
        self._embed_query = embed_query
        cls = type(obj)
        name = next((getattr(obj, a) for a in ("model", "model_name") if isinstance(getattr(obj, a, None), str)),
                    None)
        self.spec = f"{framework}:{cls.__module__}.{cls.__qualname__}" + (f"/{name}" if name else "")
        self.model = name or cls.__qualname__
        self.dimension = int(dimension)
        self.space = f"{self.spec}|{self.dimension}"
        self.distance = "cosine"

    def info(self) -> dict[str, Any]:
        return {"spec": self.spec, "backend": self.spec.split(":", 1)[0], "model": self.model, "options": {},
                "dimension": self.dimension, "normalized": None, "distance": self.distance, "space": self.space}

    def embed_query(self, item: Any) -> npt.NDArray[np.float32]:
        if self._embed_query is None:
            raise InvalidInputError(f"{self.spec} cannot embed queries here; search with a vector")
        return np.asarray(self._embed_query(item), dtype=np.float32)

    def __repr__(self) -> str:
        return f"ForeignModel({self.spec!r}, {self.dimension}-d)"


def model_identity(framework: str, obj: Any, embed_query: Callable[[str], Any]) -> QueryModel:
    """The obembed provider behind ``obj`` (when it wraps one), else a :class:`ForeignModel` whose dimension
    comes from one query embedding."""
    provider = getattr(obj, "provider", None)
    from ..providers.base import Provider

    if isinstance(provider, Provider):
        return provider
    return ForeignModel(framework, obj, len(embed_query("dimension probe")), embed_query)
