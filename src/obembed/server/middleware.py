"""What runs around every route: the request-body limit (ASGI middleware) and the API-key check."""

from __future__ import annotations

import hmac
from typing import Any

from .errors import HTTPRefusal
from .responses import error_response

__all__ = ["BodyLimitMiddleware", "api_key_guard"]


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
        resp = error_response(path, status, message, "request_too_large" if status == 413 else "invalid_request")
        await resp(scope, receive, send)


def api_key_guard(key: bytes | None) -> list[Any]:
    """The route dependencies that require ``Authorization: Bearer <key>`` (none when ``key`` is None)."""
    if key is None:
        return []
    from fastapi import Depends
    from fastapi.security import HTTPBearer

    bearer = HTTPBearer(auto_error=False, description="obembed serve --api-key-env VAR")

    def auth(creds: Any = Depends(bearer)) -> None:  # noqa: B008 - HTTPAuthorizationCredentials | None
        given = creds.credentials.encode() if creds and creds.scheme.lower() == "bearer" else b""
        if not given or not hmac.compare_digest(given, key):
            raise HTTPRefusal(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>' "
                                   "(the key the server's --api-key-env variable holds)", "invalid_api_key",
                              headers={"WWW-Authenticate": "Bearer"})

    return [Depends(auth)]
