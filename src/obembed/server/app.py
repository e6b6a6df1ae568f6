"""The obembed HTTP server: OpenAI- and Ollama-compatible embeddings, search, and a web page.

``create_app(models, config=..., store=...)`` builds a FastAPI app; ``obembed serve`` runs it on uvicorn.
The app only parses requests, applies the server's limits and renders answers: embedding goes
through one :class:`~obembed.server.batcher.Batcher` per served model, search through
:mod:`obembed.store`.

Endpoints::

    POST /v1/embeddings      OpenAI (input str | [str], model, dimensions, encoding_format float | base64)
    GET  /v1/models          OpenAI model list
    POST /api/embed          Ollama (input, truncate, dimensions) -> unit vectors
    POST /api/embeddings     Ollama legacy (prompt) -> one vector
    GET  /api/tags, /api/version   Ollama discovery (so `ollama.list()` works)
    GET  /health             liveness + per-model queue depth
    GET  /collections        the store's collections
    POST /search             {collection, query, k, filter} -> ranked hits
    GET  /thumbnail          a small JPEG of an image hit (only files recorded as a collection's sources)
    GET  /                   the web page; /openapi.json, /docs

Errors: every :class:`~obembed.errors.ObembedError` maps to its ``http_status``; bodies are OpenAI's
``{"error": {"message", "type", "param", "code"}}`` everywhere except under ``/api/``, where they are
Ollama's ``{"error": "..."}``. A full queue answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request
from starlette.responses import Response

from ..errors import CollectionNotFoundError, ConfigError, InvalidInputError, ObembedError, redact
from ..providers.base import l2_normalize, validate_texts
from .batcher import Batcher, BatchResult, ServerBusyError

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServedModel", "ServerConfig", "create_app", "model_names"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")


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
    collections: tuple[str, ...] = ()
    """Collections exposed by /search and /collections (empty: all)."""

    def __repr__(self) -> str:  # never show the key
        return f"ServerConfig(max_inputs={self.max_inputs}, max_chars={self.max_chars}, " \
               f"max_body_bytes={self.max_body_bytes}, max_queue={self.max_queue}, " \
               f"api_key={'***' if self.api_key else None}, collections={self.collections})"


@dataclass
class ServedModel:
    name: str
    provider: Any
    batcher: Batcher
    aliases: list[str] = field(default_factory=list)
    created: int = field(default_factory=lambda: int(time.time()))


def model_names(provider: Any, alias: str | None = None) -> list[str]:
    """The names a served model answers to: an alias, the model's last path part, the model name, the spec."""
    names = [alias] if alias else []
    model = str(provider.model)
    names += [model.rstrip("/").rsplit("/", 1)[-1], model, provider.spec]
    out: list[str] = []
    for n in names:
        if n and n not in out:
            out.append(n)
    return out


# --------------------------------------------------------------------------- request models
class EmbeddingsRequest(BaseModel):
    """OpenAI ``POST /v1/embeddings``."""

    model_config = ConfigDict(extra="allow")

    input: str | list[str] | list[int] | list[list[int]] = Field(
        ..., description="A text or a list of texts (token arrays are refused: send text).")
    model: str | None = Field(None, description="A served model's name (GET /v1/models); default: the first.")
    dimensions: int | None = Field(None, description="Truncate to this many dimensions and re-normalise.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: JSON numbers; base64: little-endian float32 bytes.")
    user: str | None = None
    input_type: Literal["query", "document"] | None = Field(
        None, description="obembed extension: embed as search queries (applies the model's query prompt).")


class OllamaEmbedRequest(BaseModel):
    """Ollama ``POST /api/embed``."""

    model_config = ConfigDict(extra="allow")

    model: str = Field("", description="A served model's name.")
    input: str | list[str] | None = Field(None, description="A text or a list of texts; empty gives no vectors.")
    truncate: bool | None = Field(True, description="false: an input over the context length is a 400.")
    dimensions: int | None = None
    options: dict[str, Any] | None = Field(None, description="Accepted and ignored.")
    keep_alive: str | float | None = Field(None, description="Accepted and ignored.")


