"""Dynamic batching and back-pressure, with the real MiniLM behind a gate (no timing races)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from serverkit import GatedProvider, cosine, run_server


@pytest.fixture
def gated(minilm):
    from obembed.server.app import ServerConfig, create_app

    provider = GatedProvider(minilm)
    app = create_app([provider], config=ServerConfig(max_queue=4, batch_wait_ms=1))
    with run_server(app) as url:
        yield provider, url
        provider.gate.set()


def _wait_pending(url: str, n: int) -> None:
    import time

    deadline = time.monotonic() + 20
    while httpx.get(f"{url}/health").json()["models"][0]["pending"] < n:
        assert time.monotonic() < deadline, "requests never queued"
        time.sleep(0.01)


def test_queue_full_is_503_with_retry_after(gated):
    provider, url = gated
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(httpx.post, f"{url}/v1/embeddings", json={"input": ["a", "b", "c"]}, timeout=60)
        assert provider.entered.wait(20)  # the worker holds 3 texts
        r = httpx.post(f"{url}/v1/embeddings", json={"input": ["d", "e"]})  # 3 + 2 > 4
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "server_busy"
        r = httpx.post(f"{url}/api/embed", json={"model": "all-MiniLM-L6-v2", "input": ["d", "e"]})
        assert r.status_code == 503
        assert "busy" in r.json()["error"]
        assert "retry-after" in r.headers
        fits = pool.submit(httpx.post, f"{url}/v1/embeddings", json={"input": ["d"]}, timeout=60)  # 3 + 1 <= 4
        _wait_pending(url, 4)
        provider.gate.set()
        assert first.result().status_code == 200
        assert fits.result().status_code == 200
    assert httpx.get(f"{url}/health").json()["models"][0]["rejected"] == 2


def test_concurrent_requests_share_one_model_batch(gated, minilm):
    provider, url = gated
    texts = ["one cat", "two dogs", "three birds", "four fish"]
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(httpx.post, f"{url}/v1/embeddings", json={"input": texts[0], "encoding_format": "float"},
                            timeout=60)
        assert provider.entered.wait(20)
        rest = [pool.submit(httpx.post, f"{url}/v1/embeddings", json={"input": t, "encoding_format": "float"},
                            timeout=60) for t in texts[1:]]
        _wait_pending(url, 4)
        provider.gate.set()
        answers = [first.result(), *(f.result() for f in rest)]
    assert provider.batches == [1, 3]  # the three that queued while the model was busy went in together
    expected = minilm.embed_documents(texts)
    for r, want in zip(answers, expected, strict=True):
        assert r.status_code == 200
        assert cosine(np.asarray(r.json()["data"][0]["embedding"]), want) >= 0.9999


def test_batcher_splits_results_back_in_order(minilm):
    from obembed.server.batcher import Batcher

    b = Batcher(minilm, max_wait_s=0.05)
    try:
        futs = [b.submit([f"text {i}", f"more {i}"]) for i in range(5)]
        results = [f.result(60) for f in futs]
    finally:
        b.close()
    for i, res in enumerate(results):
        want = minilm.embed_documents([f"text {i}", f"more {i}"])
        assert res.vectors.shape == (2, 384)
        assert cosine(res.vectors[0], want[0]) >= 0.9999
        assert cosine(res.vectors[1], want[1]) >= 0.9999
    assert b.stats["batches"] < 5  # gathered
    assert b.stats["texts"] == 10


@pytest.mark.parametrize("lengths", [[200, 30, 40, 180, 90, 100, 35, 60], [50] * 8, [7], [256, 1, 256, 1]])
def test_split_by_length_partitions_and_never_costs_more(lengths):
    from obembed.server.batcher import split_by_length

    groups = split_by_length(lengths, overhead=48)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))

    def cost(gs):
        return sum(len(g) * max(lengths[i] for i in g) + 48 for g in gs)

    assert cost(groups) <= cost([list(range(len(lengths)))])
    if len(set(lengths)) == 1:
        assert len(groups) == 1  # equal lengths: nothing to gain from splitting


def test_gathered_batch_split_by_length_gives_the_same_vectors(minilm):
    from obembed.server.batcher import Batcher

    texts = ["short", "a much longer text " * 20, "tiny", "medium length sentence about databases " * 3]
    b = Batcher(minilm, max_wait_s=0.05, split_padding=True)
    try:
        res = b.submit(texts).result(60)
    finally:
        b.close()
    want = minilm.embed_documents(texts)
    for got, w in zip(res.vectors, want, strict=True):
        assert cosine(got, w) >= 0.9999


def test_several_models_served_by_name(minilm):
    from obembed.server.app import create_app

    second = GatedProvider(minilm)
    second.gate.set()
    app = create_app([("first", minilm), ("second", second)])
    with run_server(app) as url:
        ids = [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]
        assert ids == ["first", "second"]
        r = httpx.post(f"{url}/v1/embeddings", json={"model": "second", "input": ["a", "b"]}, timeout=60)
        assert r.status_code == 200
        assert r.json()["model"] == "second"
        r = httpx.post(f"{url}/v1/embeddings", json={"model": "gated:all-MiniLM-L6-v2", "input": "c"}, timeout=60)
        assert r.json()["model"] == "second"
        r = httpx.post(f"{url}/v1/embeddings", json={"input": "d"}, timeout=60)  # no model: the first
        assert r.json()["model"] == "first"
        stats = {m["name"]: m for m in httpx.get(f"{url}/health").json()["models"]}
    assert stats["second"]["texts"] == 3
    assert stats["first"]["texts"] == 1
    assert second.batches == [2, 1]
