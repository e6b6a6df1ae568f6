"""What the routes share: the server's limits (:class:`ServerConfig`), the served models, the store.

:class:`ServerState` also holds the steps every embedding route takes: pick the model by name, check the
server's limits, queue the texts on the model's batcher, cut vectors to ``dimensions``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import SecretStr

from ..errors import CollectionNotFoundError, ConfigError, InvalidInputError, ObembedError, redact
from ..providers.base import l2_normalize, validate_texts
from ..providers.naming import served_names
from .batcher import Batcher, BatchResult
from .errors import HTTPRefusal
from .thumbnails import Thumbnails

__all__ = ["ServedModel", "ServerConfig", "ServerState", "build_models", "model_names"]

log = logging.getLogger("obembed.server.app")


@dataclass
class ServerConfig:
    """Limits and switches of one server; every field has a ``obembed serve`` flag."""

    max_inputs: int = 2048
    """Inputs per request (OpenAI's own limit is 2048)."""
    max_chars: int = 32768
    """Characters per input."""
    max_body_bytes: int = 16 * 1024 * 1024
    """Request body size, checked before the body is parsed."""
    max_queue: int = 4096
    """Texts waiting or being embedded per model; beyond it requests get 503 + Retry-After."""
    max_batch_items: int = 256
    max_batch_tokens: int = 16384
    batch_wait_ms: float = 10.0
    """How long the batcher waits for companions of a lone request."""
    max_k: int = 100
    api_key: SecretStr | None = None
    """When set, every API route needs ``Authorization: Bearer <key>``."""
    registered_keys: bool = False
    """Accept (and require) the access keys of the in-database registrations recorded in the store
    (``obembed serve --register``): every API route then needs the API key or one of those keys."""
    collections: tuple[str, ...] = ()
    """Collections exposed by /search and /collections (empty: all)."""
    max_thumbnail_renders: int = 2
    """Thumbnails made at once (each may decode a large image in full); more wait, see :mod:`.thumbnails`."""
    allowed_hosts: tuple[str, ...] = ()
    """Names besides localhost, 127.0.0.1 and [::1] a request over loopback may send as ``Host`` (``*``: any);
    see :class:`~obembed.server.middleware.HostCheckMiddleware`."""

    def __repr__(self) -> str:  # never show the key
        return f"ServerConfig(max_inputs={self.max_inputs}, max_chars={self.max_chars}, " \
               f"max_body_bytes={self.max_body_bytes}, max_queue={self.max_queue}, " \
               f"api_key={'***' if self.api_key else None}, collections={self.collections}, " \
               f"allowed_hosts={self.allowed_hosts})"


@dataclass
class ServedModel:
    name: str
    provider: Any
    batcher: Batcher
    aliases: list[str] = field(default_factory=list)
    created: int = field(default_factory=lambda: int(time.time()))


def model_names(provider: Any, alias: str | None = None) -> list[str]:
    """The names a served model answers to: an alias, the model's last path part, the model name, the spec
    (:func:`obembed.providers.naming.served_names`)."""
    return served_names(provider, alias)


def build_models(models: Any, config: ServerConfig) -> list[ServedModel]:
    """The served models of ``create_app(models)``, each with its batcher (see :func:`~.app.create_app`)."""
    import obembed

    items: list[tuple[Any, ...]]
    if models is None:
        items = [(None, obembed.load())]
    elif isinstance(models, Mapping):
        items = list(models.items())
    elif isinstance(models, str) or not isinstance(models, Sequence):
        items = [(None, models)]
    else:
        items = [m if isinstance(m, tuple) else (None, m) for m in models]
    out: list[ServedModel] = []
    for item in items:
        alias, m = item[0], item[1]
        more: Sequence[str] = item[2] if len(item) > 2 else ()
        provider = obembed.load(m) if isinstance(m, str) else m
        names = model_names(provider, alias)
        # the spec as the user wrote it (e.g. st:... served through the onnx fast path) also names the model
        for extra in [m if isinstance(m, str) else None, *more]:
            if extra and extra not in names:
                names.append(extra)
        batcher = Batcher(provider, max_batch_items=config.max_batch_items, max_batch_tokens=config.max_batch_tokens,
                          max_wait_s=config.batch_wait_ms / 1000.0, max_queue=config.max_queue, name=names[0])
        out.append(ServedModel(names[0], provider, batcher, names[1:]))
    if not out:
        raise ConfigError("no model to serve; pass --model SPEC")
    return out


class ServerState:
    """Everything the routes share: served models, limits, the (lazily opened) store."""

    def __init__(self, models: list[ServedModel], config: ServerConfig, store: Any,
                 store_factory: Callable[[], Any] | None, reranker: Any = None) -> None:
        self.models = models
        self.config = config
        self.reranker = reranker
        """The reranker of ``POST /v1/rerank`` (``obembed serve --rerank-model SPEC``), or None."""
        self._store = store
        self._store_factory = store_factory
        self._store_lock = threading.Lock()  # the store is used from worker threads, one call at a time
        self._by_name: dict[str, ServedModel] = {}
        self.thumbnails = Thumbnails(max_renders=config.max_thumbnail_renders)
        self.registered_keys: set[str] = set()
        """SHA-256 hex of in-database registrations' access keys: the ones accepted without a store; with one, the
        last answer per key (used only while the store cannot be read)."""
        for m in models:
            for n in [m.name, *m.aliases]:
                self._by_name.setdefault(n, m)
                self._by_name.setdefault(n.lower(), m)

    # ------------------------------------------------------------------ models
    def model(self, name: str | None, *, ollama: bool = False) -> ServedModel:
        if not name:
            if ollama:
                raise HTTPRefusal(400, "model is required; GET /api/tags lists the served models", "model_required",
                                  "model")
            return self.models[0]
        key = name.strip()
        for cand in (key, key.removesuffix(":latest")):
            m = self._by_name.get(cand) or self._by_name.get(cand.lower())
            if m is not None:
                return m
        served = ", ".join(m.name for m in self.models)
        if ollama:
            msg = f'model "{name}" not found, try pulling it first (this server serves: {served})'
        else:
            msg = f"The model `{name}` does not exist on this server; served models: {served} (GET /v1/models)"
        raise HTTPRefusal(404, msg, "model_not_found", "model")

    def model_and_kind(self, name: str | None) -> tuple[ServedModel, Literal["query", "document"] | None]:
        """The model and the prompt kind a request names: ``"<served name>::query"`` (how an in-database
        registration asks for query vectors, see :mod:`obembed.store.ai_models`) or a plain served name (no kind)."""
        from ..store.ai_models import split_model_name

        if name:
            base, kind = split_model_name(name.strip())
            if kind is not None:
                return self.model(base), kind
        return self.model(name), None

    def registered_key_ok(self, token: bytes) -> bool:
        """True when ``token`` is the access key of an in-database registration recorded in this server's store
        now (compared by SHA-256, one indexed read per request): a key registered while the server runs works at
        once, and a registration dropped with ``obembed db models drop`` (from any process) is refused at once.
        When the store cannot be read, the last answer for that key stands (logged). Without a store, the keys in
        ``registered_keys`` are the ones accepted."""
        import hashlib

        digest = hashlib.sha256(token).hexdigest()
        if self._store_factory is None and self._store is None:
            return digest in self.registered_keys
        from ..store.ai_models import key_registered

        try:
            ok = bool(self.run_store(key_registered, digest))
        except (ObembedError, HTTPRefusal) as exc:
            log.warning("checking a registered key failed: %s", redact(str(exc)))
            return digest in self.registered_keys
        if ok:
            self.registered_keys.add(digest)
        else:
            self.registered_keys.discard(digest)
        return ok

    def served_for(self, meta: Mapping[str, Any]) -> ServedModel | None:
        """The served model whose vector space a collection's metadata records (None: none of them)."""
        space = meta.get("space")
        if space is None and isinstance(meta.get("provider"), Mapping):
            space = meta["provider"].get("space")
        for m in self.models:
            try:
                if space and m.provider.space == space:
                    return m
            except ObembedError:
                continue
        return None

    def check_limits(self, texts: list[str]) -> list[str]:
        """The texts, validated and within the server's per-request limits (else InvalidInputError)."""
        config = self.config
        if len(texts) > config.max_inputs:
            raise InvalidInputError(f"{len(texts)} inputs in one request, more than this server's limit of "
                                    f"{config.max_inputs} (--max-inputs); split them over several requests")
        texts = validate_texts(texts)
        for i, t in enumerate(texts):
            if len(t) > config.max_chars:
                raise InvalidInputError(f"input {i} has {len(t)} characters, more than this server's limit of "
                                        f"{config.max_chars} (--max-chars); split it into chunks", index=i)
        return texts

    @staticmethod
    async def embed(m: ServedModel, texts: list[str], *, kind: Literal["query", "document"] = "document",
                    allow_truncate: bool = True) -> BatchResult:
        """Queue ``texts`` on the model's batcher and wait for their vectors."""
        fut = m.batcher.submit(texts, kind=kind, allow_truncate=allow_truncate)
        return await asyncio.wrap_future(fut)

    @staticmethod
    def resize(vectors: np.ndarray, m: ServedModel, dimensions: int | None) -> np.ndarray:
        """The first ``dimensions`` of each vector, re-normalised (a 400 for an impossible size).

        Called with an empty array before embedding, to refuse a bad size without embedding anything."""
        if dimensions is None:
            return vectors
        dim = int(vectors.shape[1]) if vectors.size else int(m.provider.dimension)
        if dimensions < 1 or dimensions > dim:
            raise HTTPRefusal(400, f"dimensions={dimensions} is not possible for {m.name}: it gives {dim}-d vectors; "
                                   f"send 1..{dim} or leave dimensions out", "invalid_dimensions", "dimensions")
        if dimensions == dim:
            return vectors
        return l2_normalize(vectors[:, :dimensions])

    # ------------------------------------------------------------------ store
    def store(self) -> Any:
        with self._store_lock:
            if self._store is None:
                if self._store_factory is None:
                    raise HTTPRefusal(404, "this server has no store: start it with --db PATH or --dsn DSN to "
                                           "enable /search", "no_store")
                self._store = self._store_factory()
            return self._store

    def run_store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        store = self.store()
        with self._store_lock:
            return fn(store, *args, **kwargs)

    def check_collection(self, name: str) -> None:
        allowed = self.config.collections
        if allowed and name not in allowed:
            raise CollectionNotFoundError(f"collection {name!r} is not served here; served: {', '.join(allowed)}")

    def open_collection(self, name: str) -> Any:
        """The collection ``name`` if this server shows it; a 404 that names nothing the server hides."""
        self.check_collection(name)
        try:
            return self.run_store(lambda s: s.collection(name))
        except CollectionNotFoundError:
            # the store's own message lists every collection of the database: not for clients
            raise CollectionNotFoundError(
                f"no collection named {name!r} on this server; GET /collections lists the ones served") from None

    def close(self) -> None:
        for m in self.models:
            m.batcher.close()
        if self.reranker is not None:
            self.reranker.close()
        if self._store is not None and self._store_factory is not None:
            try:
                self._store.close()
            except Exception as exc:  # closing must not mask shutdown
                log.warning("closing the store failed: %s", redact(str(exc)))
