"""Which reranker backends exist and how a spec string becomes one.

Spec form as for embedders: ``BACKEND:MODEL[?opt=value&...]``, e.g. ``cross-encoder:./my-reranker``,
``dashscope-rerank:gte-rerank-v2``, ``rerank-api:bge-reranker-v2-m3?base_url=http://localhost:8000/v1``.
A spec without a backend means ``cross-encoder:``. Third-party backends come from the
``obembed.rerankers`` entry-point group.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ...errors import ConfigError
from ...registry import Registry, Spec, parse_spec
from ...settings import Settings
from .base import Reranker

__all__ = ["RERANK_BACKENDS", "RerankRegistry", "default_rerank_registry", "load_reranker", "parse_rerank_spec"]

RERANK_BACKENDS: dict[str, tuple[str, str]] = {
    "cross-encoder": ("obembed.providers.rerank.cross_encoder:CrossEncoderReranker",
                      "local cross-encoder (sentence-transformers CrossEncoder; ONNX when the scores match)"),
    "dashscope-rerank": ("obembed.providers.rerank.remote:DashScopeReranker",
                         "DashScope native text-rerank (gte-rerank-v2, qwen3-rerank), DASHSCOPE_API_KEY"),
    "rerank-api": ("obembed.providers.rerank.remote:RerankAPIReranker",
                   "any POST {base_url}/rerank server of the Cohere/Jina shape"),
    "cohere": ("obembed.providers.rerank.remote:CohereReranker", "Cohere rerank v2, CO_API_KEY / COHERE_API_KEY"),
    "jina": ("obembed.providers.rerank.remote:JinaReranker", "Jina AI rerank, JINA_API_KEY"),
    "siliconflow": ("obembed.providers.rerank.remote:SiliconFlowReranker", "SiliconFlow rerank, SILICONFLOW_API_KEY"),
    "infinity": ("obembed.providers.rerank.remote:InfinityReranker", "infinity /rerank (default localhost:7997)"),
    "tei": ("obembed.providers.rerank.remote:TEIReranker",
            "Hugging Face text-embeddings-inference /rerank (default localhost:8080)"),
}

RERANK_ALIASES = {"ce": "cross-encoder", "crossencoder": "cross-encoder", "rerank-st": "cross-encoder",
                  "st": "cross-encoder", "sentence-transformers": "cross-encoder", "dashscope": "dashscope-rerank",
                  "v1-rerank": "rerank-api", "text-embeddings-inference": "tei"}
"""``st:``/``dashscope:`` mean the reranker of that family here (a rerank spec is never an embedder)."""


def parse_rerank_spec(spec: str) -> Spec:
    """Split ``backend:model?opts``; no backend means ``cross-encoder:``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"rerank spec {spec!r} is empty; use BACKEND:MODEL, e.g. cross-encoder:./my-reranker "
                          "or dashscope-rerank:gte-rerank-v2")
    parsed = parse_spec(spec)
    backend = RERANK_ALIASES.get(parsed.backend, parsed.backend)
    return Spec(backend, parsed.model, parsed.options)


class RerankRegistry(Registry[Reranker]):
    """Backend name -> reranker class: :class:`obembed.registry.Registry` with the rerank entry-point group and
    spec aliases."""

    group = "obembed.rerankers"

    @staticmethod
    def parse(spec: str) -> Spec:
        return parse_rerank_spec(spec)


@lru_cache(maxsize=1)
def default_rerank_registry() -> RerankRegistry:
    """The registry with every built-in reranker and installed plugins."""
    return RerankRegistry.with_entries(RERANK_BACKENDS)


def load_reranker(spec: str | Reranker, *, settings: Settings | None = None, **options: Any) -> Reranker:
    """A reranker from a spec (``cross-encoder:./folder``, ``dashscope-rerank:gte-rerank-v2`` ...), or the
    given reranker object unchanged."""
    if isinstance(spec, Reranker):
        if options:
            raise ConfigError("options go with a spec string, not with a reranker object")
        return spec
    return default_rerank_registry().create(spec, settings=settings, **options)
