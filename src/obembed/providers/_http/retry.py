"""The retry policy (only transient errors, backoff with jitter or the server's retry-after, bounded attempts
and time) and the request throttle of remote providers."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from ...errors import (
    AuthenticationError,
    BatchLimitError,
    ConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderServerError,
    ProviderStatusError,
    QuotaExceededError,
    RateLimitError,
)
from .client import TRANSIENT_STATUS

__all__ = ["FATAL", "RetryPolicy", "Throttle", "is_transient"]

log = logging.getLogger(__name__)

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------- retries
_NOT_TRANSIENT = (AuthenticationError, QuotaExceededError, ConfigError, BatchLimitError)
FATAL = (AuthenticationError, QuotaExceededError, ConfigError)
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