class OllamaEmbeddingsRequest(BaseModel):
    """Ollama legacy ``POST /api/embeddings``."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    prompt: str | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | float | None = None


class SearchRequest(BaseModel):
    """``POST /search``."""

    model_config = ConfigDict(populate_by_name=True)

    collection: str = Field(..., description="Collection name (GET /collections).")
    query: str = Field(..., description="Query text.")
    k: int = Field(10, description="How many hits (1..max_k).")
    filter: dict[str, Any] | str | None = Field(
        None, alias="filter", description='Filter: {"lang": "ja", "year": {">=": 2020}} or "lang = \'ja\'".')
    where: dict[str, Any] | str | None = Field(None, description="Same as filter.")
    hybrid: bool = Field(False, description="Vector + full-text (collections created with fulltext).")
    exact: bool | None = Field(
        None, description="true: exact (brute-force) scan; false: the vector index; null (default): the store's "
        "policy (exact up to 20,000 rows, the index above), as in Python and `obembed search`.")


# --------------------------------------------------------------------------- errors
class _HTTPError(ObembedError):
    """An HTTP-level refusal (auth, size, unknown model) with a status and an OpenAI error code."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.headers = headers or {}


_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
                 429: "rate_limit_error", 503: "server_error"}


def _error_response(path: str, status: int, message: str, code: str | None = None, param: str | None = None,
                    headers: dict[str, str] | None = None) -> Response:
    message = redact(message)
    body: dict[str, Any]
    if path.startswith("/api/"):
        body = {"error": message}
    else:
        body = {"error": {"message": message, "type": _OPENAI_TYPES.get(status, "server_error" if status >= 500
                                                                         else "invalid_request_error"),
                          "param": param, "code": code}}
    return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type="application/json",
                    headers=headers)


def _jsonable(o: Any) -> Any:
    """json.dumps fallback for what the store returns: datetimes, decimals, numpy scalars and arrays."""
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, bytes | bytearray):
        return base64.b64encode(o).decode()
    return str(o)


def _json(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_jsonable), status_code=status,
                    media_type="application/json")


# --------------------------------------------------------------------------- body size (ASGI middleware)
class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``: by Content-Length before reading, else while streaming it in."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    size = int(v)
                except ValueError:
                    await self._refuse(path, scope, receive, send, "Content-Length is not a number", 400)
                    return
                if size > self.max_bytes:
                    await self._refuse(path, scope, receive, send, self._msg(size), 413)
                    return
        seen = 0

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    from fastapi import HTTPException

                    # FastAPI re-raises its own HTTPException from body reading; the app's handler renders it
                    raise HTTPException(413, self._msg(seen))
            return message

        await self.app(scope, limited_receive, send)

    def _msg(self, size: int) -> str:
        return (f"request body of {size} bytes is larger than the server's limit of {self.max_bytes} bytes "
                "(obembed serve --max-body-bytes); send fewer or shorter inputs per request")

    @staticmethod
    async def _refuse(path: str, scope: Any, receive: Any, send: Any, message: str, status: int) -> None:
        resp = _error_response(path, status, message, "request_too_large" if status == 413 else "invalid_request")
        await resp(scope, receive, send)


