"""Rerank route: ``POST /v1/rerank`` (also ``/v2/rerank`` and ``/rerank``), the request and response shape of
Cohere's and Jina's rerank APIs, so their clients, other tools (and seekdb's ``AI_RERANK``) can use the
server's reranker (``obembed serve --rerank-model SPEC``).

Request ``{"model"?, "query", "documents": [str | {"text"}], "top_n"?, "return_documents"?}``; answer
``{"id", "model", "results": [{"index", "relevance_score", "document"?: {"text"}}], "meta", "usage"}``, best first,
ties in input order. The scoring is the library's (:meth:`obembed.providers.rerank.Reranker.score`).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from ...errors import ConfigError, InvalidInputError
from ...providers.naming import served_names
from ..errors import HTTPRefusal
from ..responses import json_response
from ..schemas import RerankRequest
from ..state import ServerState

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["reranker_names", "router"]


def reranker_names(reranker: Any) -> list[str]:
    """Names a served reranker answers to: the model's last path part, the model name, the spec
    (:func:`obembed.providers.naming.served_names`)."""
    return served_names(reranker)


def router(state: ServerState, guarded: list[Any]) -> APIRouter:
    from fastapi import APIRouter
    from starlette.concurrency import run_in_threadpool

    config = state.config
    r = APIRouter(tags=["rerank"])

    async def rerank(body: RerankRequest) -> Response:
        """Score ``documents`` against ``query`` with the served reranker; best first."""
        reranker = state.reranker
        if reranker is None:
            raise HTTPRefusal(404, "this server has no reranker: start it with --rerank-model SPEC "
                                   "(e.g. cross-encoder:BAAI/bge-reranker-v2-m3)", "no_reranker")
        names = reranker_names(reranker)
        if body.model and body.model not in names:
            raise HTTPRefusal(404, f"The model `{body.model}` is not served here; the reranker is {names[0]} "
                                   f"({reranker.spec})", "model_not_found", "model")
        if len(body.documents) > config.max_inputs:
            raise InvalidInputError(f"{len(body.documents)} documents in one request, more than this server's limit "
                                    f"of {config.max_inputs} (--max-inputs); split them over several requests")
        texts = [d if isinstance(d, str) else d.text for d in body.documents]
        for i, t in enumerate([body.query, *texts]):
            if len(t) > config.max_chars:
                what = "the query" if i == 0 else f"document {i - 1}"
                raise InvalidInputError(f"{what} has {len(t)} characters, more than this server's limit of "
                                        f"{config.max_chars} (--max-chars)", index=None if i == 0 else i - 1)
        if body.top_n is not None and body.top_n < 1:
            raise ConfigError(f"top_n={body.top_n} must be at least 1 (or left out for all)")
        result = await run_in_threadpool(reranker.score, body.query, texts)
        results = []
        for hit in result.ranking(body.top_n):
            item: dict[str, Any] = {"index": hit.index, "relevance_score": hit.score}
            if body.return_documents:
                item["document"] = {"text": texts[hit.index]}
            results.append(item)
        return json_response({"id": uuid.uuid4().hex, "model": names[0], "results": results,
                              "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
                              "usage": {"total_tokens": int(result.n_tokens)}})

    for path in ("/v1/rerank", "/v2/rerank", "/rerank"):
        r.add_api_route(path, rerank, methods=["POST"], dependencies=guarded,
                        responses={400: {}, 401: {}, 404: {}, 502: {}}, include_in_schema=path == "/v1/rerank")
    return r
