"""The Ollama API, driven by the official ``ollama`` client against the real server."""

from __future__ import annotations

import numpy as np
import pytest
from serverkit import cosine

TEXTS = ["Mount Fuji is in Japan.", "富士山は日本にあります。", "Completely unrelated text about databases."]


@pytest.fixture(scope="module")
def client(base_url):
    import ollama

    return ollama.Client(host=base_url, timeout=60)


def test_embed_list_matches_in_process(client, minilm):
    expected = minilm.embed_documents(TEXTS)
    resp = client.embed(model="all-MiniLM-L6-v2", input=TEXTS)
    assert len(resp.embeddings) == len(TEXTS)
    for got, want in zip(resp.embeddings, expected, strict=True):
        assert cosine(got, want) >= 0.9999
        assert abs(np.linalg.norm(got) - 1) < 1e-4
    assert resp.prompt_eval_count > len(TEXTS)
    assert resp.model == "all-MiniLM-L6-v2"


def test_embed_single_string_with_latest_tag(client, minilm):
    resp = client.embed(model="minilm:latest", input=TEXTS[0])
    assert len(resp.embeddings) == 1
    assert cosine(resp.embeddings[0], minilm.embed_query(TEXTS[0])) >= 0.9999


def test_dimensions(client, minilm):
    resp = client.embed(model="minilm", input=TEXTS[:2], dimensions=128)
    full = minilm.embed_documents(TEXTS[:2])
    for got, want in zip(resp.embeddings, full, strict=True):
        assert len(got) == 128
        assert abs(np.linalg.norm(got) - 1) < 1e-4
        assert cosine(got, want[:128]) >= 0.9999


def test_truncate_false_too_long_is_400_true_is_200(client):
    import ollama

    long_text = "word " * 400  # > 256 tokens
    with pytest.raises(ollama.ResponseError) as ei:
        client.embed(model="minilm", input=["short", long_text], truncate=False)
    assert ei.value.status_code == 400
    assert "input 1" in ei.value.error
    assert "256" in ei.value.error
    resp = client.embed(model="minilm", input=["short", long_text], truncate=True)
    assert len(resp.embeddings) == 2
    assert resp.prompt_eval_count <= 2 * 256


@pytest.mark.parametrize("empty", ["", []])
def test_empty_input_gives_no_vectors_like_ollama(http, empty):
    r = http.post("/api/embed", json={"model": "minilm", "input": empty})
    assert r.status_code == 200
    assert r.json()["embeddings"] == []


def test_unknown_model_is_404_with_ollama_error_body(client, http):
    import ollama

    with pytest.raises(ollama.ResponseError) as ei:
        client.embed(model="nomic-embed-text", input="a")
    assert ei.value.status_code == 404
    assert "not found" in ei.value.error
    r = http.post("/api/embed", json={"input": "a"})
    assert r.status_code == 400
    assert r.json() == {"error": r.json()["error"]}
    assert "model is required" in r.text


def test_bad_body_is_ollama_shaped_400(http):
    r = http.post("/api/embed", json={"model": "minilm", "input": [1, 2]})
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str)


def test_legacy_embeddings(client, minilm):
    resp = client.embeddings(model="minilm", prompt=TEXTS[0])
    assert cosine(resp.embedding, minilm.embed_query(TEXTS[0])) >= 0.9999
    assert client.embeddings(model="minilm", prompt="").embedding == []


def test_list_models(client):
    names = [m.model for m in client.list().models]
    assert names == ["minilm"]