# --------------------------------------------------------------------------- the app
class _State:
    """Everything the routes share: served models, limits, the (lazily opened) store."""

    def __init__(self, models: list[ServedModel], config: ServerConfig, store: Any,
                 store_factory: Callable[[], Any] | None) -> None:
        self.models = models
        self.config = config
        self._store = store
        self._store_factory = store_factory
        self._store_lock = threading.Lock()  # the store is used from worker threads, one call at a time
        self._by_name: dict[str, ServedModel] = {}
        for m in models:
            for n in [m.name, *m.aliases]:
                self._by_name.setdefault(n, m)
                self._by_name.setdefault(n.lower(), m)

    def model(self, name: str | None, *, ollama: bool = False) -> ServedModel:
        if not name:
            if ollama:
                raise _HTTPError(400, "model is required; GET /api/tags lists the served models", "model_required",
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
        raise _HTTPError(404, msg, "model_not_found", "model")

    def store(self) -> Any:
        with self._store_lock:
            if self._store is None:
                if self._store_factory is None:
                    raise _HTTPError(404, "this server has no store: start it with --db PATH or --dsn DSN to "
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
        if self._store is not None and self._store_factory is not None:
            try:
                self._store.close()
            except Exception as exc:  # closing must not mask shutdown
                log.warning("closing the store failed: %s", redact(str(exc)))


def _build_models(models: Any, config: ServerConfig) -> list[ServedModel]:
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


def create_app(
    models: Any = None,
    *,
    config: ServerConfig | None = None,
    store: Any = None,
    store_factory: Callable[[], Any] | None = None,
) -> FastAPI:
    """Build the ASGI app.

    ``models``: a provider, a spec string, a list of them (or of ``(name, provider_or_spec[, other_names])``
    tuples), or ``{name: provider_or_spec}`` (names are what clients send as ``model``); default: the
    configured default model. ``store``: an open
    :class:`obembed.store.Store` for /search (the caller closes it), or ``store_factory`` to open one on
    first use (closed with the app). Models are loaded before this returns.
    """
    from fastapi import Depends, FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.security import HTTPBearer
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import FileResponse

    import obembed

    config = config or ServerConfig()
    served = _build_models(models, config)
    for m in served:
        m.provider.dimension  # noqa: B018 - load the model now, not on the first request
    state = _State(served, config, store, store_factory)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        state.close()

    app = FastAPI(
        title="obembed",
        version=obembed.__version__,
        description="Embeddings (OpenAI- and Ollama-compatible), search over OceanBase / seekdb collections.",
        lifespan=lifespan,
    )
    app.state.obembed = state
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)

    key = config.api_key.get_secret_value().encode() if config.api_key else None
    bearer = HTTPBearer(auto_error=False, description="obembed serve --api-key-env VAR")

    def auth(creds: Any = Depends(bearer)) -> None:  # noqa: B008 - HTTPAuthorizationCredentials | None
        if key is None:
            return
        given = creds.credentials.encode() if creds and creds.scheme.lower() == "bearer" else b""
        if not given or not hmac.compare_digest(given, key):
            raise _HTTPError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>' "
                                  "(the key the server's --api-key-env variable holds)", "invalid_api_key",
                             headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(auth)] if key is not None else []

    # ------------------------------------------------------------------ error handlers
    @app.exception_handler(_HTTPError)
    async def _http_error(request: Request, exc: _HTTPError) -> Response:
        return _error_response(request.url.path, exc.status, str(exc), exc.code, exc.param, exc.headers)

    @app.exception_handler(ServerBusyError)
    async def _busy(request: Request, exc: ServerBusyError) -> Response:
        return _error_response(request.url.path, 503, str(exc), "server_busy",
                               headers={"Retry-After": str(int(exc.retry_after))})

    @app.exception_handler(ObembedError)
    async def _obembed_error(request: Request, exc: ObembedError) -> Response:
        status = exc.http_status
        if status >= 500:
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__,
                      redact(str(exc)))
        return _error_response(request.url.path, status, str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        parts = []
        for e in errs[:3]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            parts.append(f"{loc}: {e.get('msg', 'invalid')}")
        param = next((str(e["loc"][-1]) for e in errs if e.get("loc")), None)
        return _error_response(request.url.path, 400, "invalid request: " + "; ".join(parts), "invalid_request",
                               param)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette(request: Request, exc: StarletteHTTPException) -> Response:
        return _error_response(request.url.path, exc.status_code, str(exc.detail), None,
                               headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("%s %s: unexpected %s: %s", request.method, request.url.path, type(exc).__name__,
                  redact(str(exc)), exc_info=exc)
        return _error_response(request.url.path, 500, f"internal error ({type(exc).__name__}); see the server log",
                               "internal_error")

    # ------------------------------------------------------------------ helpers
    def check_limits(texts: list[str]) -> list[str]:
        if len(texts) > config.max_inputs:
            raise InvalidInputError(f"{len(texts)} inputs in one request, more than this server's limit of "
                                    f"{config.max_inputs} (--max-inputs); split them over several requests")
        texts = validate_texts(texts)
        for i, t in enumerate(texts):
            if len(t) > config.max_chars:
                raise InvalidInputError(f"input {i} has {len(t)} characters, more than this server's limit of "
                                        f"{config.max_chars} (--max-chars); split it into chunks", index=i)
        return texts

    async def embed(m: ServedModel, texts: list[str], *, kind: Literal["query", "document"] = "document",
                    allow_truncate: bool = True) -> BatchResult:
        fut = m.batcher.submit(texts, kind=kind, allow_truncate=allow_truncate)
        return await asyncio.wrap_future(fut)

    def resize(vectors: np.ndarray, m: ServedModel, dimensions: int | None) -> np.ndarray:
        if dimensions is None:
            return vectors
        dim = int(vectors.shape[1]) if vectors.size else int(m.provider.dimension)
        if dimensions < 1 or dimensions > dim:
            raise _HTTPError(400, f"dimensions={dimensions} is not possible for {m.name}: it gives {dim}-d vectors; "
                                  f"send 1..{dim} or leave dimensions out", "invalid_dimensions", "dimensions")
        if dimensions == dim:
            return vectors
        return l2_normalize(vectors[:, :dimensions])

    # ------------------------------------------------------------------ OpenAI
    @app.post("/v1/embeddings", dependencies=guarded, tags=["openai"],
              responses={400: {}, 401: {}, 404: {}, 413: {}, 503: {}})
    async def openai_embeddings(body: EmbeddingsRequest) -> Response:
        """Embed texts (OpenAI's embeddings API). Vectors are unit length when the model's are."""
        raw = body.input
        if isinstance(raw, list) and raw and not isinstance(raw[0], str):
            raise InvalidInputError("token arrays are not supported by this server; send the text itself "
                                    "(input: a string or a list of strings)")
        texts: list[Any] = [raw] if isinstance(raw, str) else list(raw)
        if not texts:
            raise InvalidInputError("input is an empty list; send at least one text")
        texts = check_limits(texts)
        m = state.model(body.model)
        if body.dimensions is not None:
            resize(np.zeros((0, 0), np.float32), m, body.dimensions)  # refuse before embedding
        res = await embed(m, texts, kind=body.input_type or "document")
        vectors = resize(res.vectors, m, body.dimensions)
        if body.encoding_format == "base64":
            le = vectors.astype("<f4", copy=False)
            data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(le[i].tobytes()).decode()}
                    for i in range(len(texts))]
        else:
            rows = vectors.tolist()
            data = [{"object": "embedding", "index": i, "embedding": rows[i]} for i in range(len(texts))]
        n_tokens = sum(res.token_counts)
        return _json({"object": "list", "data": data, "model": m.name,
                      "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}})

    @app.get("/v1/models", dependencies=guarded, tags=["openai"])
    async def openai_models() -> Response:
        """The served models (OpenAI's model list)."""
        return _json({"object": "list", "data": [
            {"id": m.name, "object": "model", "created": m.created, "owned_by": "obembed",
             "aliases": m.aliases, "dimension": m.provider.dimension} for m in state.models]})

    # ------------------------------------------------------------------ Ollama
    @app.post("/api/embed", dependencies=guarded, tags=["ollama"], responses={400: {}, 401: {}, 404: {}, 503: {}})
    async def ollama_embed(body: OllamaEmbedRequest) -> Response:
        """Embed texts (Ollama's /api/embed); empty input gives ``embeddings: []``."""
        t0 = time.perf_counter_ns()
        m = state.model(body.model, ollama=True)
        if body.dimensions is not None:
            resize(np.zeros((0, 0), np.float32), m, body.dimensions)
        raw = body.input
        texts = ([raw] if raw else []) if isinstance(raw, str) or raw is None else list(raw)
        if not texts:
            return _json({"model": body.model, "embeddings": [], "total_duration": time.perf_counter_ns() - t0,
                          "load_duration": 0, "prompt_eval_count": 0})
        texts = check_limits(texts)
        res = await embed(m, texts, allow_truncate=body.truncate is not False)
        vectors = resize(res.vectors, m, body.dimensions)
        return _json({"model": body.model, "embeddings": vectors.tolist(),
                      "total_duration": time.perf_counter_ns() - t0, "load_duration": 0,
                      "prompt_eval_count": sum(res.token_counts)})

    @app.post("/api/embeddings", dependencies=guarded, tags=["ollama"], responses={400: {}, 401: {}, 404: {}})
    async def ollama_embeddings(body: OllamaEmbeddingsRequest) -> Response:
        """Ollama's legacy endpoint: one ``prompt`` -> ``embedding`` (empty prompt -> empty embedding)."""
        m = state.model(body.model, ollama=True)
        if not body.prompt:
            return _json({"embedding": []})
        texts = check_limits([body.prompt])
        res = await embed(m, texts)
        return _json({"embedding": res.vectors[0].tolist()})

    @app.get("/api/tags", dependencies=guarded, tags=["ollama"])
    async def ollama_tags() -> Response:
        """The served models, Ollama style (``ollama.list()``)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return _json({"models": [
            {"name": m.name, "model": m.name, "modified_at": now, "size": 0, "digest": "",
             "details": {"format": m.provider.name, "family": "embedding", "families": None,
                         "parameter_size": "", "quantization_level": ""}} for m in state.models]})

    @app.get("/api/version", tags=["ollama"])
    async def ollama_version() -> Response:
        return _json({"version": obembed.__version__})

    # ------------------------------------------------------------------ health
    @app.get("/health", tags=["server"])
    async def health() -> Response:
        """Liveness, the served models and their queue depth (no secrets)."""
        return _json({"status": "ok", "version": obembed.__version__, "models": [
            {"name": m.name, "spec": m.provider.spec, "dimension": m.provider.dimension,
             "runtime": getattr(m.provider, "runtime", ""), "pending": m.batcher.pending,
             "max_queue": m.batcher.max_queue, **m.batcher.stats}
            for m in state.models]})

    # ------------------------------------------------------------------ store
    def served_for(meta: Mapping[str, Any]) -> ServedModel | None:
        space = meta.get("space")
        if space is None and isinstance(meta.get("provider"), Mapping):
            space = meta["provider"].get("space")
        for m in state.models:
            try:
                if space and m.provider.space == space:
                    return m
            except ObembedError:
                continue
        return None

    @app.get("/collections", dependencies=guarded, tags=["search"], responses={401: {}, 404: {}, 503: {}})
    async def collections() -> Response:
        """The store's collections (name, dimension, distance, spec, count)."""
        from starlette.concurrency import run_in_threadpool

        rows = await run_in_threadpool(state.run_store, lambda s: s.list_collections())
        if config.collections:
            rows = [r for r in rows if r.get("name") in config.collections]
        return _json({"collections": rows}, 200)

    @app.post("/search", dependencies=guarded, tags=["search"], responses={400: {}, 401: {}, 404: {}, 503: {}})
    async def search(body: SearchRequest) -> Response:
        """Ranked hits of a collection for a text query, optionally filtered."""
        from starlette.concurrency import run_in_threadpool

        if not body.query.strip():
            raise InvalidInputError("query is empty; type something to search for")
        if len(body.query) > config.max_chars:
            raise InvalidInputError(f"query has {len(body.query)} characters, more than {config.max_chars}")
        if not 1 <= body.k <= config.max_k:
            raise InvalidInputError(f"k={body.k} must be between 1 and {config.max_k}")
        where = body.filter if body.filter is not None else body.where
        coll = await run_in_threadpool(state.open_collection, body.collection)
        query: Any = body.query
        m = served_for(getattr(coll, "metadata", {}) or {})
        if m is not None:  # embed through the batcher: same vectors, and it queues with everything else
            # (also for hybrid: else the store would load a second copy of the model, under the store lock)
            query = (await embed(m, [body.query], kind="query")).vectors[0]

        def run(_: Any) -> Any:
            if body.hybrid:
                return coll.hybrid_search(body.query, body.k, where=where, vector=None if m is None else query)
            return coll.search(query, body.k, where=where, exact=body.exact)

        hits = await run_in_threadpool(state.run_store, run)
        out = []
        for h in hits:
            d = h.to_dict() if hasattr(h, "to_dict") else dict(h)
            src = str(d.get("source") or "")
            if src.lower().endswith(IMAGE_SUFFIXES):
                d["thumbnail"] = "/thumbnail?" + urlencode({"collection": body.collection, "id": d.get("id")})
            out.append(d)
        return _json({"collection": body.collection, "query": body.query, "k": body.k,
                      "model": m.name if m else None, "hits": out})

    @app.get("/thumbnail", dependencies=guarded, tags=["search"], responses={400: {}, 404: {}})
    async def thumbnail(collection: str, id: str, size: int = 256) -> Response:
        """A JPEG thumbnail of an image row: only a file recorded as that row's source is ever read."""
        from starlette.concurrency import run_in_threadpool

        size = max(16, min(size, 1024))
        coll = await run_in_threadpool(state.open_collection, collection)
        rows = await run_in_threadpool(state.run_store, lambda s: coll.get([id]))
        src = str(rows[0].get("source") or "") if rows else ""
        path = Path(src)
        if not src or not src.lower().endswith(IMAGE_SUFFIXES) or not path.is_file():
            raise _HTTPError(404, f"row {id!r} of {collection!r} has no readable image source", "not_found", "id")

        def make() -> bytes | None:
            try:
                import PIL  # noqa: F401
            except ImportError:
                return None
            import io

            from ..images import load_image

            # load_image bounds memory (JPEG draft, pixel budget, decompression bombs) and converts to RGB;
            # thumbnail() then bounds the longer side too
            im = load_image(path, max_size=size).image
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
            return buf.getvalue()

        try:
            data = await run_in_threadpool(make)
        except Exception as exc:  # a truncated/corrupt/unsupported file is a missing thumbnail, not a 500
            log.info("thumbnail of %s/%s: %s", collection, id, redact(str(exc)))
            raise _HTTPError(404, f"row {id!r} of {collection!r}: the image cannot be read ({type(exc).__name__})",
                             "not_found", "id") from None
        if data is None:
            return FileResponse(path)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=300"})

    # ------------------------------------------------------------------ web page
    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app
