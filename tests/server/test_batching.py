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
