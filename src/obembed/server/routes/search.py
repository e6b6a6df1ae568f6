"""Search routes: ``GET /collections``, ``POST /search``, ``GET /thumbnail`` (image hits)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.responses import Response

from ...errors import InvalidInputError, redact
from ...images import is_image_path
from ...store.base import source_label
from ..errors import HTTPRefusal
from ..responses import json_response
from ..schemas import SearchRequest
from ..state import ServerState

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["router"]

log = logging.getLogger("obembed.server.app")


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
        coll = await run_in_threadpool(state.open_collection, body.collection)
        query: Any = body.query
        m = state.served_for(getattr(coll, "metadata", {}) or {})
        if m is not None:  # embed through the batcher: same vectors, and it queues with everything else
            # (also for hybrid: else the store would load a second copy of the model, under the store lock)
            query = (await state.embed(m, [body.query], kind="query")).vectors[0]

        def run(_: Any) -> Any:
            if body.hybrid:
                return coll.hybrid_search(body.query, body.k, where=where, vector=None if m is None else query)
            return coll.search(query, body.k, where=where, exact=body.exact)

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
                              "model": m.name if m else None, "hits": out})

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
