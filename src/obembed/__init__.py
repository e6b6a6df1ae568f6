"""obembed: text and image embeddings, stored beside scalar data in OceanBase / seekdb vector tables.

Quick start::

    import obembed
    model = obembed.load()                      # st:all-MiniLM-L6-v2, offline; model.runtime says torch/onnx
    vecs = model.embed_documents(["a cat", "a dog"])
    obembed.similarity(vecs, vecs)              # 2x2 cosine matrix
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import ObembedError
from .loader import load
from .providers.base import Provider
from .registry import Registry, default_registry, parse_spec
from .settings import DEFAULT_MODEL, Settings, get_settings
from .similarity import similarity
from .types import Distance, EmbedResult, Kind, Metric, TruncatePolicy, Vector, Vectors

if TYPE_CHECKING:
    from .store import Store

try:
    __version__ = version("obembed")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "DEFAULT_MODEL",
    "Distance",
    "EmbedResult",
    "Kind",
    "Metric",
    "ObembedError",
    "Provider",
    "Registry",
    "Settings",
    "TruncatePolicy",
    "Vector",
    "Vectors",
    "__version__",
    "connect",
    "default_registry",
    "errors",
    "get_settings",
    "load",
    "parse_spec",
    "similarity",
]


def connect(target: str | os.PathLike[str] | None = None, **kwargs: Any) -> Store:
    """Open the vector store: ``connect("kb")`` (embedded seekdb in the folder ``kb``), ``connect("mysql://...")``
    (a seekdb server or OceanBase; a string with ``://`` is a DSN), or ``connect()`` (``OBEMBED_DSN``, else
    ``./obembed.db``). Keywords ``path=`` / ``dsn=`` say which explicitly.

    Text queries rebuild each collection's model from its metadata (``collection.model``). See
    :func:`obembed.store.connect`.
    """
    from .store import connect as _connect

    kwargs.setdefault("provider_factory", load)  # text queries rebuild the collection's model from its metadata
    return _connect(target, **kwargs)
