"""The web page (``GET /``, a static file that calls ``/search``) and ``GET /health``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.responses import Response

from ..responses import json_response
from ..state import ServerState

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"


def router(state: ServerState) -> APIRouter:
    from fastapi import APIRouter
    from starlette.responses import FileResponse

    import obembed

    r = APIRouter()

    @r.get("/health", tags=["server"])
    async def health() -> Response:
        """Liveness, the served models and their queue depth (no secrets)."""
        return json_response({"status": "ok", "version": obembed.__version__, "models": [
            {"name": m.name, "spec": m.provider.spec, "dimension": m.provider.dimension,
             "runtime": m.provider.runtime, "pending": m.batcher.pending,
             "max_queue": m.batcher.max_queue, **m.batcher.stats}
            for m in state.models]})

    @r.get("/", include_in_schema=False)
    async def index() -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return r
