"""ollama: against a real local server speaking /api/embed and the legacy /api/embeddings."""

from __future__ import annotations

import numpy as np
import pytest

import obembed
from obembed.errors import (
    ConfigError,
    ModelNotFoundError,
    ProviderConnectionError,
    ProviderResponseError,
    ProviderServerError,
    ProviderTimeoutError,
)
from obembed.providers.ollama import OllamaProvider, parse_ollama_host

from .conftest import FAST_RETRY
from .fakeapi import LEGACY_SCALE, vector_for

TEXTS = ["the cat sat on the mat", "東京は日本の首都です", "vectors in seekdb", "a fourth text", "and a fifth"]
BUSY = {"error": "server busy, please try again.  maximum pending requests exceeded"}


def ollama(server, model="nomic-embed-text", **kw):
    return obembed.load(f"ollama:{model}", **{**FAST_RETRY, "host": server.url, **kw})


def expected(texts, model="nomic-embed-text", dim=None):
    return np.stack([vector_for(t, model, dim) for t in texts])


def test_api_embed_batched_with_options(ollama_server):
    p = ollama(ollama_server, keep_alive="5m", options={"num_ctx": 2048}, dimensions=256)
    vecs = p.embed_documents(TEXTS)
    (req,) = ollama_server.received
    assert req.path == "/api/embed"
    assert req.body == {"model": "nomic-embed-text", "input": TEXTS, "truncate": True, "keep_alive": "5m",
                        "dimensions": 256, "options": {"num_ctx": 2048}}
    np.testing.assert_allclose(vecs, expected(TEXTS, dim=256), atol=1e-6)
    assert p.info()["options"] == {"dimensions": 256, "host": ollama_server.url, "keep_alive": "5m",
                                   "options": {"num_ctx": 2048}}


def test_truncate_policy_error_sends_truncate_false(ollama_server):
    p = ollama(ollama_server, truncate="error")
    with pytest.raises(obembed.errors.InvalidInputError, match="exceeds the context length") as info:
        p.embed_documents(["word " * 600])
    assert "truncate='truncate'" in str(info.value)  # the fix is named
    assert ollama_server.received[0].body["truncate"] is False
    assert len(ollama_server.received) == 1  # a 400 is not retried


@pytest.mark.parametrize("sdk", [False, True])
def test_per_call_truncate_policy_reaches_the_server(ollama_server, sdk):
    p = ollama(ollama_server, sdk=sdk)  # provider default: truncate
    with pytest.raises(obembed.errors.InvalidInputError, match="context"):
        p.embed(["fine", "word " * 600], truncate="error")
    assert ollama_server.received[-1].body["truncate"] is False
    res = p.embed(["fine", "word " * 600])  # the provider's own policy again: the server cuts it
    assert ollama_server.received[-1].body["truncate"] is True
    assert res.vectors.shape == (2, 768)
    assert res.truncated == []  # Ollama does not say what it cut (documented)
    strict = ollama(ollama_server, sdk=sdk, truncate="error")
    assert strict.embed(["word " * 600], truncate="truncate").vectors.shape == (1, 768)
    assert ollama_server.received[-1].body["truncate"] is True


def test_truncation_counted_when_max_input_tokens_given(ollama_server):
    p = ollama(ollama_server, max_input_tokens=100)
    res = p.embed(["short text", "word " * 600, "another"])
    assert res.truncated == [1]
    assert ollama_server.received[-1].body["truncate"] is True
    n = len(ollama_server.received)
    with pytest.raises(obembed.errors.InvalidInputError, match="input 1 has"):
        p.embed(["short text", "word " * 600], truncate="error")
    assert len(ollama_server.received) == n  # refused before sending


def test_batches_and_concurrency(ollama_server):
    p = ollama(ollama_server, max_batch_items=2, concurrency=2)
    vecs = p.embed_documents(TEXTS)
    assert sorted(r.n_inputs for r in ollama_server.received) == [1, 2, 2]
    np.testing.assert_allclose(vecs, expected(TEXTS), atol=1e-6)


def test_legacy_fallback_only_on_404_and_vectors_agree(ollama_server, caplog):
    modern = ollama(ollama_server).embed_documents(TEXTS[:3])
    ollama_server.reset()
    ollama_server.legacy_only = True
    p = ollama(ollama_server)
    legacy = p.embed_documents(TEXTS[:3])
    paths = [r.path for r in ollama_server.received]
    assert paths == ["/api/embed", "/api/embeddings", "/api/embeddings", "/api/embeddings"]
    assert [r.body["prompt"] for r in ollama_server.received[1:]] == TEXTS[:3]
    assert p.legacy is True
    # the legacy endpoint's raw vectors (norm 7.5 here) are normalised: both paths give the same vectors
    np.testing.assert_allclose(legacy, modern, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(legacy, axis=1), 1.0, atol=1e-6)
    p.embed_query("again")
    assert ollama_server.received[-1].path == "/api/embeddings"  # remembered: no second try of /api/embed


def test_legacy_with_dimensions_slices_then_normalises(ollama_server):
    ollama_server.legacy_only = True
    v = ollama(ollama_server, dimensions=64).embed_query("hello")
    np.testing.assert_allclose(v, vector_for("hello", "nomic-embed-text", 64), atol=1e-6)
    assert LEGACY_SCALE != 1.0


def test_model_not_found_says_ollama_pull(ollama_server):
    p = ollama(ollama_server, model="llama-nope")
    with pytest.raises(ModelNotFoundError, match="ollama pull llama-nope"):
        p.embed_query("x")
    assert [r.path for r in ollama_server.received] == ["/api/embed"]  # no legacy fallback, no retry


