"""providers/_http: retry-after parsing, status mapping, retry bounds, request shaping helpers."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from obembed.errors import (
    AuthenticationError,
    ProviderConnectionError,
    ProviderServerError,
    ProviderStatusError,
    QuotaExceededError,
    RateLimitError,
)
from obembed.providers._http import (
    BatchLimitError,
    RetryPolicy,
    Throttle,
    build_client,
    classify_status,
    cut_to_tokens,
    is_transient,
    parse_duration,
    parse_retry_after,
    status_error,
)
from obembed.providers.base import estimate_tokens


@pytest.mark.parametrize(("text", "seconds"), [
    ("2.8", 2.8), ("2.8s", 2.8), ("20ms", 0.02), ("6m0s", 360.0), ("1h2m3.5s", 3723.5), ("0s", 0.0),
    ("soon", None), ("", None), ("5x", None),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_sources_in_order():
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == pytest.approx(0.25)
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after({"retry-after": date}) <= 31
    # OpenAI's reset headers: the exhausted budget decides
    h = {"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s",
         "x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "1000"}
    assert parse_retry_after(h) == 1.0
    h["x-ratelimit-remaining-tokens"] = "0"
    assert parse_retry_after(h) == 360.0
    assert parse_retry_after({"x-ratelimit-reset-requests": "120ms"}) == pytest.approx(0.12)
    assert parse_retry_after({}, "Rate limit reached. Please try again in 2.8s. Visit ...") == pytest.approx(2.8)
    assert parse_retry_after({}, "Please try again in 450ms.") == pytest.approx(0.45)
    assert parse_retry_after({}, "no hint here") is None


@pytest.mark.parametrize(("status", "code", "message", "cls"), [
    (401, "invalid_api_key", "", AuthenticationError),
    (403, "", "forbidden", AuthenticationError),
    (429, "rate_limit_exceeded", "", RateLimitError),
    (429, "insufficient_quota", "", QuotaExceededError),
    (400, "Arrearage", "Access denied, please make sure your account is in good standing.", QuotaExceededError),
    (429, "Throttling.AllocationQuota", "", RateLimitError),
    (400, "InvalidParameter", "batch size is invalid, it should not be larger than 10.: input.contents",
     BatchLimitError),
    (500, "", "", ProviderServerError), (503, "", "server busy", ProviderServerError),
    (400, "", "bad", ProviderStatusError), (404, "model_not_found", "", ProviderStatusError),
])
def test_classify_status(status, code, message, cls):
    assert classify_status(status, code, message) is cls


def test_status_error_from_a_real_response():
    req = httpx.Request("POST", "http://x/v1/embeddings")
    resp = httpx.Response(429, request=req, headers={"retry-after": "2", "x-request-id": "req-9"},
                          json={"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}})
    err = status_error(resp, "openai:m")
    assert type(err) is RateLimitError
    assert (err.status_code, err.request_id, err.retry_after) == (429, "req-9", 2.0)
    assert "HTTP 429 (rate_limit_exceeded): slow down" in str(err)
    assert err.body["error"]["message"] == "slow down"
    resp = httpx.Response(502, request=req, text="<html>bad gateway</html>")
    err = status_error(resp, "openai:m")
    assert type(err) is ProviderServerError
    assert "bad gateway" in str(err)
    resp = httpx.Response(400, request=req, json={"code": "InvalidParameter", "request_id": "abc", "message":
                          "<400> InternalError.Algo.InvalidParameter: Value error, batch size is invalid, it should "
                          "not be larger than 10.: input.contents"})
    err = status_error(resp, "dashscope-sdk:m")
    assert isinstance(err, BatchLimitError)
    assert err.limit == 10
    assert err.request_id == "abc"


def test_transient_or_not():
    assert is_transient(RateLimitError("x", status_code=429))
    assert is_transient(ProviderServerError("x", status_code=500))
    assert is_transient(ProviderConnectionError("x"))
    assert is_transient(ProviderStatusError("x", status_code=409))
    assert is_transient(ProviderStatusError("x", status_code=408))
    for exc in (QuotaExceededError("x", status_code=429), AuthenticationError("x", status_code=401),
                ProviderStatusError("x", status_code=400), ProviderStatusError("x", status_code=404),
                BatchLimitError("x", limit=10, status_code=400)):
        assert not is_transient(exc)


def _failing(errors):
    calls = []

    def fn():
        calls.append(time.monotonic())
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    return fn, calls


def test_retry_policy_bounds_attempts():
    policy = RetryPolicy(max_attempts=3, initial=0.001, jitter=0.0, max_wait=0.01)
    fn, calls = _failing([ProviderServerError("boom", status_code=500)] * 5)
    with pytest.raises(ProviderServerError, match="gave up after 3 attempts"):
        policy.call(fn)
    assert len(calls) == 3
    fn, calls = _failing([ProviderServerError("boom", status_code=500)] * 2)
    assert policy.call(fn) == "ok"


def test_retry_policy_bounds_total_time():
    policy = RetryPolicy(max_attempts=100, max_time=0.2, initial=0.05, jitter=0.0, max_wait=0.05)
    fn, calls = _failing([ProviderServerError("boom", status_code=500)] * 100)
    t0 = time.monotonic()
    with pytest.raises(ProviderServerError):
        policy.call(fn)
    assert time.monotonic() - t0 < 0.5
    assert 2 <= len(calls) < 10


def test_retry_honours_retry_after_and_gives_up_when_too_long():
    policy = RetryPolicy(max_attempts=3, initial=5.0, jitter=0.0, max_retry_after=1.0)
    fn, calls = _failing([RateLimitError("slow", status_code=429, retry_after=0.05)])
    assert policy.call(fn) == "ok"
    assert 0.05 <= calls[1] - calls[0] < 1.0  # the server's 50 ms, not the 5 s backoff
    fn, calls = _failing([RateLimitError("slow", status_code=429, retry_after=600)])
    with pytest.raises(RateLimitError):
        policy.call(fn)
    assert len(calls) == 1  # a 10-minute wait is not worth stalling for


def test_non_transient_is_not_retried():
    policy = RetryPolicy(max_attempts=5, initial=0.001)
    fn, calls = _failing([AuthenticationError("no", status_code=401)])
    with pytest.raises(AuthenticationError):
        policy.call(fn)
    assert len(calls) == 1


def test_build_client_has_explicit_timeouts():
    with build_client(timeout=7.0, max_connections=3) as c:
        assert (c.timeout.read, c.timeout.connect) == (7.0, 7.0)
    with build_client(timeout=60.0) as c:
        assert c.timeout.connect == 10.0


def test_cut_to_tokens():
    text = "lorem ipsum " * 100
    cut = cut_to_tokens(text, 40)
    assert estimate_tokens(cut) <= 40 < estimate_tokens(cut + text[len(cut)])
    assert cut_to_tokens("short", 40) == "short"
    assert estimate_tokens(cut_to_tokens("汉字" * 100, 30)) <= 30


def test_throttle_halves_once_per_congestion_event_and_recovers():
    t = Throttle(8)
    tokens = [t.acquire() for _ in range(8)]
    assert t.in_flight == 8
    for tok in tokens:  # all 8 in-flight requests come back 429: one cut, not 8
        t.release(tok, RateLimitError("slow", status_code=429))
    assert t.limit == 4
    assert t.throttled == 8
    t.release(t.acquire(), RateLimitError("slow", status_code=429))  # a new event: cut again
    assert t.limit == 2
    for _ in range(2):  # `limit` successes in a row add one
        t.release(t.acquire(), None)
    assert t.limit == 3
    for _ in range(3 + 4 + 5 + 6 + 7):
        t.release(t.acquire(), None)
    assert t.limit == 8  # back to the maximum, never above
    t.limit = 3
    t.release(t.acquire(), ProviderServerError("x", status_code=500))  # other errors don't move it
    assert t.limit == 3
