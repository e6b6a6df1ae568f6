"""What every remote provider shares: HTTP client, error mapping, retries, request shaping.

* :func:`build_client` — an ``httpx.Client`` with explicit timeouts and a pool sized for the concurrency;
* :func:`status_error` / :func:`classify_status` — one place where an error reply becomes an obembed error
  (401/403 → :class:`AuthenticationError`, 429 → :class:`RateLimitError` or, for ``insufficient_quota``,
  :class:`QuotaExceededError`, 5xx → :class:`ProviderServerError`, DashScope's "batch size ... should not be
  larger than N" → :class:`BatchLimitError`); every message goes through :func:`obembed.errors.redact`;
* :func:`parse_retry_after` — ``retry-after-ms``, ``retry-after`` (seconds or HTTP date),
  ``x-ratelimit-reset-requests/-tokens`` (``1s``, ``6m0s``, ``20ms``) and "Please try again in 2.8s";
* :class:`RetryPolicy` — tenacity: only transient errors, exponential backoff with jitter (or the server's
  retry-after), bounded attempts *and* total time;
* :class:`RemoteProvider` — splits work by max items and max tokens per request, runs up to ``concurrency``
  requests at once in a thread pool, keeps input order, adapts to a smaller batch limit the server reports, and
  turns a failed sub-batch into :class:`~obembed.errors.PartialBatchError` that keeps what succeeded.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, TypeVar

import httpx
import numpy as np
import tenacity

from ..errors import (
    AuthenticationError,
    BatchLimitError,
    ConfigError,
    InvalidInputError,
    PartialBatchError,
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    ProviderServerError,
    ProviderStatusError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    redact,
)
from ..types import EmbedResult, Kind, Vectors
from .base import Provider, estimate_tokens

__all__ = [
    "BatchLimitError",
    "RemoteProvider",
    "RetryPolicy",
    "Throttle",
    "build_client",
    "classify_status",
    "cut_to_tokens",
    "is_transient",
    "parse_duration",
    "parse_retry_after",
    "request",
    "status_error",
]

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


# ---------------------------------------------------------------------------------------------- retries
_NOT_TRANSIENT = (AuthenticationError, QuotaExceededError, ConfigError, BatchLimitError)
_FATAL = (AuthenticationError, QuotaExceededError, ConfigError)
"""Failures every request would share: the remaining requests are not sent."""


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: connection errors, timeouts, 408/409/425/429/5xx, throttling. Never 400/401/403/404/quota."""
    if isinstance(exc, _NOT_TRANSIENT):
        return False
    if isinstance(exc, RateLimitError | ProviderServerError | ProviderConnectionError):
        return True
    return isinstance(exc, ProviderStatusError) and exc.status_code in TRANSIENT_STATUS


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of transient errors (tenacity): backoff ``initial * 2**n`` (≤ ``max_wait``) + jitter,
    or the server's retry-after; at most ``max_attempts`` calls and ``max_time`` seconds in all."""

    max_attempts: int = 6
    max_time: float = 120.0
    initial: float = 0.5
    max_wait: float = 20.0
    jitter: float = 0.5
    max_retry_after: float = 120.0
    """A server asking for a longer wait than this is not retried (the run would stall)."""

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = getattr(exc, "retry_after", None)
        if asked is not None:
            # the server's figure, plus a little jitter so concurrent workers don't return in lockstep
            return float(min(asked, self.max_retry_after)) * (1.0 + random.random() * 0.1)
        n = max(0, state.attempt_number - 1)
        return min(self.max_wait, self.initial * (2.0**n)) + random.uniform(0, self.jitter)

    def _should_retry(self, exc: BaseException) -> bool:
        asked = getattr(exc, "retry_after", None)
        return is_transient(exc) and not (asked is not None and asked > self.max_retry_after)

    def call(self, fn: Callable[[], T], *, what: str = "request") -> T:
        """Run ``fn`` with retries; the last error is re-raised, its message saying how many attempts were made."""
        if self.max_attempts <= 1:
            return fn()

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            # throttling is expected in a big run (INFO); a server error or a timeout is worth a WARNING
            level = logging.INFO if isinstance(exc, RateLimitError) else logging.WARNING
            log.log(level, "%s failed (attempt %d of %d): %s; retrying in %.2fs", what, state.attempt_number,
                    self.max_attempts, exc, wait)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts) | tenacity.stop_before_delay(self.max_time),
            wait=self._wait,
            retry=tenacity.retry_if_exception(self._should_retry),
            before_sleep=before_sleep,
            reraise=True,
        )
        attempts = 0

        def counted() -> T:
            nonlocal attempts
            attempts += 1
            return fn()

        try:
            return retrying(counted)
        except ProviderError as exc:
            if attempts > 1 and exc.args and isinstance(exc.args[0], str):
                exc.args = (f"{exc.args[0]} (gave up after {attempts} attempts)", *exc.args[1:])
            raise


