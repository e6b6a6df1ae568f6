"""openai-compatible: and its presets against real local servers (OpenAI and DashScope compatible mode)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import obembed
from obembed.errors import (
    AuthenticationError,
    ConfigError,
    MissingCredentialError,
    ModelNotFoundError,
    PartialBatchError,
    ProviderResponseError,
    ProviderServerError,
    ProviderStatusError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
)
from obembed.providers.openai_compat import (
    DashScopeProvider,
    DoubaoProvider,
    OpenAICompatibleProvider,
    normalize_base_url,
)

from .conftest import DASHSCOPE_KEY, FAST_RETRY, OPENAI_KEY
from .fakeapi import DASHSCOPE_BATCH_ERROR, vector_for

TEXTS = [f"document number {i}: the quick brown fox {i * 7}" for i in range(25)]


def openai(server, model="text-embedding-3-small", **kw):
    kw = {**FAST_RETRY, "base_url": server.url + "/v1", "api_key": OPENAI_KEY, **kw}
    return obembed.load(f"openai:{model}", **kw)


def dashscope(server, model="text-embedding-v3", **kw):
    kw = {**FAST_RETRY, "base_url": server.url + "/compatible-mode/v1", "api_key": DASHSCOPE_KEY, **kw}
    return obembed.load(f"dashscope:{model}", **kw)


def expected(texts, model, dim=None):
    return np.stack([vector_for(t, model, dim) for t in texts])


# ------------------------------------------------------------------------------------------ happy paths
def test_right_vector_for_right_text_despite_reversed_order(openai_server):
    p = openai(openai_server)
    vecs = p.embed_documents(TEXTS[:5])
    np.testing.assert_allclose(vecs, expected(TEXTS[:5], "text-embedding-3-small"), atol=1e-6)
    (req,) = openai_server.received
    assert req.path == "/v1/embeddings"
    assert req.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert req.body == {"model": "text-embedding-3-small", "input": TEXTS[:5], "encoding_format": "float"}
    assert "dimensions" not in req.body


@pytest.mark.parametrize("suffix", ["/v1", "/v1/", "/v1/embeddings", "/v1/embeddings/"])
def test_base_url_forms(openai_server, suffix):
    p = openai(openai_server, base_url=openai_server.url + suffix)
    p.embed_query("hello")
    assert [r.path for r in openai_server.received] == ["/v1/embeddings"]


def test_normalize_base_url_refuses_nonsense():
    with pytest.raises(ConfigError, match="http:// or https://"):
        normalize_base_url("ftp://example.com/v1")
    with pytest.raises(ConfigError, match="base_url is empty"):
        normalize_base_url("  ")


def test_generic_needs_base_url_and_sends_no_key_without_one(openai_server):
    with pytest.raises(ConfigError, match="needs base_url"):
        obembed.load("openai-compatible:text-embedding-3-small")
    openai_server.api_key = None
    try:
        p = obembed.load("openai-compatible:text-embedding-3-small", base_url=openai_server.url + "/v1")
        p.embed_documents(["a", "b"])
    finally:
        from .conftest import OPENAI_KEY as key

        openai_server.api_key = key
    assert "authorization" not in openai_server.received[0].headers


def test_dimensions_sent_when_supported_and_vectors_match(openai_server):
    p = openai(openai_server, dimensions=256)
    assert p.dimension == 256  # known from config: no probe request
    assert openai_server.received == []
    vecs = p.embed_documents(TEXTS[:3])
    assert vecs.shape == (3, 256)
    assert openai_server.received[0].body["dimensions"] == 256
    np.testing.assert_allclose(vecs, expected(TEXTS[:3], "text-embedding-3-small", 256), atol=1e-6)


def test_dimensions_refused_for_fixed_size_model(openai_server):
    with pytest.raises(ConfigError, match="fixed size of 1536"):
        openai(openai_server, model="text-embedding-ada-002", dimensions=512)
    p = openai(openai_server, model="text-embedding-ada-002")
    p.embed_query("x")
    assert "dimensions" not in openai_server.received[0].body


def test_base64_reply_is_decoded_even_when_float_was_asked(openai_server):
    openai_server.fault("base64")
    p = openai(openai_server)
    vecs = p.embed_documents(TEXTS[:4])
    assert openai_server.received[0].body["encoding_format"] == "float"
    np.testing.assert_allclose(vecs, expected(TEXTS[:4], "text-embedding-3-small"), atol=1e-6)


def test_base64_on_request(openai_server):
    p = openai(openai_server, encoding_format="base64")
    vecs = p.embed_documents(TEXTS[:2])
    assert openai_server.received[0].body["encoding_format"] == "base64"
    np.testing.assert_allclose(vecs, expected(TEXTS[:2], "text-embedding-3-small"), atol=1e-6)


def test_split_by_items_keeps_order_under_concurrency(openai_server):
    p = openai(openai_server, max_batch_items=4, concurrency=4)
    vecs = p.embed_documents(TEXTS)
    sizes = sorted(r.n_inputs for r in openai_server.received)
    assert sizes == [1] + [4] * 6
    np.testing.assert_allclose(vecs, expected(TEXTS, "text-embedding-3-small"), atol=1e-6)


def test_split_by_tokens(openai_server):
    texts = ["word " * 300 + str(i) for i in range(6)]  # ~500 estimated tokens each
    p = openai(openai_server, max_batch_tokens=1100, concurrency=1)
    counts = p.count_tokens(texts)
    vecs = p.embed_documents(texts)
    for r in openai_server.received:
        assert sum(counts[texts.index(t)] for t in r.body["input"]) <= 1100
    assert len(openai_server.received) == 3
    np.testing.assert_allclose(vecs, expected(texts, "text-embedding-3-small"), atol=1e-6)


def test_concurrency_really_overlaps(openai_server):
    openai_server.latency = 0.05
    p = openai(openai_server, max_batch_items=1, concurrency=4)
    p.embed_documents(TEXTS[:8])
    assert openai_server.max_in_flight >= 2
    assert openai_server.max_in_flight <= 4


def test_concurrency_backs_off_on_429(openai_server):
    """A gateway that allows 2 requests in flight: the provider's live limit drops from 8 and all rows arrive."""
    openai_server.latency = 0.03
    openai_server.max_concurrent = 2
    p = openai(openai_server, max_batch_items=1, concurrency=8, max_retries=8)
    vecs = p.embed_documents(TEXTS[:24])
    np.testing.assert_allclose(vecs, expected(TEXTS[:24], "text-embedding-3-small"), atol=1e-6)
    assert openai_server.n_throttled >= 1  # it was throttled ...
    assert p.throttle.throttled == openai_server.n_throttled
    assert p.throttle.limit < 8  # ... and adapted
    assert len(openai_server.received) == 24 + openai_server.n_throttled


