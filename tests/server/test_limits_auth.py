"""Limits (each a clear 4xx) and the bearer API key (401 / 200), on the real server."""

from __future__ import annotations

import logging

import httpx
import pytest
from serverkit import API_KEY


def test_too_many_inputs_is_400(http, server_config):
    r = http.post("/v1/embeddings", json={"input": ["a"] * (server_config.max_inputs + 1)})
    assert r.status_code == 400
    msg = r.json()["error"]["message"]
    assert "--max-inputs" in msg
    assert str(server_config.max_inputs) in msg


def test_too_long_input_is_400(http, server_config):
    r = http.post("/api/embed", json={"model": "minilm", "input": ["ok", "y" * (server_config.max_chars + 1)]})
    assert r.status_code == 400
    assert "input 1" in r.json()["error"]
    assert "--max-chars" in r.json()["error"]


def test_body_over_limit_is_413_before_parsing(http, server_config):
    # not even valid JSON: the size check must come first
    r = http.post("/v1/embeddings", content=b"[" * (server_config.max_body_bytes + 1),
                  headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "--max-body-bytes" in r.json()["error"]["message"]


def test_chunked_body_over_limit_is_413(http, server_config):
    def chunks():
        for _ in range(server_config.max_body_bytes // 4096 + 2):
            yield b" " * 4096

    r = http.post("/api/embed", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "--max-body-bytes" in r.json()["error"]


def test_search_k_over_limit_is_400(http, docs_collection):
    r = http.post("/search", json={"collection": docs_collection, "query": "cat", "k": 10_000})
    assert r.status_code == 400
    assert "k=10000" in r.json()["error"]["message"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": API_KEY},
                                     {"Authorization": f"Basic {API_KEY}"}])
def test_missing_or_wrong_key_is_401(auth_url, headers):
    r = httpx.post(f"{auth_url}/v1/embeddings", json={"input": "a"}, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert API_KEY not in r.text
    r = httpx.post(f"{auth_url}/api/embed", json={"model": "all-MiniLM-L6-v2", "input": "a"}, headers=headers)
    assert r.status_code == 401
    assert isinstance(r.json()["error"], str)


def test_openai_client_with_key_is_200_without_is_401(auth_url, minilm):
    import openai

    good = openai.OpenAI(base_url=f"{auth_url}/v1", api_key=API_KEY, max_retries=0)
    resp = good.embeddings.create(model="all-MiniLM-L6-v2", input=["hello"])
    assert len(resp.data[0].embedding) == 384
    bad = openai.OpenAI(base_url=f"{auth_url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.embeddings.create(model="all-MiniLM-L6-v2", input=["hello"])


def test_ollama_client_with_key(auth_url):
    import ollama

    good = ollama.Client(host=auth_url, headers={"Authorization": f"Bearer {API_KEY}"})
    assert len(good.embed(model="all-MiniLM-L6-v2", input="hi").embeddings[0]) == 384
    with pytest.raises(ollama.ResponseError) as ei:
        ollama.Client(host=auth_url).embed(model="all-MiniLM-L6-v2", input="hi")
    assert ei.value.status_code == 401


def test_health_and_page_need_no_key_and_show_no_secret(auth_url):
    for path in ("/health", "/", "/openapi.json"):
        r = httpx.get(f"{auth_url}{path}")
        assert r.status_code == 200, path
        assert API_KEY not in r.text
    spec = httpx.get(f"{auth_url}/openapi.json").json()
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_key_never_logged(auth_url, caplog):
    caplog.set_level(logging.DEBUG)
    httpx.post(f"{auth_url}/v1/embeddings", json={"input": "a"}, headers={"Authorization": "Bearer nope-123"})
    httpx.post(f"{auth_url}/v1/embeddings", json={"input": "a"}, headers={"Authorization": f"Bearer {API_KEY}"})
    assert all(API_KEY not in rec.getMessage() and "nope-123" not in rec.getMessage() for rec in caplog.records)


def test_config_repr_hides_key():
    from pydantic import SecretStr

    from obembed.server.app import ServerConfig

    assert API_KEY not in repr(ServerConfig(api_key=SecretStr(API_KEY)))
