"""Presets of hosted APIs: where a service lives (base URL, regions) and which API key it takes.

The one mechanism behind the remote embedders (``openai:``, ``dashscope:`` ... in :mod:`.openai_compat`) and the
remote rerankers (``cohere:``, ``dashscope-rerank:`` ... in :mod:`.rerank.remote`). A backend class names its
:class:`Preset`; at construction :meth:`Preset.resolve_base_url` turns ``base_url=``/``region=`` into the base URL
and :meth:`Preset.key` gives the :class:`ApiKey`, which holds a given key as a secret or reads the env var at each
use, and is never shown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from pydantic import SecretStr

from ..errors import ConfigError, MissingCredentialError, redact

__all__ = ["ApiKey", "Preset", "normalize_base_url"]


def normalize_base_url(url: str, endpoint: str = "/embeddings") -> str:
    """``https://host/v1``, ``https://host/v1/`` and ``https://host/v1{endpoint}`` → ``https://host/v1``."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("base_url is empty; pass the service's base URL, e.g. base_url=http://localhost:8000/v1")
    u = url.strip().rstrip("/")
    if endpoint and u.endswith(endpoint):
        u = u[: -len(endpoint)].rstrip("/")
    try:
        parsed = httpx.URL(u)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"base_url {redact(url)!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"base_url {redact(url)!r} must start with http:// or https:// and name a host")
    return u


class ApiKey:
    """An API key: the one given (held as a :class:`SecretStr`), else the first of ``envs`` that is set, read at
    each use (an ``export`` after loading counts). Never in ``repr``, options or messages."""

    __slots__ = ("_given", "envs", "required", "who")

    def __init__(self, who: str, given: str | SecretStr | None, envs: tuple[str, ...], required: bool) -> None:
        self.who = who
        self._given = (given if isinstance(given, SecretStr) else SecretStr(given)) if given else None
        self.envs = envs
        self.required = required

    def __repr__(self) -> str:
        return f"ApiKey({self.who}, envs={list(self.envs)}, given={self._given is not None})"

    @property
    def env(self) -> str | None:
        """The variable named in messages (the first)."""
        return self.envs[0] if self.envs else None

    def _from_env(self) -> list[str | None]:
        return [os.environ.get(e) for e in self.envs]

    def secrets(self) -> tuple[str, ...]:
        """Values to scrub from every message: the given key and every set variable (a 1-5 character "key" is no
        credential, and replacing every "k" in a message would garble it)."""
        mine = self._given.get_secret_value() if self._given else None
        return tuple(v for v in (mine, *self._from_env()) if v and len(v) >= 6)

    def get(self) -> str | None:
        """The key to send; :class:`MissingCredentialError` when the service needs one and none is set."""
        if self._given is not None:
            return self._given.get_secret_value()
        for value in self._from_env():
            if value:
                return value
        if self.required:
            name = self.env or "the API key variable"
            raise MissingCredentialError(
                f"{self.who} needs an API key: set {name} (export {name}=...) or pass api_key=... "
                "(CLI: -o api_key=...; the env var stays out of shell history)")
        return None

    def headers(self) -> dict[str, str] | None:
        """``Authorization: Bearer <key>``, or None without a key."""
        key = self.get()
        return {"Authorization": f"Bearer {key}"} if key else None


@dataclass(frozen=True)
class Preset:
    """Where a hosted API lives and which key it takes."""

    base_url: str | None = None
    """The default base URL (None: ``base_url=`` is required)."""
    regions: Mapping[str, str] = field(default_factory=dict)
    """``region=`` name → base URL."""
    key_envs: tuple[str, ...] = ()
    """Env vars holding the key, first set wins (the first is the one named in messages)."""
    key_required: bool = False

    def resolve_base_url(self, name: str, model: str, *, base_url: str | None, region: str | None,
                         endpoint: str, example: str = "?base_url=http://localhost:8000/v1 (CLI: -o base_url=...)",
                         ) -> str:
        """The base URL from ``base_url=`` (normalised; a trailing ``endpoint`` is dropped), else ``region=``,
        else the default; a clear error when there is none."""
        if base_url:
            return normalize_base_url(base_url, endpoint)
        if region is not None:
            if region not in self.regions:
                raise ConfigError(f"region={region!r} is unknown for {name}:; use one of {sorted(self.regions)}")
            return self.regions[region]
        if self.base_url:
            return self.base_url
        raise ConfigError(f"{name}:{model} needs base_url, e.g. {name}:{model}{example}")

    def key(self, who: str, api_key: str | SecretStr | None, api_key_env: str | None) -> ApiKey:
        """The :class:`ApiKey` of one backend instance (``api_key_env=`` replaces the preset's variables)."""
        return ApiKey(who, api_key, (api_key_env,) if api_key_env else self.key_envs, self.key_required)