def test_overlong_input_is_cut_client_side_and_counted(openai_server):
    p = openai(openai_server, max_input_tokens=50)
    long = "alpha " * 200
    res = p.embed([long, "short"])
    assert res.truncated == [0]
    sent = openai_server.received[0].body["input"][0]
    assert len(sent) < len(long)
    assert long.startswith(sent)
    with pytest.raises(obembed.errors.InvalidInputError, match="limit of 50"):
        p.embed([long], truncate="error")


# ------------------------------------------------------------------------------------------ DashScope preset
def test_dashscope_preset_batches_of_ten(dashscope_server):
    p = dashscope(dashscope_server, concurrency=3)
    assert p.max_batch_items == 10
    assert p.max_input_tokens == 8192
    assert p.dimension == 1024
    vecs = p.embed_documents(TEXTS)
    assert sorted(r.n_inputs for r in dashscope_server.received) == [5, 10, 10]
    assert all(r.path == "/compatible-mode/v1/embeddings" for r in dashscope_server.received)
    assert all(r.headers["authorization"] == f"Bearer {DASHSCOPE_KEY}" for r in dashscope_server.received)
    np.testing.assert_allclose(vecs, expected(TEXTS, "text-embedding-v3"), atol=1e-6)


def test_dashscope_adapts_to_batch_size_error(dashscope_server, caplog):
    dashscope_server.max_items = 6  # the documented figure moved before (25 -> 10 -> 6): adapt and go on
    p = dashscope(dashscope_server, concurrency=1)
    with caplog.at_level(logging.WARNING, logger="obembed"):
        vecs = p.embed_documents(TEXTS)
    np.testing.assert_allclose(vecs, expected(TEXTS, "text-embedding-v3"), atol=1e-6)
    assert p.max_batch_items == 6
    sizes = [r.n_inputs for r in dashscope_server.received]
    assert sizes[0] == 10  # refused once ...
    assert all(s <= 6 for s in sizes[1:])  # ... then never more than the server's limit
    assert sum(sizes[1:]) == len(TEXTS)
    assert "at most 6 inputs per request" in caplog.text