# ---------------------------------------------------------------------------------------------- text cutting
def cut_to_tokens(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose conservative token estimate is within ``limit``."""
    if estimate_tokens(text) <= limit:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_tokens(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def _ranges_text(indexes: Sequence[int]) -> str:
    """[0,1,2,5,7,8] → "0-2, 5, 7-8"."""
    out: list[str] = []
    it = sorted(indexes)
    i = 0
    while i < len(it):
        j = i
        while j + 1 < len(it) and it[j + 1] == it[j] + 1:
            j += 1
        out.append(str(it[i]) if i == j else f"{it[i]}-{it[j]}")
        i = j + 1
    return ", ".join(out[:20]) + (", ..." if len(out) > 20 else "")


class Throttle:
    """How many requests may be in flight: AIMD, as TCP does it. A 429 halves the limit (not below 1) once per
    congestion event (429s of requests sent before the cut don't cut again); ``limit`` successes in a row raise it
    by one, up to ``maximum``. Shared by every thread of one provider."""

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, int(maximum))
        self.limit = self.maximum
        self.in_flight = 0
        self.throttled = 0
        """How many 429s were seen."""
        self._ok = 0
        self._epoch = 0
        self._cond = threading.Condition()

    def acquire(self) -> int:
        """Wait for a free slot; returns a token for :meth:`release`."""
        with self._cond:
            while self.in_flight >= self.limit:
                self._cond.wait()
            self.in_flight += 1
            return self._epoch

    def release(self, token: int, exc: BaseException | None) -> None:
        with self._cond:
            self.in_flight -= 1
            if isinstance(exc, RateLimitError):
                self.throttled += 1
                if token == self._epoch and self.limit > 1:
                    self.limit = max(1, self.limit // 2)
                    self._epoch += 1
                    log.info("rate limited: at most %d requests in flight now", self.limit)
                self._ok = 0
            elif exc is None and self.limit < self.maximum:
                self._ok += 1
                if self._ok >= self.limit:
                    self.limit += 1
                    self._ok = 0
            self._cond.notify_all()


class _Skipped(Exception):
    """A sub-batch not sent because an earlier one failed in a way every request would (bad key, no quota)."""


_EXPECTED = (ProviderError, ConfigError, InvalidInputError, _Skipped)
"""Errors a sub-batch may end with; anything else is a bug and propagates as is."""


# ---------------------------------------------------------------------------------------------- provider base
class RemoteProvider(Provider):
    """Base of the HTTP/SDK providers: request shaping, concurrency, retries, partial results.

    Subclasses implement :meth:`embed_batch` for one request and set the ``default_*`` class attributes.
    """

    runtime = "http"
    default_concurrency: ClassVar[int] = 4
    default_max_batch_items: ClassVar[int | None] = None
    default_max_batch_tokens: ClassVar[int | None] = None
    default_max_input_tokens: ClassVar[int | None] = None
    client_side_truncation: ClassVar[bool] = True
    """Cut over-long inputs before sending (the server would refuse them); False where the server truncates."""

    def __init__(
        self,
        model: str,
        *,
        concurrency: int | None = None,
        batch_size: int | None = None,
        max_batch_items: int | None = None,
        max_batch_tokens: int | None = None,
        max_input_tokens: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_max_time: float | None = None,
        retry_initial: float | None = None,
        retry_max_wait: float | None = None,
        retry_jitter: float | None = None,
        http_client: httpx.Client | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - {"truncate", "settings"})
        if unknown:  # a typo such as dimension= for dimensions= must not be ignored silently
            raise ConfigError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for {self.name}:{model}; "
                f"known: {', '.join(self.known_options())}"
            )
        super().__init__(model, batch_size=batch_size, **kwargs)
        for name, value in (("concurrency", concurrency), ("batch_size", batch_size),
                            ("max_batch_items", max_batch_items), ("max_batch_tokens", max_batch_tokens),
                            ("max_input_tokens", max_input_tokens)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        self.concurrency = int(concurrency or self.default_concurrency)  # also sets self.throttle
        limits = [x for x in (max_batch_items or self.default_max_batch_items, batch_size) if x]
        self.max_batch_items = min(limits) if limits else None
        self.max_batch_tokens = max_batch_tokens or self.default_max_batch_tokens
        self.max_input_tokens = max_input_tokens or self.default_max_input_tokens
        self.timeout = float(timeout if timeout is not None else self.settings.timeout)
        if self.timeout <= 0:
            raise ConfigError(f"timeout={timeout!r} must be a positive number of seconds")
        retries = self.settings.max_retries if max_retries is None else int(max_retries)
        defaults = RetryPolicy()
        self.retry = RetryPolicy(
            max_attempts=max(1, retries + 1),
            max_time=float(retry_max_time if retry_max_time is not None else max(defaults.max_time, self.timeout)),
            initial=float(retry_initial if retry_initial is not None else defaults.initial),
            max_wait=float(retry_max_wait if retry_max_wait is not None else defaults.max_wait),
            jitter=float(retry_jitter if retry_jitter is not None else defaults.jitter),
        )
        self._http_client = http_client
        self._lock = threading.Lock()

    @property
    def concurrency(self) -> int:
        """Most requests in flight at once; a 429 lowers the live limit (``throttle.limit``) for a while."""
        return self._concurrency

    @concurrency.setter
    def concurrency(self, n: int) -> None:
        self._concurrency = max(1, int(n))
        self.throttle = Throttle(self._concurrency)

    @classmethod
    def known_options(cls) -> list[str]:
        """Every keyword option this backend takes (from the ``__init__`` signatures of its classes)."""
        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("settings", "http_client"):
                    names.add(p.name)
        return sorted(names)

    # ------------------------------------------------------------------ plumbing
    @cached_property
    def client(self) -> httpx.Client:
        """The ``httpx.Client`` (given, or built on first use with explicit timeouts)."""
        if self._http_client is not None:
            return self._http_client
        return build_client(timeout=self.timeout, max_connections=max(self.concurrency, 4))

    def close(self) -> None:
        """Close the HTTP client this provider built (not one that was passed in)."""
        if self._http_client is None and "client" in self.__dict__:
            self.__dict__.pop("client").close()

    def secrets(self) -> tuple[str, ...]:
        """Values to scrub from every message (API keys)."""
        return ()

    @staticmethod
    def real_secrets(*values: str | None) -> tuple[str, ...]:
        """The values worth scrubbing: a 1-5 character "key" is no credential, and replacing every "k" in a
        message would garble it."""
        return tuple(v for v in values if v and len(v) >= 6)

    def env_secret(self, env: str | None) -> str | None:
        return os.environ.get(env) if env else None

    # ------------------------------------------------------------------ shaping
    def prepare_texts(self, texts: Sequence[str], counts: Sequence[int], kind: Kind) -> tuple[list[str], list[int]]:
        """Cut inputs over ``max_input_tokens`` (policy 'truncate') so the server does not refuse them."""
        limit = self.max_input_tokens
        if not (limit and self.client_side_truncation):
            return list(texts), list(counts)
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        out_t, out_c = list(texts), list(counts)
        for i, c in enumerate(counts):
            if c > limit:
                out_t[i] = cut_to_tokens(texts[i], max(1, limit - estimate_tokens(prefix) + 2))
                out_c[i] = min(c, limit)
        return out_t, out_c

    def _one_request(self, batch: Sequence[str], kind: Kind, call: Callable[[Sequence[str], Kind], T]) -> T:
        def attempt() -> T:
            token = self.throttle.acquire()  # a slot per attempt: a worker waiting out a backoff holds none
            error: BaseException | None = None
            try:
                return call(batch, kind)
            except BaseException as exc:
                error = exc
                raise
            finally:
                self.throttle.release(token, error)

        return self.retry.call(attempt, what=f"{self.spec} request of {len(batch)} inputs")

    def _run_range(self, texts: Sequence[str], a: int, b: int, kind: Kind,
                   call: Callable[[Sequence[str], Kind], list[Any]]) -> list[Any]:
        """Embed texts[a:b] (one request, or several if the server's limit turned out smaller)."""
        limit = self.max_batch_items
        if limit and b - a > limit:
            out: list[Any] = []
            for s in range(a, b, limit):
                out.extend(self._run_range(texts, s, min(s + limit, b), kind, call))
            return out
        try:
            rows = list(self._one_request(texts[a:b], kind, call))
        except BatchLimitError as exc:
            if not 0 < exc.limit < b - a:
                raise
            with self._lock:
                if not self.max_batch_items or self.max_batch_items > exc.limit:
                    log.warning("%s: the server takes at most %d inputs per request (sent %d); using %d from now on",
                                self.spec, exc.limit, b - a, exc.limit)
                    self.max_batch_items = exc.limit
            return self._run_range(texts, a, b, kind, call)
        if len(rows) != b - a:
            raise ProviderResponseError(f"{self.spec} returned {len(rows)} results for {b - a} inputs", self.name)
        return rows

    def run_batches(
        self,
        texts: Sequence[str],
        counts: Sequence[int],
        kind: Kind,
        call: Callable[[Sequence[str], Kind], list[Any]],
    ) -> tuple[list[Any], dict[int, BaseException]]:
        """Run ``call`` over request-sized slices, ``concurrency`` at a time, in input order.

        Returns one result per text (``None`` where it failed) and ``{text index: error}`` for the failures.
        A failure every request would share (bad key, no quota, unknown model) stops the remaining slices.
        """
        ranges = list(self.iter_batches(texts, counts))
        results: list[Any] = [None] * len(texts)
        failures: dict[int, BaseException] = {}
        stop = threading.Event()

        def work(a: int, b: int) -> list[Any]:
            if stop.is_set():
                raise _Skipped()
            try:
                return self._run_range(texts, a, b, kind, call)
            except _FATAL:
                stop.set()
                raise

        if self.concurrency <= 1 or len(ranges) <= 1:
            outcomes: list[Any] = []
            for a, b in ranges:
                try:
                    outcomes.append(work(a, b))
                except _EXPECTED as exc:
                    outcomes.append(exc)
        else:
            _ = self.client if self._uses_http_client() else None  # build the client once, before the threads
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(ranges)),
                                    thread_name_prefix=f"obembed-{self.name}") as pool:
                futures = [pool.submit(work, a, b) for a, b in ranges]
                outcomes = []
                try:
                    for f in futures:
                        error = f.exception()
                        outcomes.append(error if error is not None else f.result())
                except BaseException:  # Ctrl-C: don't send what is still queued
                    stop.set()
                    raise
        first_fatal: BaseException | None = None
        for (a, b), outcome in zip(ranges, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, _EXPECTED):
                    raise outcome
                if isinstance(outcome, _FATAL) and first_fatal is None:
                    first_fatal = outcome
                for i in range(a, b):
                    failures[i] = outcome
            else:
                results[a:b] = outcome
        if first_fatal is not None:
            for i, e in list(failures.items()):
                if isinstance(e, _Skipped):
                    failures[i] = first_fatal
        return results, failures

    def _uses_http_client(self) -> bool:
        return True

    def _raise_failures(self, n: int, failures: dict[int, BaseException], result: EmbedResult) -> None:
        """Nothing succeeded → the first error itself; some did → :class:`PartialBatchError` keeping them."""
        first = failures[min(failures)]
        if len(failures) == n:
            raise first
        reasons = {i: str(e) for i, e in failures.items()}
        result.failed = reasons
        kinds = sorted({type(e).__name__ for e in failures.values()})
        raise PartialBatchError(
            f"{self.spec}: {len(failures)} of {n} inputs failed after retries (items {_ranges_text(list(failures))}; "
            f"{', '.join(kinds)}; first: {first}). The other {n - len(failures)} vectors are kept in .result "
            "(failed rows are NaN, .failed maps item index to its error): re-embed only the failed items",
            self.name, failures, result,
        )

    def embed_many(self, texts: Sequence[str], *, kind: Kind, token_counts: Sequence[int]) -> Vectors:
        """Split by items and tokens, send ``concurrency`` requests at once, keep order, keep partial results."""
        texts2, counts2 = self.prepare_texts(texts, token_counts, kind)
        rows, failures = self.run_batches(texts2, counts2, kind, self.request_fn())
        if not failures:
            return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
        good = [r for r in rows if r is not None]
        dim = len(good[0]) if good else (self._dimension or 0)
        arr = np.full((len(texts), dim), np.nan, dtype=np.float32)
        for i, r in enumerate(rows):
            if r is not None:
                arr[i] = r
        self._raise_failures(len(texts), failures, self.partial_result(arr, token_counts))
        raise AssertionError("unreachable")  # pragma: no cover

    def partial_result(self, vectors: Vectors, token_counts: Sequence[int], **extra: Any) -> EmbedResult:
        """What :class:`PartialBatchError` carries: the vectors plus the same accounting :meth:`embed` gives."""
        limit = self.max_input_tokens
        truncated = [i for i, c in enumerate(token_counts) if limit and c > limit]
        n_tokens = sum(min(c, limit) if limit else c for c in token_counts)
        return EmbedResult(vectors, truncated=truncated, n_tokens=n_tokens, extra=dict(extra))

    def _rows(self, batch: Sequence[str], kind: Kind) -> list[Any]:
        return list(self.embed_batch(batch, kind=kind))

    def request_fn(self) -> Callable[[Sequence[str], Kind], list[Any]]:
        """The one-request function :meth:`embed_many` runs on its worker threads; called on the caller's
        thread, so a backend can bind per-call settings (e.g. ollama's per-call ``truncate``) here."""
        return self._rows

    def embed_lenient(self, items: Iterable[Any], *, kind: Kind = "document") -> EmbedResult:
        """Like :meth:`embed` but a partial failure returns what succeeded (``.failed`` names the rest)."""
        try:
            return self.embed(items, kind=kind)
        except PartialBatchError as exc:
            result: EmbedResult = exc.result
            return result

    # ------------------------------------------------------------------ vectors
    def check_rows(self, rows: Sequence[Any], n: int, expected_dim: int | None, *, where: str) -> np.ndarray:
        """Rows → ``(n, d)`` float32, checking count, equal lengths, expected dimension and finiteness."""
        if len(rows) != n:
            raise ProviderResponseError(
                f"{self.spec}: {where} returned {len(rows)} vectors for {n} inputs", self.name)
        lengths = {len(r) for r in rows}
        if 0 in lengths:
            raise ProviderResponseError(f"{self.spec}: {where} returned an empty vector", self.name)
        if len(lengths) > 1:
            raise ProviderResponseError(
                f"{self.spec}: {where} returned vectors of different lengths {sorted(lengths)}", self.name)
        arr = np.asarray(rows, dtype=np.float32).reshape(n, -1)
        if expected_dim is not None and arr.shape[1] != expected_dim:
            raise ProviderResponseError(
                f"{self.spec}: {where} returned {arr.shape[1]}-d vectors, expected {expected_dim}", self.name)
        if not np.isfinite(arr).all():
            raise ProviderResponseError(f"{self.spec}: {where} returned NaN/inf values", self.name)
        return arr

