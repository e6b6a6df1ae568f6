"""What both framework adapters need from obembed: opening a store, and the identity of a model."""

from __future__ import annotations

import os
from typing import Any

from ..errors import InvalidInputError
from ..store import Store

__all__ = ["ForeignModel", "model_identity", "open_store"]


def open_store(target: str | os.PathLike[str] | None = None, store: Store | None = None) -> tuple[Store, bool]:
    """``(store, owned)``: the given store, else one opened on ``target`` (a folder, or a DSN with ``://``;
    None: ``OBEMBED_DSN`` or ``./obembed.db``). ``owned`` says whether the caller must close it."""
    import obembed

    if store is not None:
        if target is not None:
            raise InvalidInputError("pass either store= (an open obembed store) or target= (a folder or DSN), not both")
        return store, False
    if target is None:
        return obembed.connect(), True
    if "://" in str(target):
        return obembed.connect(str(target)), True
    return obembed.connect(path=target), True


class ForeignModel:
    """The identity of an embedding model from another framework (a LangChain ``Embeddings``, a LlamaIndex
    ``BaseEmbedding``), recorded with the collection like an obembed provider's: spec, dimension, space.

    It does not embed through obembed: the adapter calls the framework's object and hands the store vectors.
    """

    normalized = False  # unknown: cosine distance ranks the same either way

    def __init__(self, framework: str, obj: Any, dimension: int) -> None:
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

    def __repr__(self) -> str:
        return f"ForeignModel({self.spec!r}, {self.dimension}-d)"


def model_identity(framework: str, obj: Any, probe: Any) -> Any:
    """An obembed provider behind ``obj`` (when it wraps one), else a :class:`ForeignModel` whose dimension
    comes from ``probe()`` (one embedding)."""
    provider = getattr(obj, "provider", None)
    from ..providers.base import Provider

    if isinstance(provider, Provider):
        return provider
    return ForeignModel(framework, obj, len(probe()))
