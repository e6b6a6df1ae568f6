"""What every remote provider shares: HTTP client and error mapping (:mod:`.client`), retries and throttle
(:mod:`.retry`), request shaping and fan-out (:mod:`.remote`).

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

from ...errors import BatchLimitError
from .client import (
    DEFAULT_CONNECT_TIMEOUT,
    TRANSIENT_STATUS,
    build_client,
    classify_status,
    make_status_error,
    parse_duration,
    parse_retry_after,
    request,
    response_json,
    status_error,
)
from .remote import RemoteProvider, cut_to_tokens
from .retry import RetryPolicy, Throttle, is_transient

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "TRANSIENT_STATUS",
    "BatchLimitError",
    "RemoteProvider",
    "RetryPolicy",
    "Throttle",
    "build_client",
    "classify_status",
    "cut_to_tokens",
    "is_transient",
    "make_status_error",
    "parse_duration",
    "parse_retry_after",
    "request",
    "response_json",
    "status_error",
]
