"""The obembed HTTP server: OpenAI- and Ollama-compatible embeddings, search, and a web page.

``create_app(models, config=..., store=...)`` builds a FastAPI app; ``obembed serve`` runs it on uvicorn.
The app only parses requests, applies the server's limits and renders answers: embedding goes
through one :class:`~obembed.server.batcher.Batcher` per served model, search through
:mod:`obembed.store`.

Modules: :mod:`.state` (limits, served models, the store), :mod:`.routes` (one router per API: openai,
ollama, search, page), :mod:`.errors` (error -> status and body), :mod:`.middleware` (body limit, API key),
:mod:`.schemas` (request bodies), :mod:`.responses` (JSON rendering), :mod:`.batcher`.

Endpoints::

    POST /v1/embeddings      OpenAI (input str | [str], model, dimensions, encoding_format float | base64)
    GET  /v1/models          OpenAI model list
    POST /api/embed          Ollama (input, truncate, dimensions) -> unit vectors
    POST /api/embeddings     Ollama legacy (prompt) -> one vector
    GET  /api/tags, /api/version   Ollama discovery (so `ollama.list()` works)
    GET  /health             liveness + per-model queue depth
    GET  /collections        the store's collections
    POST /search             {collection, query, k, filter} -> ranked hits
    POST /v1/rerank          Cohere/Jina rerank (query, documents, top_n) with --rerank-model (also /v2/rerank, /rerank)
    GET  /thumbnail          a small JPEG of an image hit (only files recorded as a collection's sources)
    GET  /                   the web page; /openapi.json, /docs

Over loopback, a request's ``Host`` must name this machine (localhost, 127.0.0.1, [::1] or
``ServerConfig.allowed_hosts``): a 400 otherwise, against DNS rebinding (:class:`.middleware.HostCheckMiddleware`).

Errors: every :class:`~obembed.errors.ObembedError` maps to its ``http_status``; bodies are OpenAI's
``{"error": {"message", "type", "param", "code"}}`` everywhere except under ``/api/``, where they are
Ollama's ``{"error": "..."}``. A full queue answers 503 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from .errors import HTTPRefusal, install_error_handlers
from .middleware import BodyLimitMiddleware, HostCheckMiddleware, api_key_guard
from .state import ServedModel, ServerConfig, ServerState, build_models, model_names

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["HTTPRefusal", "ServedModel", "ServerConfig", "create_app", "model_names"]


def create_app(
    models: Any = None,
    *,
    config: ServerConfig | None = None,
    store: Any = None,
    store_factory: Callable[[], Any] | None = None,
    reranker: Any = None,
) -> FastAPI:
    """Build the ASGI app.

    ``models``: a provider, a spec string, a list of them (or of ``(name, provider_or_spec[, other_names])``
    tuples), or ``{name: provider_or_spec}`` (names are what clients send as ``model``); default: the
    configured default model. ``store``: an open
    :class:`obembed.store.Store` for /search (the caller closes it), or ``store_factory`` to open one on
    first use (closed with the app). ``reranker``: a reranker or a spec (``cross-encoder:...``) served at
    ``POST /v1/rerank``. Models are loaded before this returns.
    """
    from fastapi import FastAPI

    import obembed

    from .routes import ollama, openai, page, rerank, search

    config = config or ServerConfig()
    served = build_models(models, config)
    for m in served:
        m.provider.dimension  # noqa: B018 - load the model now, not on the first request
    if reranker is not None:
        reranker = obembed.load_reranker(reranker).load()  # the reranker too: loaded now, not on the first request
    state = ServerState(served, config, store, store_factory, reranker)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
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
    app.add_middleware(HostCheckMiddleware, allowed=config.allowed_hosts)  # added last: runs first
    install_error_handlers(app)
    guarded = api_key_guard(config.api_key.get_secret_value().encode() if config.api_key else None,
                            state.registered_key_ok if config.registered_keys else None)
    app.include_router(openai.router(state, guarded))
    app.include_router(ollama.router(state, guarded))
    app.include_router(page.router(state))
    app.include_router(search.router(state, guarded))
    app.include_router(rerank.router(state, guarded))
    return app