def test_empty_embeddings_reply_is_a_count_error(ollama_server):
    # Ollama answers `embeddings: []` (HTTP 200) where it makes no vector: never a silently missing row
    ollama_server.fault("fewer")
    with pytest.raises(ProviderResponseError, match="returned 1 vectors for 2 inputs"):
        ollama(ollama_server).embed_documents(TEXTS[:2])


def test_wrong_dimension_and_truncated_json(ollama_server):
    ollama_server.fault("wrong_dim")
    with pytest.raises(ProviderResponseError, match="120-d vectors, expected 128"):
        ollama(ollama_server, dimensions=128).embed_documents(TEXTS[:2])
    ollama_server.fault("truncated")
    with pytest.raises(ProviderResponseError, match="not valid JSON"):
        ollama(ollama_server).embed_documents(TEXTS[:2])


def test_503_server_busy_is_retried(ollama_server):
    ollama_server.fault("status", status=503, times=2, body=BUSY)
    vecs = ollama(ollama_server).embed_documents(TEXTS[:2])
    np.testing.assert_allclose(vecs, expected(TEXTS[:2]), atol=1e-6)
    assert len(ollama_server.received) == 3
    ollama_server.fault("status", status=503, times=9, body=BUSY)
    with pytest.raises(ProviderServerError, match="server busy"):
        ollama(ollama_server, max_retries=1).embed_documents(TEXTS[:2])


def test_timeout_is_always_set(ollama_server):
    p = ollama(ollama_server, timeout=0.2, max_retries=0)
    assert p.client.timeout.read == 0.2
    ollama_server.fault("slow", delay=0.6)
    with pytest.raises(ProviderTimeoutError):
        p.embed_query("x")
    assert ollama(ollama_server).client.timeout.read == 60.0  # settings.timeout by default, never None


def test_unreachable_server():
    p = obembed.load("ollama:nomic-embed-text", host="127.0.0.1:9", max_retries=0)
    with pytest.raises(ProviderConnectionError, match="cannot reach"):
        p.embed_query("x")


@pytest.mark.parametrize("host", [
    None, "", "1.2.3.4", ":56789", "1.2.3.4:56789", "http://1.2.3.4", "https://1.2.3.4", "https://1.2.3.4:56789",
    "example.com", "example.com:56789", "http://example.com", "https://example.com:56789", "example.com/",
    "example.com:56789/path/", "https://example.com:56789/path", "[0001:002:003:0004::1]",
    "[0001:002:003:0004::1]:56789", "https://[0001:002:003:0004::1]:56789/path",
])
def test_ollama_host_forms_match_the_sdk(host):
    ollama_client = pytest.importorskip("ollama._client")
    assert parse_ollama_host(host) == ollama_client._parse_host(host)


def test_ollama_host_env(ollama_server, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f":{ollama_server.port}")
    p = obembed.load("ollama:nomic-embed-text")
    assert p.host == f"http://127.0.0.1:{ollama_server.port}"
    p.embed_query("x")
    assert len(ollama_server.received) == 1
    assert "host" not in p.info()["options"]  # from the environment: not pinned into collection metadata
    with pytest.raises(ConfigError, match="scheme"):
        parse_ollama_host("ftp://x")


def test_sdk_mode_same_vectors(ollama_server):
    pytest.importorskip("ollama")
    http = ollama(ollama_server).embed_documents(TEXTS)
    p = ollama(ollama_server, sdk=True, dimensions=None)
    sdk = p.embed_documents(TEXTS)
    np.testing.assert_allclose(sdk, http, atol=1e-6)
    assert ollama_server.received[-1].headers["user-agent"].startswith("ollama-python/")
    assert p.sdk_client._client.timeout.read == 60.0  # the SDK's default is no timeout at all


def test_sdk_mode_errors_and_legacy(ollama_server):
    pytest.importorskip("ollama")
    with pytest.raises(ModelNotFoundError, match="ollama pull nope"):
        ollama(ollama_server, model="nope", sdk=True).embed_query("x")
    ollama_server.fault("status", status=503, times=1, body=BUSY)
    assert ollama(ollama_server, sdk=True).embed_query("x").shape == (768,)  # retried
    ollama_server.legacy_only = True
    p = ollama(ollama_server, sdk=True)
    np.testing.assert_allclose(p.embed_documents(TEXTS[:2]), expected(TEXTS[:2]), atol=1e-6)
    assert p.legacy is True


def test_official_ollama_client_against_the_server(ollama_server):
    """The server is faithful: the official client parses it, and empty input gives `embeddings: []`."""
    ollama_lib = pytest.importorskip("ollama")
    client = ollama_lib.Client(host=ollama_server.url, timeout=5)
    resp = client.embed(model="nomic-embed-text", input=TEXTS[:2])
    np.testing.assert_allclose(np.asarray(resp.embeddings), expected(TEXTS[:2]), atol=1e-6)
    assert client.embed(model="nomic-embed-text", input="").embeddings == []
    assert client.embed(model="nomic-embed-text", input=[]).embeddings == []
    legacy = client.embeddings(model="nomic-embed-text", prompt="hi").embedding
    assert np.linalg.norm(legacy) == pytest.approx(LEGACY_SCALE, rel=1e-5)  # legacy vectors are raw
    with pytest.raises(ollama_lib.ResponseError) as ei:
        client.embed(model="ghost", input="x")
    assert ei.value.status_code == 404
    assert "try pulling it first" in ei.value.error


def test_provider_refuses_empty_text_before_any_request(ollama_server):
    p = ollama(ollama_server)
    with pytest.raises(obembed.errors.InvalidInputError, match="input 1 is empty"):
        p.embed_documents(["ok", "  "])
    assert ollama_server.received == []
    assert isinstance(p, OllamaProvider)
