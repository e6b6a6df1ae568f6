"""dashscope-sdk: the official dashscope package against a real local server speaking the native API."""

from __future__ import annotations

import numpy as np
import pytest

import obembed
from obembed.errors import (
    AuthenticationError,
    ConfigError,
    MissingCredentialError,
    PartialBatchError,
    ProviderConnectionError,
    ProviderResponseError,
    ProviderTimeoutError,
    RateLimitError,
)

from .conftest import DASHSCOPE_KEY, FAST_RETRY
from .fakeapi import NATIVE_PATH, vector_for

pytest.importorskip("dashscope")

TEXTS = [f"文档 {i}: OceanBase 向量检索 number {i}" for i in range(23)]
THROTTLED = {"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded, please try again later.",
             "request_id": "r-1"}


def sdk(server, model="text-embedding-v3", **kw):
    kw = {**FAST_RETRY, "base_address": server.url + "/api/v1", "api_key": DASHSCOPE_KEY, **kw}
    return obembed.load(f"dashscope-sdk:{model}", **kw)


def expected(texts, model="text-embedding-v3", dim=None):
    return np.stack([vector_for(t, model, dim) for t in texts])


def test_text_type_dimension_and_text_index_order(dashscope_server):
    p = sdk(dashscope_server, dimensions=512, concurrency=2)
    docs = p.embed_documents(TEXTS)
    np.testing.assert_allclose(docs, expected(TEXTS, dim=512), atol=1e-6)
    reqs = dashscope_server.received
    assert {r.path for r in reqs} == {NATIVE_PATH}
    assert sorted(r.n_inputs for r in reqs) == [3, 10, 10]
    assert all(r.body["parameters"] == {"text_type": "document", "dimension": 512} for r in reqs)
    assert all(r.headers["authorization"] == f"Bearer {DASHSCOPE_KEY}" for r in reqs)
    q = p.embed_query("查询")
    assert dashscope_server.received[-1].body["parameters"]["text_type"] == "query"
    np.testing.assert_allclose(q, vector_for("查询", "text-embedding-v3", 512), atol=1e-6)


def test_no_module_globals_touched(dashscope_server):
    import dashscope

    before = dashscope.base_http_api_url
    sdk(dashscope_server).embed_query("x")
    assert dashscope.base_http_api_url == before
    assert dashscope.api_key is None


def test_sparse_kept_when_asked(dashscope_server):
    p = sdk(dashscope_server, output_type="dense&sparse")
    res = p.embed(["red apple red", "green pear"])
    assert res.vectors.shape == (2, 1024)
    sparse = res.extra["sparse"]
    assert len(sparse) == 2
    assert len(sparse[0]) == 2  # "red", "apple"
    assert len(sparse[1]) == 2
    assert dashscope_server.received[0].body["parameters"]["output_type"] == "dense&sparse"
    only = sdk(dashscope_server, output_type="sparse")
    assert only.embed_sparse(["red apple red", "green pear"]) == sparse
    with pytest.raises(ConfigError, match="embed_sparse"):
        only.embed_documents(["x"])


def test_status_code_is_checked_and_throttling_retried(dashscope_server):
    dashscope_server.fault("status", status=429, times=2, body=THROTTLED)
    v = sdk(dashscope_server).embed_query("x")
    np.testing.assert_allclose(v, vector_for("x", "text-embedding-v3"), atol=1e-6)
    assert len(dashscope_server.received) == 3
    dashscope_server.fault("status", status=429, times=5, body=THROTTLED)
    with pytest.raises(RateLimitError, match=r"Throttling\.RateQuota") as ei:
        sdk(dashscope_server, max_retries=1).embed_query("x")
    assert ei.value.request_id == "r-1"


def test_wrong_key(dashscope_server):
    with pytest.raises(AuthenticationError, match="InvalidApiKey"):
        sdk(dashscope_server, api_key="sk-not-the-key").embed_query("x")
    assert len(dashscope_server.received) == 1
    with pytest.raises(MissingCredentialError, match="DASHSCOPE_API_KEY"):
        obembed.load("dashscope-sdk:text-embedding-v3", base_address=dashscope_server.url + "/api/v1").embed_query("x")


def test_batch_limit_adapts(dashscope_server):
    dashscope_server.max_items = 4
    p = sdk(dashscope_server, concurrency=1)
    vecs = p.embed_documents(TEXTS[:10])
    np.testing.assert_allclose(vecs, expected(TEXTS[:10]), atol=1e-6)
    assert p.max_batch_items == 4
    assert [r.n_inputs for r in dashscope_server.received] == [10, 4, 4, 2]


def test_bad_replies(dashscope_server):
    dashscope_server.fault("fewer")
    with pytest.raises(ProviderResponseError, match="returned 1 vectors for 2 inputs"):
        sdk(dashscope_server).embed_documents(TEXTS[:2])
    dashscope_server.fault("wrong_dim")
    with pytest.raises(ProviderResponseError, match="1016-d vectors, expected 1024"):
        sdk(dashscope_server).embed_documents(TEXTS[:2])
    dashscope_server.fault("truncated")
    with pytest.raises(ProviderResponseError, match="not valid JSON"):
        sdk(dashscope_server).embed_documents(TEXTS[:2])


def test_partial_failure(dashscope_server):
    dashscope_server.fault("status", status=500, times=2, contains=TEXTS[15],
                           body={"code": "InternalError", "message": "oops", "request_id": "r"})
    with pytest.raises(PartialBatchError) as ei:
        sdk(dashscope_server, max_retries=1).embed_documents(TEXTS)
    assert sorted(ei.value.failed) == list(range(10, 20))
    np.testing.assert_allclose(ei.value.result.vectors[:10], expected(TEXTS[:10]), atol=1e-6)


def test_dimension_rules_and_region():
    with pytest.raises(ConfigError, match="1000"):
        obembed.load("dashscope-sdk:text-embedding-v3", dimensions=1000)
    assert obembed.load("dashscope-sdk:text-embedding-v4", region="intl").base_address == (
        "https://dashscope-intl.aliyuncs.com/api/v1")
    assert obembed.load("dashscope-sdk:text-embedding-v4", dimension=2048).dimension == 2048


def test_timeout_reaches_the_sdk(dashscope_server):
    dashscope_server.fault("slow", delay=1.0)
    with pytest.raises(ProviderTimeoutError, match=r"within 0\.2s"):
        sdk(dashscope_server, timeout=0.2, max_retries=0).embed_query("x")
    with pytest.raises(ProviderConnectionError, match="cannot reach"):
        sdk(dashscope_server, base_address="http://127.0.0.1:9/api/v1", max_retries=0).embed_query("x")
