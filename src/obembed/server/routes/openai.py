"""OpenAI-compatible routes: ``POST /v1/embeddings``, ``GET /v1/models``."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.responses import Response

from ...errors import InvalidInputError
from ..responses import json_response
from ..schemas import EmbeddingsRequest
from ..state import ServerState

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["router"]


def router(state: ServerState, guarded: list[Any]) -> APIRouter:
    from fastapi import APIRouter

    r = APIRouter(tags=["openai"])

    @r.post("/v1/embeddings", dependencies=guarded, responses={400: {}, 401: {}, 404: {}, 413: {}, 503: {}})
    async def openai_embeddings(body: EmbeddingsRequest) -> Response:
        """Embed texts (OpenAI's embeddings API). Vectors are unit length when the model's are."""
        raw = body.input
        if isinstance(raw, list) and raw and not isinstance(raw[0], str):
            raise InvalidInputError("token arrays are not supported by this server; send the text itself "
                                    "(input: a string or a list of strings)")
        texts: list[Any] = [raw] if isinstance(raw, str) else list(raw)
        if not texts:
            raise InvalidInputError("input is an empty list; send at least one text")
        texts = state.check_limits(texts)
        m, kind = state.model_and_kind(body.model)
        if body.dimensions is not None:
            state.resize(np.zeros((0, 0), np.float32), m, body.dimensions)  # refuse before embedding
        res = await state.embed(m, texts, kind=body.input_type or kind or "document")
        vectors = state.resize(res.vectors, m, body.dimensions)
        if body.encoding_format == "base64":
            le = vectors.astype("<f4", copy=False)
            data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(le[i].tobytes()).decode()}
                    for i in range(len(texts))]
        else:
            rows = vectors.tolist()
            data = [{"object": "embedding", "index": i, "embedding": rows[i]} for i in range(len(texts))]
        n_tokens = sum(res.token_counts)
        return json_response({"object": "list", "data": data, "model": m.name,
                              "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}})

    @r.get("/v1/models", dependencies=guarded)
    async def openai_models() -> Response:
        """The served models (OpenAI's model list)."""
        return json_response({"object": "list", "data": [
            {"id": m.name, "object": "model", "created": m.created, "owned_by": "obembed",
             "aliases": m.aliases, "dimension": m.provider.dimension} for m in state.models]})

    return r