def test_dashscope_batch_error_body_maps_to_batch_limit(dashscope_server):
    dashscope_server.max_items = 2
    p = dashscope(dashscope_server, max_batch_items=10)
    import httpx

    resp = httpx.post(dashscope_server.url + "/compatible-mode/v1/embeddings",
                      headers={"Authorization": f"Bearer {DASHSCOPE_KEY}"},
                      json={"model": "text-embedding-v3", "input": ["a", "b", "c"]})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == DASHSCOPE_BATCH_ERROR.format(n=2)
    assert resp.json()["error"]["code"] == "InvalidParameter"
    assert "request_id" in resp.json()
    assert p.embed_documents(["a", "b", "c"]).shape == (3, 1024)


@pytest.mark.parametrize(("model", "dims", "ok"), [
    ("text-embedding-v3", 512, True), ("text-embedding-v3", 2048, False),
    ("text-embedding-v4", 2048, True), ("text-embedding-v4", 100, False),
    ("text-embedding-v2", 1536, True), ("text-embedding-v2", 512, False),
])
def test_dashscope_dimension_rules(dashscope_server, model, dims, ok):
    if not ok:
        with pytest.raises(ConfigError, match=str(dims)):
            dashscope(dashscope_server, model=model, dimensions=dims)
        return
    p = dashscope(dashscope_server, model=model, dimensions=dims)
    v = p.embed_query("hello")
    assert v.shape == (dims,)
    np.testing.assert_allclose(v, vector_for("hello", model, dims), atol=1e-6)


def test_dashscope_intl_region():
    p = obembed.load("dashscope:text-embedding-v4", region="intl")
    assert p.endpoint == "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/embeddings"
    assert obembed.load("dashscope:text-embedding-v4").endpoint.startswith("https://dashscope.aliyuncs.com/")
    with pytest.raises(ConfigError, match="region"):
        obembed.load("dashscope:text-embedding-v4", region="mars")


def test_dashscope_key_from_env(dashscope_server, monkeypatch):
    with pytest.raises(MissingCredentialError, match="DASHSCOPE_API_KEY"):
        obembed.load("dashscope:text-embedding-v3", base_url=dashscope_server.url + "/compatible-mode/v1",
                     **FAST_RETRY).embed_query("x")
    monkeypatch.setenv("DASHSCOPE_API_KEY", DASHSCOPE_KEY)
    p = obembed.load("dashscope:text-embedding-v3", base_url=dashscope_server.url + "/compatible-mode/v1")
    p.embed_query("x")
    assert dashscope_server.received[-1].headers["authorization"] == f"Bearer {DASHSCOPE_KEY}"
    assert p.info()["options"]["api_key_env"] == "DASHSCOPE_API_KEY"


# ------------------------------------------------------------------------------------------ Doubao / Baichuan
def test_doubao_slices_client_side_and_renormalises(openai_server):
    p = DoubaoProvider("doubao-embedding-large", base_url=openai_server.url + "/api/v3", api_key=OPENAI_KEY,
                       dimensions=1024, **FAST_RETRY)
    vecs = p.embed_documents(TEXTS[:3])
    assert "dimensions" not in openai_server.received[0].body
    assert openai_server.received[0].path == "/api/v3/embeddings"
    assert vecs.shape == (3, 1024)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vecs, expected(TEXTS[:3], "doubao-embedding-large", 1024), atol=1e-6)


