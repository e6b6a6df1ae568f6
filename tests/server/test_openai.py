"""The OpenAI embeddings API, driven by the official ``openai`` client against the real server."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from serverkit import cosine

TEXTS = ["OceanBase stores vectors beside rows.", "猫が窓辺で寝ている。", "A quick brown fox.", "x"]


@pytest.fixture(scope="module")
def client(base_url):
    from openai import OpenAI

    with OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def expected(minilm):
    return minilm.embed_documents(TEXTS)


def test_default_base64_matches_in_process(client, expected):
    resp = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)  # the client asks for base64
    assert [d.index for d in resp.data] == list(range(len(TEXTS)))
    for d in resp.data:
        assert len(d.embedding) == 384
        assert cosine(d.embedding, expected[d.index]) >= 0.9999
    assert resp.model == "minilm"
    assert resp.usage.prompt_tokens == resp.usage.total_tokens > len(TEXTS)


def test_explicit_float(client, expected):
    resp = client.embeddings.create(model="minilm", input=TEXTS, encoding_format="float")
    got = {d.index: d.embedding for d in resp.data}
    assert sorted(got) == list(range(len(TEXTS)))
    for i, v in got.items():
        assert cosine(v, expected[i]) >= 0.9999
        assert abs(np.linalg.norm(v) - 1) < 1e-4


def test_raw_base64_is_little_endian_float32(http, expected):
    r = http.post("/v1/embeddings", json={"input": TEXTS[0], "encoding_format": "base64"})
    assert r.status_code == 200
    vec = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    assert vec.shape == (384,)
    assert cosine(vec, expected[0]) >= 0.9999


def test_single_string_and_model_names(client, expected):
    for name in ("st:all-MiniLM-L6-v2", "all-minilm-l6-v2", "minilm"):
        resp = client.embeddings.create(model=name, input=TEXTS[1])
        assert len(resp.data) == 1
        assert cosine(resp.data[0].embedding, expected[1]) >= 0.9999


def test_dimensions_truncate_and_renormalise(client, expected):
    resp = client.embeddings.create(model="minilm", input=TEXTS[:2], dimensions=64, encoding_format="float")
    for d in resp.data:
        v = np.asarray(d.embedding)
        assert v.shape == (64,)
        assert abs(np.linalg.norm(v) - 1) < 1e-4
        want = expected[d.index][:64] / np.linalg.norm(expected[d.index][:64])
        assert cosine(v, want) >= 0.9999


def test_dimensions_too_large_is_400(client):
    import openai

    with pytest.raises(openai.BadRequestError) as ei:
        client.embeddings.create(model="minilm", input="a", dimensions=1024)
    assert ei.value.status_code == 400
    assert "384" in ei.value.message
    assert ei.value.body["param"] == "dimensions"


def test_unknown_model_is_404_with_openai_error_shape(client):
    import openai

    with pytest.raises(openai.NotFoundError) as ei:
        client.embeddings.create(model="text-embedding-3-large", input="a")
    assert ei.value.body["code"] == "model_not_found"
    assert "minilm" in ei.value.message


@pytest.mark.parametrize(("payload", "needle"), [
    ({"input": ""}, "input 0 is empty"),
    ({"input": ["ok", "  "]}, "input 1 is empty"),
    ({"input": []}, "empty list"),
    ({"input": [1, 2, 3]}, "token arrays"),
    ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
    ({"model": "minilm"}, "input"),
])
def test_bad_requests_are_400_naming_the_problem(http, payload, needle):
    r = http.post("/v1/embeddings", json=payload)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert needle in err["message"]
    assert err["type"] == "invalid_request_error"


def test_models_list(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == ["minilm"]


def test_health(http):
    body = http.get("/health").json()
    assert body["status"] == "ok"
    assert body["models"][0]["dimension"] == 384
    assert body["models"][0]["spec"] == "st:all-MiniLM-L6-v2"


def test_openapi_spec_lists_the_endpoints(http):
    spec = http.get("/openapi.json").json()
    for path in ("/v1/embeddings", "/v1/models", "/api/embed", "/api/embeddings", "/health", "/search",
                 "/collections"):
        assert path in spec["paths"], path
