"""How the server answers errors: one handler per kind, one status per obembed error.

* :class:`HTTPRefusal`: a refusal that only exists over HTTP (API key, unknown model name, no store, a bad
  ``dimensions``), with its own status and OpenAI error code.
* :class:`~obembed.server.batcher.ServerBusyError`: 503 with ``Retry-After``.
* every other :class:`~obembed.errors.ObembedError`: its ``http_status`` (:func:`status_of`); a setup error of
  the server itself (a credential or an optional package missing on the server) is a 5xx, never a 4xx: the
  client did nothing wrong.
* request validation: 400 naming the first fields; an unexpected exception: 500, logged with its traceback,
  answered without details.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from ..errors import HTTPRequestError, MissingCredentialError, MissingDependencyError, ObembedError, redact
from .batcher import ServerBusyError
from .responses import error_response

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["HTTPRefusal", "install_error_handlers", "status_of"]

log = logging.getLogger("obembed.server.app")

SERVER_SIDE_ERRORS: tuple[type[ObembedError], ...] = (MissingCredentialError, MissingDependencyError)
"""Errors that mean the server is not set up right (answered 5xx whatever their ``http_status`` says)."""


HTTPRefusal = HTTPRequestError
"""An HTTP-level refusal (defined in :mod:`obembed.errors` with the rest of the tree)."""


def status_of(exc: ObembedError) -> int:
    """The HTTP status of an obembed error raised while serving a request."""
    status = int(exc.http_status)
    if isinstance(exc, SERVER_SIDE_ERRORS) and status < 500:
        return 500
    return status


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(HTTPRefusal)
    async def _refusal(request: Request, exc: HTTPRefusal) -> Response:
        return error_response(request.url.path, exc.status, str(exc), exc.code, exc.param, exc.headers)

    @app.exception_handler(ServerBusyError)
    async def _busy(request: Request, exc: ServerBusyError) -> Response:
        return error_response(request.url.path, 503, str(exc), "server_busy",
                              headers={"Retry-After": str(int(exc.retry_after))})

    @app.exception_handler(ObembedError)
    async def _obembed_error(request: Request, exc: ObembedError) -> Response:
        status = status_of(exc)
        if status >= 500:
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__,
                      redact(str(exc)))
        return error_response(request.url.path, status, str(exc), type(exc).__name__)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        parts = []
        for e in errs[:3]:
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(msg if loc == "body" and e.get("type") == "value_error" else f"{loc}: {msg}")
        param = next((str(e["loc"][-1]) for e in errs if e.get("loc")), None)
        return error_response(request.url.path, 400, "invalid request: " + "; ".join(parts), "invalid_request",
                              param)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(request.url.path, exc.status_code, str(exc.detail), None,
                              headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("%s %s: unexpected %s: %s", request.method, request.url.path, type(exc).__name__,
                  redact(str(exc)), exc_info=exc)
        return error_response(request.url.path, 500, f"internal error ({type(exc).__name__}); see the server log",
                              "internal_error")
