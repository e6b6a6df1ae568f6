"""obembed: text and image embeddings, stored beside scalar data in OceanBase / seekdb vector tables.

Quick start::

    import obembed
    model = obembed.load()                      # st:all-MiniLM-L6-v2, offline; model.runtime says torch/onnx
    vecs = model.embed_documents(["a cat", "a dog"])
    obembed.similarity(vecs, vecs)              # 2x2 cosine matrix
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import ObembedError
from .settings import DEFAULT_MODEL, Settings, get_settings
from .similarity import similarity  # eager: the name is also a submodule's, which a lazy import would shadow

if TYPE_CHECKING:
    from .loader import load
    from .providers.base import Provider
    from .providers.rerank import Reranker, RerankHit, RerankResult
    from .registry import Registry, default_registry, parse_spec
    from .store import Store
    from .types import Distance, EmbedResult, Kind, Metric, TruncatePolicy, Vector, Vectors

# imported on first use (PEP 562), so that `import obembed` stays cheap: a fresh process's first vector and
# every CLI command pay only for what they use (docs/performance.md, "Start-up")
_LAZY: dict[str, str] = {
    "load": ".loader",
    "Provider": ".providers.base",
    "Reranker": ".providers.rerank", "RerankHit": ".providers.rerank", "RerankResult": ".providers.rerank",
    "Registry": ".registry", "default_registry": ".registry", "parse_spec": ".registry",
    **dict.fromkeys(("Distance", "EmbedResult", "Kind", "Metric", "TruncatePolicy", "Vector", "Vectors"), ".types"),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: Any = version("obembed")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            value = "0.0.0"
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    else:
        raise AttributeError(f"module 'obembed' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "__version__"})


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
    from .loader import load
    from .store import connect as _connect

    kwargs.setdefault("provider_factory", load)  # text queries rebuild the collection's model from its metadata
    kwargs.setdefault("fallback_factory", _load_as_written)  # ... as written, should the fast path be another space
    kwargs.setdefault("reranker_factory", load_reranker)  # search(rerank="SPEC") builds the reranker
    return _connect(target, **kwargs)


def _load_as_written(spec: str, **options: Any) -> Provider:
    """The spec through its own backend, no runtime choice: a collection's model when the fast path would give
    another vector space than the one recorded."""
    from .registry import default_registry

    return default_registry().create(spec, settings=get_settings(), **options)
