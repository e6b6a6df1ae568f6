"""Which reranker backends exist and how a spec string becomes one.

Spec form as for embedders: ``BACKEND:MODEL[?opt=value&...]``, e.g. ``cross-encoder:./my-reranker``,
``dashscope-rerank:gte-rerank-v2``, ``rerank-api:bge-reranker-v2-m3?base_url=http://localhost:8000/v1``.
A spec without a backend means ``cross-encoder:``. Third-party backends come from the
``obembed.rerankers`` entry-point group.
"""

from __future__ import annotations

import importlib
import logging
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from ...errors import ConfigError, UnknownProviderError
from ...registry import Spec, parse_spec
from ...settings import Settings
from .base import Reranker

__all__ = ["RERANK_BACKENDS", "RerankRegistry", "default_rerank_registry", "load_reranker", "parse_rerank_spec"]

log = logging.getLogger(__name__)

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


class RerankRegistry:
    """Backend name -> reranker class (or its import path, resolved on first use)."""

    def __init__(self) -> None:
        self._entries: dict[str, type[Reranker] | str] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, reranker: type[Reranker] | str, name: str | None = None, description: str = "") -> None:
        key = name or (reranker.name if not isinstance(reranker, str) else "")
        if not key:
            raise ConfigError("register() needs a name for an import-path reranker")
        self._entries[key] = reranker
        if not description and not isinstance(reranker, str):
            description = (reranker.__doc__ or "").strip().split("\n")[0]
        self._descriptions[key] = description

    def load_entry_points(self, group: str = "obembed.rerankers") -> None:
        for ep in entry_points(group=group):
            self.register(ep.value, name=ep.name, description=f"plugin {ep.value}")

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        return {k: self._descriptions.get(k, "") for k in self.names()}

    def get(self, backend: str) -> type[Reranker]:
        entry = self._entries.get(backend)
        if entry is None:
            raise UnknownProviderError(backend, self.names())
        if isinstance(entry, str):
            mod_name, _, cls_name = entry.partition(":")
            entry = getattr(importlib.import_module(mod_name), cls_name)
            self._entries[backend] = entry
        return entry

    def create(self, spec: str, settings: Settings | None = None, **options: Any) -> Reranker:
        """Build a reranker from a spec; keyword options override query-string ones."""
        parsed = parse_rerank_spec(spec)
        cls = self.get(parsed.backend)
        opts = {**parsed.options, **{k: v for k, v in options.items() if v is not None}}
        try:
            return cls(parsed.model, settings=settings, **opts)
        except TypeError as exc:
            known = _known_options(cls)
            raise ConfigError(f"bad option for {parsed.backend}:{parsed.model}: {exc}; known options: "
                              f"{', '.join(known)}") from exc


def _known_options(cls: type[Reranker]) -> list[str]:
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("settings", "http_client"):
                names.add(p.name)
    return sorted(names)


@lru_cache(maxsize=1)
def default_rerank_registry() -> RerankRegistry:
    """The registry with every built-in reranker and installed plugins."""
    reg = RerankRegistry()
    for name, (path, desc) in RERANK_BACKENDS.items():
        reg.register(path, name=name, description=desc)
    try:
        reg.load_entry_points()
    except Exception as exc:  # a broken plugin must not break obembed
        log.warning("could not load reranker plugins: %s", exc)
    return reg


def load_reranker(spec: str | Reranker, *, settings: Settings | None = None, **options: Any) -> Reranker:
    """A reranker from a spec (``cross-encoder:./folder``, ``dashscope-rerank:gte-rerank-v2`` ...), or the
    given reranker object unchanged."""
    if isinstance(spec, Reranker):
        if options:
            raise ConfigError("options go with a spec string, not with a reranker object")
        return spec
    return default_rerank_registry().create(spec, settings=settings, **options)
