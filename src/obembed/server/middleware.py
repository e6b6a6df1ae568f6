"""What runs around every route: the request-body limit (ASGI middleware) and the API-key check."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from .errors import HTTPRefusal
from .responses import error_response

__all__ = ["LOOPBACK_NAMES", "BodyLimitMiddleware", "HostCheckMiddleware", "api_key_guard", "host_allowed",
           "host_name"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
"""The names a request that arrives over loopback may carry in its ``Host`` header (plus ``--allowed-host``)."""


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.strip("[]").partition("%")[0]).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name part of a ``Host`` header, lower case, without the port (``[::1]:8000`` -> ``[::1]``)."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[:end + 1] if end > 0 else h
    return h.rpartition(":")[0] if h.count(":") == 1 else h


def host_allowed(header: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request that arrived over loopback may carry ``Host: header``: no header (not a browser), a name
    in :data:`LOOPBACK_NAMES` or ``allowed`` (``*`` allows any), or a loopback IP literal. A DNS-rebinding page
    always sends its own domain name, so it is refused."""
    if not header:
        return True
    allowed = {a.strip().lower() for a in allowed}
    if "*" in allowed:
        return True
    name = host_name(header)
    return name in LOOPBACK_NAMES or name.rstrip(".") == "localhost" or name in allowed or _is_loopback(name)


class HostCheckMiddleware:
    """Refuse (400) a request that arrived over loopback whose ``Host`` is not a name of this machine: the defence
    against DNS rebinding, where a web page on ``evil.example`` re-points its name at 127.0.0.1 and, now
    same-origin, reads the answers of a local server that has no API key. Requests over other interfaces are not
    checked (their exposure is what ``--api-key-env`` is for)."""

    def __init__(self, app: Any, allowed: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = tuple(allowed)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            server = scope.get("server")
            if server and isinstance(server[0], str) and _is_loopback(server[0]):
                raw = next((v for k, v in scope.get("headers", []) if k == b"host"), None)
                header = raw.decode("latin-1") if raw is not None else None
                if not host_allowed(header, self.allowed):
                    more = f", {', '.join(self.allowed)}" if self.allowed else ""
                    resp = error_response(
                        scope.get("path", ""), 400,
                        f"Host header {header!r:.100} is not a name of this server (it listens on loopback and "
                        f"answers to {', '.join(LOOPBACK_NAMES)}{more}); a page that re-points its domain at "
                        "127.0.0.1 is refused (DNS rebinding). Reaching it through another name (a proxy)? "
                        "Start it with --allowed-host NAME", "host_not_allowed", "Host")
                    await resp(scope, receive, send)
                    return
        await self.app(scope, receive, send)


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


def api_key_guard(key: bytes | None, also: Callable[[bytes], bool] | None = None) -> list[Any]:
    """The route dependencies that require ``Authorization: Bearer <key>`` (none when ``key`` and ``also`` are
    None); ``also(token)`` accepts other keys (the in-database registrations' access keys)."""
    if key is None and also is None:
        return []
    from fastapi import Depends
    from fastapi.security import HTTPBearer

    bearer = HTTPBearer(auto_error=False, description="obembed serve --api-key-env VAR")

    def auth(creds: Any = Depends(bearer)) -> None:  # noqa: B008 - HTTPAuthorizationCredentials | None
        given = creds.credentials.encode() if creds and creds.scheme.lower() == "bearer" else b""
        ok = bool(given) and ((key is not None and hmac.compare_digest(given, key))
                              or (also is not None and also(given)))
        if not ok:
            raise HTTPRefusal(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>' "
                                   "(the key the server's --api-key-env variable holds)", "invalid_api_key",
                              headers={"WWW-Authenticate": "Bearer"})

    return [Depends(auth)]
