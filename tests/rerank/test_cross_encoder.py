"""``cross-encoder:`` on a real (tiny, test-built) MiniLM cross-encoder: ONNX and torch paths against
sentence-transformers' own ``CrossEncoder.predict``."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obembed.errors import ConfigError, ModelNotFoundError, ProviderError
from obembed.providers.rerank import load_reranker

QUERY = "which package manages ext4 file systems"
POOL = [
    "e2fsprogs: utilities for the ext2, ext3 and ext4 file systems",
    "a library to parse JSON quickly",
    "Debian package: utilities to manage ext2, ext3 and ext4 file systems, including e2fsck and mke2fs.",
    "東京は日本の首都です。",
    "x",
    "btrfs-progs: checksumming copy on write file system utilities",
    "a terminal multiplexer " * 6,
    "fonts for the Japanese language",
    "xfsprogs: utilities for managing the XFS file system",
    "  leading and trailing spaces  ",
    "line one\nline two\ttabbed",
    "Ünïcödé àccents, emoji 🙂 and CAPITALS 12345",
]
LONG = "a very long package description that runs past the maximum length of the model. " * 50


@pytest.fixture(scope="module")
def reference(tiny_cross_encoder: Path) -> Any:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_cross_encoder), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def onnx_rr(tiny_cross_encoder: Path) -> Any:
    return load_reranker(f"cross-encoder:{tiny_cross_encoder}").load()


@pytest.fixture(scope="module")
def torch_rr(tiny_cross_encoder: Path) -> Any:
    return load_reranker(f"cross-encoder:{tiny_cross_encoder}", runtime="torch").load()


def predict(reference: Any, docs: list[str], **kw: Any) -> np.ndarray:
    return np.asarray(reference.predict([(QUERY, d) for d in docs], show_progress_bar=False, **kw), np.float64)


def test_onnx_path_gives_crossencoder_predict_scores(onnx_rr: Any, reference: Any) -> None:
    assert onnx_rr.runtime == "onnx-fp32"
    docs = [*POOL, LONG]
    want = predict(reference, docs)
    result = onnx_rr.score(QUERY, docs)
    np.testing.assert_allclose(result.scores, want, rtol=0, atol=1e-6)
    assert [h.index for h in onnx_rr.rerank(QUERY, docs)] == list(np.lexsort((np.arange(len(docs)), -want)))
    assert result.truncated == [len(docs) - 1]  # the long pair was cut to the model's 512 tokens, and counted
    assert np.ptp(want) > 0.1  # the test model's head spreads the scores: a wrong order would show


def test_torch_path_gives_the_same_scores(torch_rr: Any, onnx_rr: Any, reference: Any) -> None:
    assert torch_rr.runtime == "torch"
    docs = [*POOL, LONG]
    np.testing.assert_allclose(torch_rr.score(QUERY, docs).scores, predict(reference, docs), rtol=0, atol=1e-6)
    assert torch_rr.score(QUERY, docs).truncated == [len(docs) - 1]


def test_activation_none_gives_logits(tiny_cross_encoder: Path, reference: Any) -> None:
    import torch

    for runtime in ("onnx", "torch"):
        rr = load_reranker(f"cross-encoder:{tiny_cross_encoder}?activation=none&runtime={runtime}")
        logits = rr.score(QUERY, POOL).scores
        np.testing.assert_allclose(logits, predict(reference, POOL, activation_fn=torch.nn.Identity()), atol=1e-5)
        assert (logits < 0).any()  # raw logits, not probabilities


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, len(POOL) - 1), max_size=30), st.integers(1, 600))
def test_any_candidate_list_and_batching_scores_as_brute_force(onnx_rr: Any, reference: Any,
                                                               picks: list[int], budget: int) -> None:
    """Whatever the list (duplicates included) and however it is batched, each pair keeps its score and the
    order is the brute-force one (score descending, ties in input order)."""
    per_doc = predict(reference, POOL)
    docs = [POOL[i] for i in picks]
    onnx_rr.token_budget = budget
    try:
        hits = onnx_rr.rerank(QUERY, docs)
    finally:
        onnx_rr.token_budget = None
    want = np.array([per_doc[i] for i in picks])
    np.testing.assert_allclose([h.score for h in sorted(hits, key=lambda h: h.index)], want, atol=1e-6)
    got_scores = np.array([h.score for h in hits])
    assert (np.diff(got_scores) <= 0).all()
    for a, b in itertools.pairwise(hits):
        if a.score == b.score:
            assert a.index < b.index


def test_multi_label_model_is_refused(tmp_path: Path, minilm_path: Path, builders: Any) -> None:
    folder = builders.build_cross_encoder(tmp_path / "two", minilm_path, num_labels=2)
    with pytest.raises(ProviderError, match="2 labels"):
        load_reranker(f"cross-encoder:{folder}", runtime="onnx").load()
    with pytest.raises(ConfigError, match="num_labels=1"):
        load_reranker(f"cross-encoder:{folder}").load()  # auto: no ONNX, and torch refuses it too


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_reranker(f"cross-encoder:{tmp_path}/nothing-here", runtime="torch").load()
    with pytest.raises(ModelNotFoundError):
        load_reranker(f"cross-encoder:{tmp_path}/nothing-here").load()


def test_onnx_runtime_refuses_a_gpu_device() -> None:
    with pytest.raises(ConfigError, match="runtime=torch"):
        load_reranker("cross-encoder:m", runtime="onnx", device="cuda")