def test_baichuan_preset_facts(openai_server):
    p = obembed.load("baichuan:Baichuan-Text-Embedding", base_url=openai_server.url + "/v1", api_key=OPENAI_KEY)
    assert (p.dimension, p.max_input_tokens) == (1024, 512)
    assert p.embed_query("你好").shape == (1024,)
    with pytest.raises(ConfigError, match="fixed size of 1024"):
        obembed.load("baichuan:Baichuan-Text-Embedding", dimensions=512)


# ------------------------------------------------------------------------------------------ faults
def test_429_with_retry_after_is_retried_and_honoured(openai_server, caplog):
    openai_server.fault("status", status=429, headers={"retry-after-ms": "30"},
                        body={"error": {"message": "Rate limit reached", "type": "requests",
                                        "code": "rate_limit_exceeded"}})
    p = openai(openai_server)
    with caplog.at_level(logging.INFO, logger="obembed"):
        vecs = p.embed_documents(TEXTS[:2])
    np.testing.assert_allclose(vecs, expected(TEXTS[:2], "text-embedding-3-small"), atol=1e-6)
    assert len(openai_server.received) == 2
    assert "retrying in 0.03" in caplog.text


@pytest.mark.parametrize(("headers", "message", "wait"), [
    ({"Retry-After": "0.04"}, "Rate limit reached", "0.04"),
    ({"x-ratelimit-reset-requests": "40ms", "x-ratelimit-remaining-requests": "0"}, "Rate limit", "0.04"),
    ({}, "Rate limit reached for requests. Please try again in 20ms. Visit https://x", "0.02"),
])
def test_429_wait_comes_from_headers_or_message(openai_server, caplog, headers, message, wait):
    openai_server.fault("status", status=429, headers=headers,
                        body={"error": {"message": message, "type": "requests", "code": "rate_limit_exceeded"}})
    p = openai(openai_server, retry_initial=5.0)  # the backoff alone would wait 5 s: the server's figure wins
    with caplog.at_level(logging.INFO, logger="obembed"):
        assert p.embed_query("x").shape == (1536,)
    assert f"retrying in {wait}" in caplog.text


