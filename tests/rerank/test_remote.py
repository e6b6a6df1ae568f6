"""Remote rerankers against real local HTTP servers: request shapes, brute-force equality, faults, secrets."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obembed.errors import (
    AuthenticationError,
    MissingCredentialError,
    PartialBatchError,
    ProviderConnectionError,
    ProviderResponseError,
    ProviderTimeoutError,
    RateLimitError,
)
from obembed.providers.rerank import RerankHit, load_reranker

from .conftest import DASHSCOPE_KEY, FAST_RETRY, RERANK_KEY
from .fakerank import RERANK_PATH, FakeRerankAPI, score_for

DOCS = [
    "OceanBase is a distributed relational database",
    "bananas are a yellow fruit",
    "a database stores rows and vectors",
    "seekdb keeps vectors beside scalar columns in a database",
    "the weather is lovely today",
    "vector search in a relational database",
    "yellow bananas and green apples",
]
QUERY = "vector database"


def brute_force(query: str, docs: list[str]) -> tuple[np.ndarray, list[int]]:
    """Scores in input order and the expected order (score descending, ties by input index)."""
    scores = np.array([score_for(query, d) for d in docs], dtype=np.float64)
    return scores, [int(i) for i in np.lexsort((np.arange(len(docs)), -scores))]


def v1(server: FakeRerankAPI, backend: str = "rerank-api", path: str = "/v1", **opts: Any) -> Any:
    return load_reranker(f"{backend}:BAAI/bge-reranker-v2-m3", base_url=server.url + path, api_key=RERANK_KEY,
                         **{**FAST_RETRY, **opts})


# ---------------------------------------------------------------------------------------------- shapes
def test_v1_shape_scores_and_order_match_brute_force(v1_server: FakeRerankAPI) -> None:
    rr = v1(v1_server)
    result = rr.score(QUERY, DOCS)
    want, order = brute_force(QUERY, DOCS)
    np.testing.assert_array_equal(result.scores, want)
    hits = rr.rerank(QUERY, DOCS)
    assert [h.index for h in hits] == order
    assert hits[0] == RerankHit(order[0], float(want[order[0]]))
    req = v1_server.received[0]
    assert len(v1_server.received) == 2
    assert req.path == "/v1/rerank"
    assert req.body == {"model": "BAAI/bge-reranker-v2-m3", "query": QUERY, "documents": DOCS,
                        "return_documents": False}
    assert req.headers["authorization"] == f"Bearer {RERANK_KEY}"


def test_ties_keep_input_order(v1_server: FakeRerankAPI) -> None:
    docs = ["red apple", "green apple", "apple pie", "no match here", "apple tart"]
    hits = v1(v1_server).rerank("apple", docs)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    tied = [h.index for h in hits if h.score == hits[0].score]
    assert tied == sorted(tied)
    assert len(tied) >= 3


def test_base_url_forms_and_top_n(v1_server: FakeRerankAPI) -> None:
    for base in (v1_server.url + "/v1", v1_server.url + "/v1/", v1_server.url + "/v1/rerank"):
        rr = load_reranker("rerank-api:tiny-reranker", base_url=base, api_key=RERANK_KEY)
        assert rr.endpoint == v1_server.url + "/v1/rerank"
        assert [h.index for h in rr.rerank(QUERY, DOCS, top_n=2)] == brute_force(QUERY, DOCS)[1][:2]


def test_cohere_preset_sends_the_v2_shape(v1_server: FakeRerankAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO_API_KEY", RERANK_KEY)
    rr = load_reranker("cohere:rerank-v3.5", base_url=v1_server.url + "/v2")
    assert [h.index for h in rr.rerank(QUERY, DOCS)] == brute_force(QUERY, DOCS)[1]
    (req,) = v1_server.received
    assert req.path == "/v2/rerank"
    assert "return_documents" not in req.body


@pytest.mark.parametrize(("backend", "env"), [("jina", "JINA_API_KEY"), ("siliconflow", "SILICONFLOW_API_KEY")])
def test_presets_read_their_key_variable(v1_server: FakeRerankAPI, monkeypatch: pytest.MonkeyPatch,
                                         backend: str, env: str) -> None:
    with pytest.raises(MissingCredentialError, match=env):
        load_reranker(f"{backend}:tiny-reranker", base_url=v1_server.url + "/v1").rerank(QUERY, DOCS)
    assert v1_server.received == []  # nothing was sent without a key
    monkeypatch.setenv(env, RERANK_KEY)
    hits = load_reranker(f"{backend}:tiny-reranker", base_url=v1_server.url + "/v1").rerank(QUERY, DOCS)
    assert [h.index for h in hits] == brute_force(QUERY, DOCS)[1]


def test_default_endpoints() -> None:
    assert load_reranker("cohere:rerank-v3.5", api_key="k" * 10).endpoint == "https://api.cohere.com/v2/rerank"
    assert load_reranker("jina:jina-reranker-v2-base-multilingual").endpoint == "https://api.jina.ai/v1/rerank"
    assert load_reranker("siliconflow:BAAI/bge-reranker-v2-m3", region="intl").endpoint == (
        "https://api.siliconflow.com/v1/rerank")
    assert load_reranker("infinity:m").endpoint == "http://localhost:7997/rerank"
    assert load_reranker("tei:m").endpoint == "http://localhost:8080/rerank"
    assert load_reranker("dashscope-rerank:gte-rerank-v2", region="intl").endpoint == (
        "https://dashscope-intl.aliyuncs.com" + RERANK_PATH)


def test_tei_shape(tei_server: FakeRerankAPI) -> None:
    rr = load_reranker("tei:BAAI/bge-reranker-base", base_url=tei_server.url)
    want, _order = brute_force(QUERY, DOCS)
    np.testing.assert_array_equal(rr.score(QUERY, DOCS).scores, want)
    (req,) = tei_server.received
    assert req.path == "/rerank"
    assert req.body["texts"] == DOCS
    assert req.body["truncate"] is True
    assert "documents" not in req.body
    assert "authorization" not in req.headers


def test_dashscope_native_shape(dashscope_rerank_server: FakeRerankAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", DASHSCOPE_KEY)
    rr = load_reranker("dashscope-rerank:gte-rerank-v2", base_url=dashscope_rerank_server.url + "/api/v1")
    want, _order = brute_force(QUERY, DOCS)
    result = rr.score(QUERY, DOCS)
    np.testing.assert_array_equal(result.scores, want)
    (req,) = dashscope_rerank_server.received
    assert req.path == RERANK_PATH
    assert req.body == {"model": "gte-rerank-v2", "input": {"query": QUERY, "documents": DOCS},
                        "parameters": {"return_documents": False, "top_n": len(DOCS)}}


def test_fake_dashscope_server_speaks_the_sdk_protocol(dashscope_rerank_server: FakeRerankAPI) -> None:
    """The official dashscope SDK against the fake server: the fake is faithful to what the SDK sends/reads."""
    from dashscope import TextReRank

    resp = TextReRank.call(model="gte-rerank-v2", query=QUERY, documents=DOCS, api_key=DASHSCOPE_KEY,
                           base_address=dashscope_rerank_server.url + "/api/v1", return_documents=False)
    assert resp.status_code == 200, resp.message
    got = {r["index"]: r["relevance_score"] for r in resp.output["results"]}
    want, _ = brute_force(QUERY, DOCS)
    assert got == {i: float(s) for i, s in enumerate(want)}
    assert dashscope_rerank_server.received[0].path == RERANK_PATH


def test_empty_candidate_list_sends_nothing(v1_server: FakeRerankAPI) -> None:
    rr = v1(v1_server)
    assert rr.rerank(QUERY, []) == []
    assert len(rr.score(QUERY, [])) == 0
    assert v1_server.received == []


# ---------------------------------------------------------------------------------------------- request sizes
def test_long_lists_are_split_and_recombined(tei_server: FakeRerankAPI) -> None:
    docs = [f"doc {i} about vector database {'x ' * (i % 5)}" for i in range(75)] + DOCS
    rr = load_reranker("tei:m", base_url=tei_server.url, concurrency=3)
    want, order = brute_force(QUERY, docs)
    np.testing.assert_array_equal(rr.score(QUERY, docs).scores, want)
    assert sorted(tei_server.n_documents()) == [18, 32, 32]
    assert [h.index for h in rr.rerank(QUERY, docs)] == order


def test_server_batch_limits_shrink_requests(tei_server: FakeRerankAPI,
                                             dashscope_rerank_server: FakeRerankAPI) -> None:
    tei_server.max_items = 8  # TEI's 413 "maximum allowed batch size 8"
    rr = load_reranker("tei:m", base_url=tei_server.url, max_documents=20, concurrency=1)
    docs = [f"vector {i}" for i in range(20)]
    np.testing.assert_array_equal(rr.score(QUERY, docs).scores, brute_force(QUERY, docs)[0])
    assert rr.max_documents == 8
    assert tei_server.n_documents() == [20, 8, 8, 4]
    dashscope_rerank_server.max_items = 5  # "should not be larger than 5"
    ds = load_reranker("dashscope-rerank:gte-rerank-v2", base_url=dashscope_rerank_server.url + "/api/v1",
                       api_key=DASHSCOPE_KEY, concurrency=1)
    np.testing.assert_array_equal(ds.score(QUERY, docs).scores, brute_force(QUERY, docs)[0])
    assert ds.max_documents == 5


# ---------------------------------------------------------------------------------------------- retries
def test_429_is_retried_after_the_servers_delay(v1_server: FakeRerankAPI) -> None:
    v1_server.fault("status", status=429, body={"message": "rate limited"}, headers={"retry-after-ms": "20"},
                    times=2)
    rr = v1(v1_server)
    assert [h.index for h in rr.rerank(QUERY, DOCS)] == brute_force(QUERY, DOCS)[1]
    assert len(v1_server.received) == 3
    assert rr.throttle.throttled == 2


def test_5xx_and_dropped_connections_are_retried(v1_server: FakeRerankAPI) -> None:
    v1_server.fault("status", status=503, body={"message": "overloaded"})
    v1_server.fault("drop")
    assert [h.index for h in v1(v1_server).rerank(QUERY, DOCS)] == brute_force(QUERY, DOCS)[1]
    assert len(v1_server.received) == 3


def test_retries_are_bounded(v1_server: FakeRerankAPI) -> None:
    v1_server.fault("status", status=429, body={"message": "slow down"}, times=50)
    with pytest.raises(RateLimitError, match="gave up after 3 attempts"):
        v1(v1_server, max_retries=2).rerank(QUERY, DOCS)
    assert len(v1_server.received) == 3


def test_timeout(v1_server: FakeRerankAPI) -> None:
    v1_server.fault("slow", delay=1.0, times=5)
    with pytest.raises(ProviderTimeoutError, match="timeout"):
        v1(v1_server, timeout=0.2, max_retries=0).rerank(QUERY, DOCS)


def test_unreachable_server() -> None:
    rr = load_reranker("rerank-api:m", base_url="http://127.0.0.1:9/v1", max_retries=1, **FAST_RETRY)
    with pytest.raises(ProviderConnectionError, match="cannot reach"):
        rr.rerank(QUERY, DOCS)


# ---------------------------------------------------------------------------------------------- bad replies
@pytest.mark.parametrize(("kind", "match"), [
    ("fewer", r"6 scores for 7 documents .*nothing was reordered"),
    ("bad_index", r"index 10, not an index of the 7 documents"),
    ("dup_index", r"appears twice"),
    ("nan", r"not a finite number"),
    ("string_index", r"has index '\d'"),
    ("truncated", r"not valid JSON"),
])
def test_bad_replies_name_the_request_and_reorder_nothing(v1_server: FakeRerankAPI, kind: str, match: str) -> None:
    v1_server.fault(kind)
    with pytest.raises(ProviderResponseError, match=match) as info:
        v1(v1_server).rerank(QUERY, DOCS)
    if kind != "truncated":
        assert "request " in str(info.value)  # the request id the server gave
    assert len(v1_server.received) == 1  # a malformed reply is not retried


def test_dashscope_fewer_results_names_the_request_id(dashscope_rerank_server: FakeRerankAPI) -> None:
    dashscope_rerank_server.fault("fewer")
    rr = load_reranker("dashscope-rerank:gte-rerank-v2", base_url=dashscope_rerank_server.url + "/api/v1",
                       api_key=DASHSCOPE_KEY)
    with pytest.raises(ProviderResponseError) as info:
        rr.rerank(QUERY, DOCS)
    rid = dashscope_rerank_server.received[0]
    assert rid.path == RERANK_PATH
    assert "6 scores for 7 documents" in str(info.value)


def test_partial_failure_keeps_the_good_scores(tei_server: FakeRerankAPI) -> None:
    docs = [f"vector {i}" for i in range(10)] + ["database poison"] + [f"database {i}" for i in range(9)]
    tei_server.fault("status", status=500, body={"error": "boom", "error_type": "Backend"}, contains="poison",
                     times=10)
    rr = load_reranker("tei:m", base_url=tei_server.url, max_documents=10, max_retries=1, **FAST_RETRY)
    with pytest.raises(PartialBatchError, match="10 of 20 documents") as info:
        rr.score(QUERY, docs)
    result = info.value.result
    want, _ = brute_force(QUERY, docs)
    np.testing.assert_array_equal(result.scores[:10], want[:10])
    assert np.isnan(result.scores[10:]).all()
    assert sorted(result.failed) == list(range(10, 20))


# ---------------------------------------------------------------------------------------------- secrets
def test_auth_error_is_not_retried_and_hides_the_key(v1_server: FakeRerankAPI,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    wrong = "sk-wrong-" + "z" * 24
    rr = load_reranker("rerank-api:tiny-reranker", base_url=v1_server.url + "/v1", api_key=wrong, **FAST_RETRY)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError) as info:
        rr.rerank(QUERY, DOCS)
    assert len(v1_server.received) == 1
    for text in (str(info.value), repr(rr), str(rr.info()), caplog.text, repr(info.value.body)):
        assert wrong not in text
        assert "z" * 24 not in text


def test_spec_key_never_shown(v1_server: FakeRerankAPI) -> None:
    rr = load_reranker(f"rerank-api:tiny-reranker?base_url={v1_server.url}/v1&api_key={RERANK_KEY}")
    assert rr.rerank(QUERY, DOCS[:2])
    assert RERANK_KEY not in repr(rr)
    assert RERANK_KEY not in str(rr.info())


# ---------------------------------------------------------------------------------------------- properties
_TEXT = st.text(alphabet=st.sampled_from(list("abc xyz")), min_size=1, max_size=12).filter(lambda s: s.strip())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(_TEXT, min_size=0, max_size=40), query=_TEXT, top_n=st.none() | st.integers(0, 50))
def test_any_candidate_list_is_ordered_as_brute_force(tei_server: FakeRerankAPI, docs: list[str], query: str,
                                                      top_n: int | None) -> None:
    tei_server.max_items = 16
    rr = load_reranker("tei:m", base_url=tei_server.url, max_documents=16, concurrency=2)
    hits = rr.rerank(query, docs, top_n=top_n)
    want, order = brute_force(query, docs)
    assert [h.index for h in hits] == order[:top_n]
    assert [h.score for h in hits] == [float(want[i]) for i in order[:top_n]]
