"""onnx: exports of tiny local folders whose files change: the torch reference follows the content, and
the tokenizer comes from the folder being loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import obembed
from obembed.providers.onnx import FP32_MIN_COSINE, OnnxProvider, ensure_export

WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "vector", "search", "hello", "world", "is", "fast"]
TEXTS = ["the cat sat on the mat", "hello world", "a dog", "vector search is fast"]


def build_tiny(folder: Path, seed: int, words: list[str] = WORDS) -> Path:
    """A 2-layer BERT with random weights and a word-level fast tokenizer (the shared builder)."""
    from _models import build_bert

    return build_bert(folder, seed, words=words)


def test_export_after_the_folder_changed_is_verified_against_the_new_model(tmp_path: Path) -> None:
    folder = build_tiny(tmp_path / "tiny-plain", seed=0)
    cache = tmp_path / "cache"
    before, _ = ensure_export(str(folder), cache_dir=cache)
    build_tiny(folder, seed=7)  # retrained in place: new weights, same path and max length
    after, manifest = ensure_export(str(folder), cache_dir=cache)  # a stale torch reference fails the probe
    assert after.parent != before.parent  # a new content key, a new export
    assert manifest["files"]["fp32"]["verified"]["min_cosine"] >= FP32_MIN_COSINE
    onnx = OnnxProvider(str(folder), cache_dir=str(cache), export=False)
    hf = obembed.load(f"hf:{folder}", device="cpu")
    assert ((onnx.embed_documents(TEXTS) * hf.embed_documents(TEXTS)).sum(1)).min() >= FP32_MIN_COSINE


def test_tokenizer_comes_from_the_folder_loaded(tmp_path: Path) -> None:
    first = build_tiny(tmp_path / "one" / "tiny-plain", seed=1)
    second = tmp_path / "two" / "tiny-plain"
    shutil.copytree(first, second)  # same content: one export, whose manifest names the first folder
    cache = tmp_path / "cache"
    _, manifest = ensure_export(str(first), cache_dir=cache)
    assert manifest["tokenizer"] == str(first / "tokenizer.json")
    # the first folder's tokenizer changes afterwards (its word ids shuffled); the copy is untouched
    build_tiny(tmp_path / "scratch", seed=1, words=WORDS[::-1])
    shutil.copy(tmp_path / "scratch" / "tokenizer.json", first / "tokenizer.json")
    onnx = OnnxProvider(str(second), cache_dir=str(cache), export=False)
    hf = obembed.load(f"hf:{second}", device="cpu")
    np.testing.assert_allclose(onnx.embed_documents(TEXTS), hf.embed_documents(TEXTS), atol=1e-4)
