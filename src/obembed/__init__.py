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
from .providers.rerank import Reranker, RerankHit, RerankResult
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
    "RerankHit",
    "RerankResult",
    "Reranker",
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
    "load_reranker",
    "parse_spec",
    "similarity",
]


def load_reranker(spec: str | Reranker, *, settings: Settings | None = None, **options: Any) -> Reranker:
    """Build a reranker from a spec such as ``cross-encoder:BAAI/bge-reranker-v2-m3``,
    ``dashscope-rerank:gte-rerank-v2`` or ``cohere:rerank-v3.5`` (a reranker object is returned as is).
    Keyword options override the spec's query-string options. See docs/rerank.md."""
    from .providers.rerank import load_reranker as _load_reranker

    return _load_reranker(spec, settings=settings or get_settings(), **options)


def connect(target: str | os.PathLike[str] | None = None, **kwargs: Any) -> Store:
    """Open the vector store: ``connect("kb")`` (embedded seekdb in the folder ``kb``), ``connect("mysql://...")``
    (a seekdb server or OceanBase; a string with ``://`` is a DSN), or ``connect()`` (``OBEMBED_DSN``, else
    ``./obembed.db``). Keywords ``path=`` / ``dsn=`` say which explicitly.

    Text queries rebuild each collection's model from its metadata (``collection.model``), and
    ``search(rerank="SPEC")`` builds its reranker with :func:`load_reranker`. See :func:`obembed.store.connect`.
    """
    from .store import connect as _connect

    kwargs.setdefault("provider_factory", load)  # text queries rebuild the collection's model from its metadata
    kwargs.setdefault("reranker_factory", load_reranker)  # search(rerank="SPEC") builds the reranker
    return _connect(target, **kwargs)
