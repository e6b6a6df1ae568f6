"""``obembed serve --rerank-model``: ``POST /v1/rerank`` on a real uvicorn server, used by real clients of the
Cohere / Jina shape (httpx as Cohere's client sends it, and obembed's own ``cohere:``/``rerank-api:``/``jina:``
rerankers, which speak to the services themselves)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from obembed.errors import ModelNotFoundError, ProviderStatusError
from obembed.providers.rerank import load_reranker
from obembed.server.app import ServerConfig, create_app
from tests.server.serverkit import API_KEY, run_server

QUERY = "which tool repairs an ext4 file system"
DOCS = [
    "e2fsprogs: ext2/ext3/ext4 file system utilities, e2fsck checks and repairs",
    "GNU Image Manipulation Program: edit photos and draw images",
    "xfsprogs: utilities for managing the XFS file system",
    "PostgreSQL is an object-relational SQL database server",
    "東京は日本の首都です。",
]


@pytest.fixture(scope="module")
def reranker(tiny_cross_encoder: Path) -> Any:
    return load_reranker(f"cross-encoder:{tiny_cross_encoder}").load()


@pytest.fixture(scope="module")
def server(minilm: Any, reranker: Any) -> Iterator[str]:
    app = create_app(minilm, config=ServerConfig(max_inputs=8, max_chars=2000), reranker=reranker)
    with run_server(app) as url:
        yield url


def test_cohere_shaped_client(server: str, reranker: Any, tiny_cross_encoder: Path) -> None:
    want = reranker.rerank(QUERY, DOCS)
    # what Cohere's client sends to POST /v2/rerank
    r = httpx.post(server + "/v2/rerank", json={"model": tiny_cross_encoder.name, "query": QUERY, "documents": DOCS,
                                                "top_n": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["index"] for x in body["results"]] == [h.index for h in want[:3]]
    assert [x["relevance_score"] for x in body["results"]] == pytest.approx([h.score for h in want[:3]], abs=1e-6)
    assert "document" not in body["results"][0]
    assert body["meta"]["billed_units"]["search_units"] == 1
    assert body["usage"]["total_tokens"] > 0
    assert body["id"]


def test_jina_shaped_client_with_objects_and_documents(server: str, reranker: Any) -> None:
    r = httpx.post(server + "/v1/rerank", json={"query": QUERY, "documents": [{"text": d} for d in DOCS],
                                                "return_documents": True})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["document"]["text"] for x in results] == [DOCS[h.index] for h in reranker.rerank(QUERY, DOCS)]


@pytest.mark.parametrize(("backend", "path"), [("rerank-api", "/v1"), ("cohere", "/v2"), ("jina", "/v1"),
                                               ("infinity", "")])
def test_obembed_rerankers_as_clients(server: str, reranker: Any, tiny_cross_encoder: Path,
                                      backend: str, path: str) -> None:
    client = load_reranker(f"{backend}:{tiny_cross_encoder.name}", base_url=server + path, api_key="unused-key",
                           max_documents=2)  # several requests per query: the scores must still line up
    got = client.rerank(QUERY, DOCS)
    want = reranker.rerank(QUERY, DOCS)
    assert [h.index for h in got] == [h.index for h in want]
    assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-6)


def test_refusals(server: str, tiny_cross_encoder: Path) -> None:
    r = httpx.post(server + "/v1/rerank", json={"model": "other-model", "query": QUERY, "documents": DOCS})
    assert r.status_code == 404
    assert "not served here" in r.json()["error"]["message"]
    r = httpx.post(server + "/v1/rerank", json={"query": QUERY, "documents": DOCS * 2})
    assert r.status_code == 400
    assert "--max-inputs" in r.json()["error"]["message"]
    r = httpx.post(server + "/v1/rerank", json={"query": QUERY, "documents": ["fine", "  "]})
    assert r.status_code == 400
    assert "document 1" in r.json()["error"]["message"]
    r = httpx.post(server + "/v1/rerank", json={"query": QUERY, "documents": ["x" * 3000]})
    assert r.status_code == 400
    r = httpx.post(server + "/v1/rerank", json={"query": QUERY, "documents": []})
    assert r.status_code == 200
    assert r.json()["results"] == []
    with pytest.raises(ModelNotFoundError):
        load_reranker("rerank-api:other-model", base_url=server + "/v1", max_retries=0).rerank(QUERY, DOCS)


def test_no_reranker_and_api_key(minilm: Any, reranker: Any, tiny_cross_encoder: Path) -> None:
    from pydantic import SecretStr

    with run_server(create_app(minilm)) as url:
        r = httpx.post(url + "/v1/rerank", json={"query": QUERY, "documents": DOCS})
        assert r.status_code == 404
        assert "--rerank-model" in r.json()["error"]["message"]
    app = create_app(minilm, config=ServerConfig(api_key=SecretStr(API_KEY)), reranker=reranker)
    with run_server(app) as url:
        assert httpx.post(url + "/v1/rerank", json={"query": QUERY, "documents": DOCS}).status_code == 401
        with pytest.raises(ProviderStatusError):
            load_reranker(f"rerank-api:{tiny_cross_encoder.name}", base_url=url + "/v1", api_key="wrong-key-123456",
                          max_retries=0).rerank(QUERY, DOCS)
        ok = load_reranker(f"rerank-api:{tiny_cross_encoder.name}", base_url=url + "/v1", api_key=API_KEY)
        assert len(ok.rerank(QUERY, DOCS)) == len(DOCS)
