"""Fixtures of the reranker tests: real local rerank servers (session), a tiny cross-encoder built here."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .fakerank import FakeRerankAPI

RERANK_KEY = "sk-rr-" + secrets.token_hex(16)
DASHSCOPE_KEY = "sk-ds-" + secrets.token_hex(16)
FAST_RETRY: dict[str, Any] = {"retry_initial": 0.001, "retry_jitter": 0.001, "retry_max_wait": 0.01}


@pytest.fixture(scope="session")
def v1_server() -> Iterator[FakeRerankAPI]:
    with FakeRerankAPI("v1", api_key=RERANK_KEY) as api:
        yield api


@pytest.fixture(scope="session")
def tei_server() -> Iterator[FakeRerankAPI]:
    with FakeRerankAPI("tei") as api:
        yield api


@pytest.fixture(scope="session")
def dashscope_rerank_server() -> Iterator[FakeRerankAPI]:
    with FakeRerankAPI("dashscope", api_key=DASHSCOPE_KEY) as api:
        yield api


@pytest.fixture(autouse=True)
def _reset_rerank_servers(request: pytest.FixtureRequest) -> None:
    for name in ("v1_server", "tei_server", "dashscope_rerank_server"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path, builders: Any) -> Path:
    """Folder of a one-label cross-encoder built for the tests from the bundled MiniLM weights."""
    return builders.build_cross_encoder(tmp_path_factory.mktemp("ce") / "minilm-ce", minilm_path)
