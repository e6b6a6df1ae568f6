"""Helpers of the server tests (imported by conftest and the test modules): run the app on a free port,
cosine, a gated provider."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from obembed.providers.base import Provider

API_KEY = "test-key-3f9c2b7a1e"  # a test value, never a real secret

DOCS = [
    ("d1", "OceanBase is a distributed relational database with vector search.", "en", 2024),
    ("d2", "The cat sat on the warm windowsill all afternoon.", "en", 2021),
    ("d3", "Mount Fuji is the highest mountain in Japan.", "en", 2019),
    ("d4", "東京は日本の首都です。", "ja", 2023),
    ("d5", "Python is a popular programming language for data science.", "en", 2022),
]


@contextmanager
def run_server(app: Any) -> Iterator[str]:
    """Run ``app`` on uvicorn in a daemon thread on a free loopback port; yield its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class GatedProvider(Provider):
    """The real MiniLM behind a gate: ``embed_batch`` waits for ``gate`` before running the model.

    Lets back-pressure and batching tests hold the worker deterministically (no timing races);
    the vectors are still MiniLM's own.
    """

    name = "gated"

    def __init__(self, inner: Provider) -> None:
        super().__init__(inner.model)
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.max_input_tokens = inner.max_input_tokens
        self._dimension = inner.dimension

    def count_tokens(self, texts: Sequence[str], *, kind: Any = "document") -> list[int]:
        return self.inner.count_tokens(texts, kind=kind)

    def embed_batch(self, items: Sequence[Any], *, kind: Any) -> Any:
        self.entered.set()
        if not self.gate.wait(30):
            raise TimeoutError("gate never opened")
        self.batches.append(len(items))
        return self.inner.embed_batch(items, kind=kind)

    def embed_many(self, texts: Sequence[str], *, kind: Any, token_counts: Sequence[int]) -> Any:
        return self.embed_batch(texts, kind=kind)