def test_insufficient_quota_is_not_retried(openai_server):
    openai_server.fault("status", status=429, times=5, body={"error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}})
    p = openai(openai_server, max_batch_items=2, concurrency=1)
    with pytest.raises(QuotaExceededError, match="out of quota") as ei:
        p.embed_documents(TEXTS[:6])
    assert ei.value.status_code == 429
    assert len(openai_server.received) == 1  # not retried, and the other sub-batches were not sent


@pytest.mark.parametrize(("status", "cls"), [(500, ProviderServerError), (503, ProviderServerError),
                                             (429, RateLimitError)])
def test_transient_errors_give_up_after_bounded_attempts(openai_server, status, cls):
    openai_server.fault("status", status=status, times=10, body={"error": {"message": "boom", "type": "server"}})
    p = openai(openai_server, max_retries=2)
    with pytest.raises(cls, match="gave up after 3 attempts") as ei:
        p.embed_query("x")
    assert ei.value.status_code == status
    assert ei.value.request_id
    assert ei.value.request_id.startswith("req-")
    assert len(openai_server.received) == 3


def test_server_error_then_success(openai_server):
    openai_server.fault("status", status=500, times=2, body={"error": {"message": "oops", "type": "server_error"}})
    v = openai(openai_server).embed_query("x")
    np.testing.assert_allclose(v, vector_for("x", "text-embedding-3-small"), atol=1e-6)
    assert len(openai_server.received) == 3


def test_400_and_404_are_not_retried(openai_server):
    p = openai(openai_server, model="no-such-model")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        p.embed_query("x")
    assert len(openai_server.received) == 1
    openai_server.fault("status", status=400, body={"error": {"message": "bad thing", "type": "invalid_request_error"}})
    with pytest.raises(ProviderStatusError, match="HTTP 400: bad thing") as ei:
        openai(openai_server).embed_query("x")
    assert type(ei.value) is ProviderStatusError
    assert len(openai_server.received) == 2


def test_wrong_key_is_authentication_error_not_retried(openai_server):
    p = obembed.load("openai:text-embedding-3-small", base_url=openai_server.url + "/v1", api_key="sk-wrong-key-123")
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        p.embed_query("x")
    assert len(openai_server.received) == 1


def test_slow_reply_past_timeout(openai_server):
    openai_server.fault("slow", delay=0.5, times=1)
    p = openai(openai_server, timeout=0.15, max_retries=0)
    with pytest.raises(ProviderTimeoutError, match="within the timeout"):
        p.embed_query("x")
    openai_server.fault("slow", delay=0.5, times=1)
    v = openai(openai_server, timeout=0.15, max_retries=1).embed_query("y")  # a retry gets through
    assert v.shape == (1536,)


def test_truncated_json(openai_server):
    openai_server.fault("truncated")
    with pytest.raises(ProviderResponseError, match="not valid JSON"):
        openai(openai_server).embed_query("x")


def test_fewer_vectors_than_inputs(openai_server):
    openai_server.fault("fewer")
    with pytest.raises(ProviderResponseError, match="returned 2 vectors for 3 inputs"):
        openai(openai_server).embed_documents(TEXTS[:3])


def test_wrong_dimension(openai_server):
    openai_server.fault("wrong_dim")
    with pytest.raises(ProviderResponseError, match="1528-d vectors, expected 1536"):
        openai(openai_server).embed_documents(TEXTS[:3])


def test_connection_refused():
    p = obembed.load("openai:text-embedding-3-small", base_url="http://127.0.0.1:9/v1", api_key="k",
                     max_retries=1, **FAST_RETRY)
    with pytest.raises(obembed.errors.ProviderConnectionError, match="cannot reach"):
        p.embed_query("x")


def test_partial_failure_keeps_what_succeeded(openai_server):
    # sub-batches of 5; the one holding items 10-14 fails on both attempts, the others succeed
    openai_server.fault("status", status=500, times=2, contains=TEXTS[12],
                        body={"error": {"message": "boom", "type": "server_error"}})
    p = openai(openai_server, max_batch_items=5, concurrency=2, max_retries=1)
    with pytest.raises(PartialBatchError, match="5 of 25 inputs failed") as ei:
        p.embed_documents(TEXTS)
    err = ei.value
    assert sorted(err.failed) == list(range(10, 15))
    assert all(isinstance(e, ProviderServerError) for e in err.failed.values())
    assert "items 10-14" in str(err)
    vecs = err.result.vectors
    ok = [i for i in range(25) if i not in err.failed]
    np.testing.assert_allclose(vecs[ok], expected([TEXTS[i] for i in ok], "text-embedding-3-small"), atol=1e-6)
    assert np.isnan(vecs[10:15]).all()
    assert set(err.result.failed) == set(range(10, 15))
    assert len(openai_server.received) == 6  # 5 requests + 1 retry: nothing re-sent that had succeeded
    lenient = p.embed_lenient(TEXTS)  # as a result instead of an error (the fault is used up: all succeed)
    assert lenient.failed == {}
    assert lenient.vectors.shape == (25, 1536)


def test_lenient_returns_partial_result(openai_server):
    openai_server.fault("status", status=503, times=2, contains=TEXTS[0], body={"error": {"message": "busy"}})
    long = "gamma " * 100
    res = openai(openai_server, max_batch_items=5, max_retries=1, max_input_tokens=60).embed_lenient(
        [*TEXTS[:9], long])
    assert sorted(res.failed) == [0, 1, 2, 3, 4]
    assert res.truncated == [9]  # the accounting survives a partial failure
    assert "HTTP 503" in res.failed[0]
    np.testing.assert_allclose(res.vectors[5:9], expected(TEXTS[5:9], "text-embedding-3-small"), atol=1e-6)


def test_official_openai_client_against_the_server(openai_server):
    """The official client (base64 by default) decodes our server's replies: the server speaks the protocol."""
    openai_lib = pytest.importorskip("openai")
    client = openai_lib.OpenAI(api_key=OPENAI_KEY, base_url=openai_server.url + "/v1", max_retries=0)
    resp = client.embeddings.create(model="text-embedding-3-small", input=TEXTS[:3], dimensions=64)
    assert openai_server.received[0].body["encoding_format"] == "base64"
    assert [d.index for d in resp.data] == [2, 1, 0]  # unsorted, as the API allows
    by_index = {d.index: d.embedding for d in resp.data}
    for i in range(3):
        np.testing.assert_allclose(by_index[i], vector_for(TEXTS[i], "text-embedding-3-small", 64), atol=1e-6)
    with pytest.raises(openai_lib.AuthenticationError):
        openai_lib.OpenAI(api_key="sk-nope", base_url=openai_server.url + "/v1", max_retries=0).embeddings.create(
            model="text-embedding-3-small", input="x")
    openai_server.fault("status", status=429, body={"error": {"message": "quota", "type": "insufficient_quota",
                                                              "code": "insufficient_quota"}})
    with pytest.raises(openai_lib.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    # and our provider gets the same vectors as the official client
    ours = openai(openai_server, dimensions=64).embed_documents(TEXTS[:3])
    np.testing.assert_allclose(ours, np.stack([by_index[i] for i in range(3)]), atol=1e-6)


def test_official_openai_client_against_dashscope_compatible_mode(dashscope_server):
    openai_lib = pytest.importorskip("openai")
    client = openai_lib.OpenAI(api_key=DASHSCOPE_KEY, base_url=dashscope_server.url + "/compatible-mode/v1",
                               max_retries=0)
    resp = client.embeddings.create(model="text-embedding-v3", input=TEXTS[:2], encoding_format="float")
    assert len(resp.data[0].embedding) == 1024
    with pytest.raises(openai_lib.BadRequestError, match="should not be larger than 10"):
        client.embeddings.create(model="text-embedding-v3", input=TEXTS[:11], encoding_format="float")


def test_info_and_repr_name_no_key(openai_server):
    p = openai(openai_server, dimensions=256)
    info = p.info()
    assert info["dimension"] == 256
    assert info["normalized"] is True
    assert info["distance"] == "cosine"
    assert info["options"]["api_key_env"] == "OPENAI_API_KEY"
    assert OPENAI_KEY not in repr(p)
    assert OPENAI_KEY not in str(info)
    assert isinstance(p, OpenAICompatibleProvider)
    assert not isinstance(p, DashScopeProvider)


def test_unknown_option_is_an_error_not_ignored(openai_server):
    with pytest.raises(ConfigError, match=r"unknown option dimension for openai:.*known: .*dimensions"):
        obembed.load("openai:text-embedding-3-small", dimension=256)
    with pytest.raises(ConfigError, match="unknown option"):
        obembed.load("ollama:nomic-embed-text?keepalive=5m")
    p = obembed.load("openai-compat:text-embedding-3-small", base_url=openai_server.url + "/v1/embeddings")
    assert type(p) is OpenAICompatibleProvider
    assert p.endpoint == openai_server.url + "/v1/embeddings"


@pytest.mark.parametrize(("spec", "opts"), [
    ("openai:text-embedding-3-small", {"dimensions": 256, "base_url": "http://127.0.0.1:1/v1"}),
    ("dashscope:text-embedding-v4", {"region": "intl", "dimensions": 512}),
    ("doubao:ep-20240101", {"dimensions": 1024}),
    ("openai-compatible:bge-m3", {"base_url": "http://127.0.0.1:1/v1", "api_key_env": "MY_KEY"}),
    ("ollama:nomic-embed-text", {"host": "127.0.0.1:1", "keep_alive": "5m", "options": {"num_ctx": 512}}),
    ("dashscope-sdk:text-embedding-v3", {"output_type": "dense&sparse", "dimensions": 256}),
])
def test_rebuild_from_recorded_options(spec, opts):
    """A collection records info()["options"]; the store rebuilds the provider from exactly that."""
    p = obembed.load(spec, api_key="sk-secret-value-1", **opts) if "ollama" not in spec else obembed.load(spec, **opts)
    recorded = p.public_options()  # what info()["options"] holds (info() itself would probe unknown dimensions)
    assert "api_key" not in recorded
    again = obembed.load(spec, **recorded)
    assert again.public_options() == p.public_options()
    assert repr(again) == repr(p)
