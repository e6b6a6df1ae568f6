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


def build_cross_encoder(folder: Path, minilm: Path, *, num_labels: int = 1, seed: int = 0) -> Path:
    """A cross-encoder from the bundled MiniLM weights plus a one-label classification head.

    No trained cross-encoder is available offline; the head is random (seeded) with a wide spread so scores
    differ clearly between pairs. Speed and the torch-vs-ONNX equality do not depend on its training.
    """
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(seed)
    ce = CrossEncoder(str(minilm), num_labels=num_labels, device="cpu", local_files_only=True)
    head = ce[0].auto_model.classifier
    with torch.no_grad():
        head.weight.normal_(0.0, 0.5)
        head.bias.zero_()
    ce.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    """Folder of a one-label MiniLM cross-encoder built for the tests."""
    return build_cross_encoder(tmp_path_factory.mktemp("ce") / "minilm-ce", minilm_path)
