"""Tiny local models (random weights) saved and loaded through the real ``from_pretrained`` path."""

from __future__ import annotations

from pathlib import Path

import pytest
from _models import add_st_modules, build_bert, build_qwen3


@pytest.fixture(scope="session")
def tiny_bge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT folder named like the BGE family (no modules.json): the family table says CLS."""
    return build_bert(tmp_path_factory.mktemp("models") / "tiny-bge-small")


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Qwen3 folder named like Qwen3-Embedding (no modules.json): last-token pooling, left padding."""
    return build_qwen3(tmp_path_factory.mktemp("models") / "tiny-qwen3-embedding")


@pytest.fixture(scope="session")
def tiny_qwen3_right(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_qwen3(tmp_path_factory.mktemp("models") / "tiny-qwen3-embedding-right", padding_side="right")


@pytest.fixture(scope="session")
def tiny_st_cls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT folder with modules.json saying CLS + Normalize and a query prompt (name says nothing)."""
    folder = build_bert(tmp_path_factory.mktemp("models") / "plain-model", seed=1)
    return add_st_modules(folder, "cls", normalize=True, prompts={"query": "search ", "document": ""})
