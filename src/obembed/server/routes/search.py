"""Search routes: ``GET /collections``, ``POST /search``, ``GET /thumbnail`` (image hits)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.responses import Response

from ...errors import ConfigError, InvalidInputError, ObembedError, redact
from ...images import is_image_path
from ...store.base import source_label
from ..errors import HTTPRefusal
from ..responses import json_response
from ..schemas import SearchRequest
from ..state import ServerState

if TYPE_CHECKING:
    from fastapi import APIRouter

    from ...eval.modes import SearchMode

__all__ = ["request_mode", "router"]

log = logging.getLogger("obembed.server.app")


def request_mode(body: SearchRequest) -> SearchMode:
    """The search mode of a request: ``mode`` (the syntax of ``obembed eval --mode``) with ``weights``, or the older
    ``hybrid: true`` (vector + full-text, weight 1 each); dense by default. Conflicts are refused naming the fix."""
    from ...eval.modes import SearchMode, parse_mode

    if body.hybrid and body.mode is not None:
        raise InvalidInputError("give mode or hybrid, not both (hybrid: true is mode 'hybrid:dense=1,fulltext=1')")
    if body.hybrid:
        mode = SearchMode("hybrid", (("dense", 1.0), ("fulltext", 1.0)))
    else:
        try:
            mode = parse_mode(body.mode) if body.mode is not None else SearchMode("dense")
        except ObembedError as exc:
            raise InvalidInputError(f"mode: {exc}") from None
    if body.weights is not None:
        if mode.mode != "hybrid":
            raise InvalidInputError(f"weights apply to mode 'hybrid', not {mode.mode!r}; set mode to 'hybrid'")
        if mode.weights is not None:
            raise InvalidInputError("give the hybrid weights once: in mode (hybrid:dense=1,fulltext=0.5) or in "
                                    "weights, not both")
        try:
            mode = parse_mode("hybrid:" + ",".join(f"{leg}={w!r}" for leg, w in body.weights.items())
                              + ("+rerank" if mode.rerank else ""))
        except ObembedError as exc:
            raise InvalidInputError(f"weights {body.weights!r}: {exc}") from None
    return mode


class _QueryVectors:
    """The served model as a collection's query model, with this request's vectors already made: the text of the
    request gets them, any other text goes to the model itself."""

    def __init__(self, provider: Any, text: str, dense: Any, sparse: dict[int, float] | None) -> None:
        self.provider, self.text, self.dense, self.sparse = provider, text, dense, sparse

    @property
    def spec(self) -> str:
        return str(self.provider.spec)

    @property
    def dimension(self) -> int:
        return int(self.provider.dimension)

    @property
    def space(self) -> str:
        return str(self.provider.space)

    def info(self) -> dict[str, Any]:
        return dict(self.provider.info())

    def embed_query(self, item: Any) -> Any:
        if item == self.text and self.dense is not None:
            return self.dense
        return self.provider.embed_query(item)

    def embed_sparse(self, items: list[str], kind: str = "query") -> list[dict[int, float]]:
        if kind == "query" and list(items) == [self.text] and self.sparse is not None:
            return [self.sparse]
        embed_sparse = getattr(self.provider, "embed_sparse", None)
        if embed_sparse is None:
            raise ConfigError(f"the model {self.spec} gives no sparse vectors, so a sparse search needs a "
                              "{token id: weight} query; search with mode dense, fulltext or hybrid")
        out: list[dict[int, float]] = embed_sparse(items, kind=kind)
        return out


def router(state: ServerState, guarded: list[Any]) -> APIRouter:
    from fastapi import APIRouter
    from starlette.concurrency import run_in_threadpool
    config = state.config
    r = APIRouter(tags=["search"])

    @r.get("/collections", dependencies=guarded, responses={401: {}, 404: {}, 503: {}})
    async def collections() -> Response:
        """The store's collections (name, dimension, distance, spec, count)."""
        rows = await run_in_threadpool(state.run_store, lambda s: s.list_collections())
        if config.collections:
            rows = [row for row in rows if row.get("name") in config.collections]
        return json_response({"collections": rows}, 200)

    @r.post("/search", dependencies=guarded, responses={400: {}, 401: {}, 404: {}, 503: {}})
    async def search(body: SearchRequest) -> Response:
        """Ranked hits of a collection for a text query, optionally filtered."""
        if not body.query.strip():
            raise InvalidInputError("query is empty; type something to search for")
        if len(body.query) > config.max_chars:
            raise InvalidInputError(f"query has {len(body.query)} characters, more than {config.max_chars}")
        if not 1 <= body.k <= config.max_k:
            raise InvalidInputError(f"k={body.k} must be between 1 and {config.max_k}")
        where = body.filter if body.filter is not None else body.where
        mode = request_mode(body)
        rerank = body.rerank or mode.rerank
        if rerank and state.reranker is None:
            raise HTTPRefusal(400, "rerank: this server has no reranker; start it with --rerank-model SPEC (e.g. "
                                   "cross-encoder:BAAI/bge-reranker-v2-m3), or search without rerank",
                              "no_reranker", "rerank")
        coll = await run_in_threadpool(state.open_collection, body.collection)
        m = state.served_for(getattr(coll, "metadata", {}) or {})
        if m is not None:
            # embed through the batcher (same vectors, queued with everything else) and the served model's sparse
            # head; the collection gets them as its query model, so the store never loads a second copy of the
            # model under its lock, and Collection.search decides everything else (legs, fusion, reranking)
            dense = sparse = None
            if mode.needs("dense"):
                dense = (await state.embed(m, [body.query], kind="query")).vectors[0]
            if mode.needs("sparse") and coll.has_sparse and callable(getattr(m.provider, "embed_sparse", None)):
                sparse = (await run_in_threadpool(m.provider.embed_sparse, [body.query], kind="query"))[0]
            coll.attach(_QueryVectors(m.provider, body.query, dense, sparse))

        def run(_: Any) -> Any:
            return coll.search(body.query, body.k, where=where, exact=body.exact, mode=mode.mode,
                               weights=dict(mode.weights) if mode.weights is not None else None,
                               rerank=state.reranker if rerank else None, candidates=body.candidates)

        hits = await run_in_threadpool(state.run_store, run)
        out = []
        for h in hits:
            d = h.to_dict() if hasattr(h, "to_dict") else dict(h)
            src = str(d.get("source") or "")
            d["label"] = source_label(src, d.get("metadata"))  # what the page shows: as `obembed search` does
            if src and is_image_path(src):
                d["thumbnail"] = "/thumbnail?" + urlencode({"collection": body.collection, "id": d.get("id")})
            out.append(d)
        return json_response({"collection": body.collection, "query": body.query, "k": body.k,
                              "model": m.name if m else None, "mode": mode.name,
                              "reranker": getattr(state.reranker, "spec", None) if rerank else None, "hits": out})

    @r.get("/thumbnail", dependencies=guarded, responses={400: {}, 404: {}})
    async def thumbnail(collection: str, id: str, size: int = 256) -> Response:
        """A JPEG thumbnail of an image row: only a file recorded as that row's source is ever read. Made with
        bounded memory and cached (:mod:`obembed.server.thumbnails`); ``size`` snaps up to 64/128/256/512/1024."""
        size = max(16, min(size, 1024))
        coll = await run_in_threadpool(state.open_collection, collection)
        rows = await run_in_threadpool(state.run_store, lambda s: coll.get([id]))
        src = str(rows[0].get("source") or "") if rows else ""
        path = Path(src)
        if not src or not is_image_path(src) or not path.is_file():
            raise HTTPRefusal(404, f"row {id!r} of {collection!r} has no readable image source", "not_found", "id")

        try:
            data = await state.thumbnails.get(path, size)
        except InvalidInputError as exc:  # a truncated/corrupt/unsupported file is a missing thumbnail, not a 500
            log.info("thumbnail of %s/%s: %s", collection, id, redact(str(exc)))
            raise HTTPRefusal(404, f"row {id!r} of {collection!r}: the image cannot be read", "not_found",
                              "id") from None
        except OSError as exc:  # removed or unreadable since the check above
            raise HTTPRefusal(404, f"row {id!r} of {collection!r}: the image cannot be read ({exc.strerror})",
                              "not_found", "id") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=300"})

    return r
