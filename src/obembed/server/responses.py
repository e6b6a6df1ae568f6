"""Rendering answers: JSON bodies (numpy, datetimes, bytes included) and error bodies in OpenAI or Ollama form."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
from starlette.responses import Response

from ..errors import redact

__all__ = ["error_response", "json_response"]

_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
                 429: "rate_limit_error", 503: "server_error"}


def error_response(path: str, status: int, message: str, code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """An error answer: Ollama's ``{"error": "..."}`` under ``/api/``, OpenAI's ``{"error": {...}}`` elsewhere.

    The message is redacted (no key, token or DSN password ever leaves the server)."""
    message = redact(message)
    body: dict[str, Any]
    if path.startswith("/api/"):
        body = {"error": message}
    else:
        kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
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


def json_response(obj: Any, status: int = 200) -> Response:
    """A compact JSON answer."""
    return Response(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_jsonable),
                    status_code=status, media_type="application/json")
