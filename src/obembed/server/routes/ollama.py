"""Ollama-compatible routes: ``POST /api/embed``, ``POST /api/embeddings`` (legacy), ``GET /api/tags``,
``GET /api/version`` (so Ollama clients, ``ollama.list()`` included, work against obembed)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.responses import Response

from ..responses import json_response
from ..schemas import OllamaEmbeddingsRequest, OllamaEmbedRequest
from ..state import ServerState

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["router"]


def router(state: ServerState, guarded: list[Any]) -> APIRouter:
    from fastapi import APIRouter

    import obembed

    r = APIRouter(tags=["ollama"])

    @r.post("/api/embed", dependencies=guarded, responses={400: {}, 401: {}, 404: {}, 503: {}})
    async def ollama_embed(body: OllamaEmbedRequest) -> Response:
        """Embed texts (Ollama's /api/embed); empty input gives ``embeddings: []``."""
        t0 = time.perf_counter_ns()
        m = state.model(body.model, ollama=True)
        if body.dimensions is not None:
            state.resize(np.zeros((0, 0), np.float32), m, body.dimensions)
        raw = body.input
        texts = ([raw] if raw else []) if isinstance(raw, str) or raw is None else list(raw)
        if not texts:
            return json_response({"model": body.model, "embeddings": [],
                                  "total_duration": time.perf_counter_ns() - t0, "load_duration": 0,
                                  "prompt_eval_count": 0})
        texts = state.check_limits(texts)
        res = await state.embed(m, texts, allow_truncate=body.truncate is not False)
        vectors = state.resize(res.vectors, m, body.dimensions)
        return json_response({"model": body.model, "embeddings": vectors.tolist(),
                              "total_duration": time.perf_counter_ns() - t0, "load_duration": 0,
                              "prompt_eval_count": sum(res.token_counts)})

    @r.post("/api/embeddings", dependencies=guarded, responses={400: {}, 401: {}, 404: {}})
    async def ollama_embeddings(body: OllamaEmbeddingsRequest) -> Response:
        """Ollama's legacy endpoint: one ``prompt`` -> ``embedding`` (empty prompt -> empty embedding)."""
        m = state.model(body.model, ollama=True)
        if not body.prompt:
            return json_response({"embedding": []})
        texts = state.check_limits([body.prompt])
        res = await state.embed(m, texts)
        return json_response({"embedding": res.vectors[0].tolist()})

    @r.get("/api/tags", dependencies=guarded)
    async def ollama_tags() -> Response:
        """The served models, Ollama style (``ollama.list()``)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return json_response({"models": [
            {"name": m.name, "model": m.name, "modified_at": now, "size": 0, "digest": "",
             "details": {"format": m.provider.name, "family": "embedding", "families": None,
                         "parameter_size": "", "quantization_level": ""}} for m in state.models]})

    @r.get("/api/version")
    async def ollama_version() -> Response:
        return json_response({"version": obembed.__version__})

    return r
