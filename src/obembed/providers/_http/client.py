"""The HTTP client of remote providers and the one place where an error reply becomes an obembed error
(status -> error class, retry-after parsing, redacted messages)."""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import httpx

from ...errors import (
    AuthenticationError,
    BatchLimitError,
    ConfigError,
    ProviderConnectionError,
    ProviderResponseError,
    ProviderServerError,
    ProviderStatusError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    redact,
)

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "TRANSIENT_STATUS", "build_client", "classify_status", "make_status_error",
           "parse_duration", "parse_retry_after", "request", "response_json", "status_error"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CONNECT_TIMEOUT = 10.0
TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_QUOTA_CODES = ("insufficient_quota", "arrearage", "billing_hard_limit_reached", "quota_exceeded")
_BATCH_LIMIT = re.compile(r"should not be larger than\s*(\d+)", re.I)
_TRY_AGAIN = re.compile(r"try again in\s*(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?)\b", re.I)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)?")


def build_client(
    *,
    timeout: float,
    connect_timeout: float | None = None,
    max_connections: int = 10,
    headers: Mapping[str, str] | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` with an explicit timeout (never "wait forever") and a pool for ``max_connections``."""
    if not timeout or timeout <= 0:
        raise ConfigError(f"timeout={timeout!r} must be a positive number of seconds")
    connect = min(connect_timeout or DEFAULT_CONNECT_TIMEOUT, timeout)
    n = max(1, int(max_connections))
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=connect),
        limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
        headers=dict(headers or {}),
        follow_redirects=False,
    )


# ---------------------------------------------------------------------------------------------- retry-after
def parse_duration(text: str) -> float | None:
    """``"2.8"``, ``"2.8s"``, ``"20ms"``, ``"6m0s"``, ``"1h2m3.5s"`` → seconds; ``None`` if not a duration."""
    text = text.strip().lower()
    if not text:
        return None
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos or not m.group(0):
            return None
        value, unit = float(m.group(1)), m.group(2) or "s"
        total += value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
        pos = m.end()
    return total if pos == len(text) else None


def _retry_after_value(value: str, now: float | None = None) -> float | None:
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_retry_after(headers: Mapping[str, str] | None, message: str = "") -> float | None:
    """Seconds the server asks us to wait, from headers or the error message; ``None`` when it doesn't say.

    Order: ``retry-after-ms``, ``retry-after`` (seconds or an HTTP date), ``x-ratelimit-reset-requests`` /
    ``-tokens`` (the one whose ``x-ratelimit-remaining-*`` is 0, else the sooner), then "try again in 2.8s".
    """
    h = {k.lower(): str(v) for k, v in (headers or {}).items()}
    if "retry-after-ms" in h:
        try:
            return max(0.0, float(h["retry-after-ms"]) / 1000.0)
        except ValueError:
            pass
    if "retry-after" in h:
        value = _retry_after_value(h["retry-after"])
        if value is not None:
            return value
    resets: dict[str, float] = {}
    for which in ("requests", "tokens"):
        raw = h.get(f"x-ratelimit-reset-{which}")
        d = parse_duration(raw) if raw else None
        if d is not None:
            resets[which] = d
    if "x-ratelimit-reset" in h and not resets:
        d = parse_duration(h["x-ratelimit-reset"])
        if d is not None:
            resets["any"] = d
    if resets:
        exhausted = [resets[w] for w in resets if h.get(f"x-ratelimit-remaining-{w}", "").strip() == "0"]
        return max(exhausted) if exhausted else min(resets.values())
    m = _TRY_AGAIN.search(message or "")
    if m:
        value = float(m.group(1))
        return value / 1000.0 if m.group(2).lower().startswith("m") else value
    return None


# ---------------------------------------------------------------------------------------------- status → error
def _error_fields(body: Any) -> tuple[str, str, str]:
    """(message, code, type) from the error shapes of OpenAI, Ollama and DashScope."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # OpenAI / compatible mode
            return (str(err.get("message") or ""), str(err.get("code") or ""), str(err.get("type") or ""))
        if isinstance(err, str):  # Ollama
            return err, "", ""
        if "code" in body or "message" in body:  # DashScope native
            return str(body.get("message") or ""), str(body.get("code") or ""), ""
    if isinstance(body, str):
        return body.strip()[:500], "", ""
    return "", "", ""


def classify_status(status: int, code: str = "", message: str = "") -> type[ProviderStatusError]:
    """Which error class an error reply maps to (like openai-python's ``_make_status_error``)."""
    low_code = code.lower()
    if status in (401, 403) or low_code in ("invalidapikey", "invalid_api_key"):
        return AuthenticationError
    if any(q in low_code for q in _QUOTA_CODES) or "insufficient_quota" in message.lower():
        return QuotaExceededError
    if status == 429 or low_code.startswith("throttling"):
        return RateLimitError
    if status == 400 and _BATCH_LIMIT.search(message):
        return BatchLimitError
    if status >= 500:
        return ProviderServerError
    return ProviderStatusError


_HINTS: dict[type[ProviderStatusError], str] = {
    AuthenticationError: "the API key was refused: check the key in {key_env}",
    QuotaExceededError: "the account is out of quota or credit: top it up or use another key (not retried)",
    RateLimitError: "rate limited: retried with backoff; lower concurrency= if it persists",
    ProviderServerError: "the provider failed on its side (retried)",
}


def make_status_error(
    status: int,
    *,
    provider: str,
    message: str = "",
    code: str = "",
    request_id: str | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
    key_env: str | None = None,
) -> ProviderStatusError:
    """Build the error for an error reply; the message says what and how to fix it, with secrets removed."""
    secrets = tuple(s for s in secrets if s)
    cls = classify_status(status, code, message)
    # "(code)" rather than "code:": a code such as invalid_api_key followed by ":" would read as key=value to redact()
    detail = f"HTTP {status}" + (f" ({code})" if code else "") + (f": {message}" if message else "")
    hint = _HINTS.get(cls, "").format(key_env=key_env or "the provider's API key variable")
    text = f"{provider}: {detail}" + (f" ({hint})" if hint else "") + (f" [request id {request_id}]" if request_id
                                                                        else "")
    text = redact(text, *secrets)
    if isinstance(body, str):
        body = redact(body, *secrets)
    elif body is not None:
        try:
            body = json.loads(redact(json.dumps(body, ensure_ascii=False), *secrets))
        except (TypeError, ValueError):
            body = None
    kwargs: dict[str, Any] = {"status_code": status, "request_id": request_id, "body": body,
                              "retry_after": parse_retry_after(headers, message)}
    if cls is BatchLimitError:
        m = _BATCH_LIMIT.search(message)
        return BatchLimitError(text, provider, limit=int(m.group(1)) if m else 0, **kwargs)
    return cls(text, provider, **kwargs)


def status_error(
    response: httpx.Response,
    provider: str,
    *,
    secrets: Iterable[str | None] = (),
    key_env: str | None = None,
) -> ProviderStatusError:
    """The obembed error for an ``httpx.Response`` with an error status."""
    try:
        text = response.text
    except (UnicodeDecodeError, httpx.HTTPError):
        text = ""
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = text
    message, code, type_ = _error_fields(body)
    if not code and type_ and type_ != "invalid_request_error":
        code = type_
    request_id = (response.headers.get("x-request-id") or response.headers.get("x-dashscope-request-id")
                  or (body.get("request_id") if isinstance(body, dict) else None))
    return make_status_error(response.status_code, provider=provider, message=message, code=code,
                             request_id=request_id, body=body, headers=response.headers, secrets=secrets,
                             key_env=key_env)


def request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    provider: str,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
    key_env: str | None = None,
) -> httpx.Response:
    """One HTTP call with transport errors translated; error statuses are *returned* for the caller to map."""
    try:
        return client.request(method, url, json=json_body, headers=headers)
    except httpx.TimeoutException as exc:
        limit = client.timeout.read if client.timeout.read is not None else client.timeout.connect
        raise ProviderTimeoutError(
            redact(f"{provider}: no answer from {url} within the timeout ({limit}s, {type(exc).__name__}); "
                   "the server is slow or overloaded: raise timeout= or lower concurrency=", *secrets), provider
        ) from exc
    except httpx.TransportError as exc:
        raise ProviderConnectionError(
            redact(f"{provider}: cannot reach {url}: {exc or type(exc).__name__}; check the URL and that the "
                   "server is running", *secrets), provider
        ) from exc


def response_json(response: httpx.Response, provider: str) -> Any:
    """The JSON body of a 2xx reply, or :class:`ProviderResponseError` naming what came back."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        snippet = response.text[:120].replace("\n", " ") if response.content else "(empty body)"
        raise ProviderResponseError(
            f"{provider}: the reply from {response.request.url.path} is not valid JSON "
            f"({len(response.content)} bytes: {snippet!r}...)", provider
        ) from exc
