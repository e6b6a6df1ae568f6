"""obembed's own remote providers (``openai-compatible:`` and ``ollama:``) round-trip through obembed serve."""

from __future__ import annotations

import numpy as np
import pytest
from serverkit import API_KEY, cosine

import obembed

TEXTS = ["seekdb keeps vectors next to rows", "日本語のテキストも埋め込める", "a third, unrelated sentence"]


@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_openai_compatible_provider(base_url, minilm, fmt):
    remote = obembed.load("openai-compatible:all-MiniLM-L6-v2", base_url=f"{base_url}/v1", encoding_format=fmt)
    got = remote.embed_documents(TEXTS)
    want = minilm.embed_documents(TEXTS)
    assert got.shape == (3, 384)
    for g, w in zip(got, want, strict=True):
        assert cosine(g, w) >= 0.9999


def test_openai_compatible_provider_with_key_and_dimensions(auth_url, minilm):
    remote = obembed.load("openai-compatible:all-MiniLM-L6-v2", base_url=f"{auth_url}/v1/embeddings",
                          api_key=API_KEY, dimensions=96)
    got = remote.embed_documents(TEXTS[:2])
    assert got.shape == (2, 96)
    want = minilm.embed_documents(TEXTS[:2])[:, :96]
    for g, w in zip(got, want, strict=True):
        assert abs(np.linalg.norm(g) - 1) < 1e-4
        assert cosine(g, w) >= 0.9999


def test_openai_compatible_provider_wrong_key(auth_url):
    remote = obembed.load("openai-compatible:all-MiniLM-L6-v2", base_url=f"{auth_url}/v1", api_key="wrong",
                          max_retries=0)
    with pytest.raises(obembed.errors.AuthenticationError):
        remote.embed_documents(["x"])


def test_ollama_provider(base_url, minilm):
    remote = obembed.load("ollama:minilm", host=base_url)
    got = remote.embed_documents(TEXTS)
    want = minilm.embed_documents(TEXTS)
    for g, w in zip(got, want, strict=True):
        assert cosine(g, w) >= 0.9999
    q = remote.embed_query(TEXTS[0])
    assert cosine(q, minilm.embed_query(TEXTS[0])) >= 0.9999


def test_ollama_provider_unknown_model_is_clear(base_url):
    remote = obembed.load("ollama:nomic-embed-text", host=base_url)
    with pytest.raises(obembed.errors.ModelNotFoundError, match="nomic-embed-text"):
        remote.embed_documents(["x"])
