"""Every local path against the torch reference (plain ``SentenceTransformer.encode()``) on real text."""

from __future__ import annotations

import numpy as np
import pytest

import obembed
from obembed.providers.onnx import FastTokenizer

from .conftest import cosines

FP32 = 0.9999
# int8 (per-channel, reduce_range): measured min 0.990 / mean 0.993 on 41 Debian texts; 0.981 on the probe set
INT8_MIN, INT8_MEAN = 0.97, 0.985


def test_st_sorted_batching_matches_plain_encode(st_result, reference) -> None:
    assert st_result.vectors.shape == reference.shape
    assert cosines(st_result.vectors, reference).min() >= FP32


def test_st_sorted_batching_with_a_small_budget_still_matches(texts, reference) -> None:
    small = obembed.load("st:all-MiniLM-L6-v2", device="cpu", token_budget=300)
    # many small batches (300 padded tokens), sorted across the whole input, back in input order
    assert cosines(small.embed_documents(texts[:10]), reference[:10]).min() >= FP32


def test_st_plain_path_still_available(texts, reference) -> None:
    plain = obembed.load("st:all-MiniLM-L6-v2", device="cpu", sorted_batching=False)
    assert cosines(plain.embed_documents(texts[:4]), reference[:4]).min() >= FP32


def test_hf_matches_reference(hf_result, reference) -> None:
    assert cosines(hf_result.vectors, reference).min() >= FP32


def test_onnx_fp32_matches_reference(onnx_result, reference) -> None:
    vecs = onnx_result.vectors
    assert vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert cosines(vecs, reference).min() >= FP32


def test_onnx_int8_close_to_reference_within_its_measured_bound(onnx_int8, int8_result, reference) -> None:
    cos = cosines(int8_result.vectors, reference)
    assert cos.min() >= INT8_MIN
    assert cos.mean() >= INT8_MEAN
    assert cos.mean() < 0.99999  # it really is quantised: not the fp32 vectors
    assert onnx_int8.verification["min_cosine"] >= 0.95


@pytest.mark.parametrize("path", ["minilm", "onnx_fp32", "onnx_int8"])
def test_order_preserved_under_shuffling(path, request, texts, reference) -> None:
    provider = request.getfixturevalue(path)
    sample = list(range(0, len(texts), 3))  # 10 texts of mixed lengths, the long ones included
    perm = np.random.default_rng(3).permutation(sample)
    shuffled = provider.embed_documents([texts[i] for i in perm])
    assert cosines(shuffled, reference[perm]).min() >= (INT8_MIN if path == "onnx_int8" else FP32)


def test_truncation_counted_the_same_on_every_path(minilm, onnx_fp32, texts, st_result, onnx_result,
                                                   hf_result, int8_result) -> None:
    assert st_result.truncated == [len(texts) - 1]  # only the > 256-token text
    assert onnx_result.truncated == st_result.truncated == hf_result.truncated == int8_result.truncated
    assert onnx_result.n_tokens == st_result.n_tokens == hf_result.n_tokens
    assert onnx_fp32.count_tokens(texts) == minilm.count_tokens(texts)
    with pytest.raises(obembed.errors.InvalidInputError, match="limit of 256"):
        onnx_fp32.embed(texts, truncate="error")


def test_shipped_tokenizer_json_trap_is_fixed(minilm_path, minilm, texts, reference, onnx_result) -> None:
    from tokenizers import Tokenizer

    long_text = texts[-2]
    n_tokens = minilm.count_tokens([long_text])[0]
    assert 128 < n_tokens <= 256
    shipped = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
    assert len(shipped.encode(long_text).ids) == 128  # the trap: cut at 128 ...
    assert len(shipped.encode("short").ids) == 128  # ... and padded to 128
    fixed = FastTokenizer(minilm_path / "tokenizer.json", 256)
    assert len(fixed.encode_cut([long_text])[0].ids) == n_tokens
    assert len(fixed.encode_cut(["short"])[0].ids) == 3
    assert cosines(onnx_result.vectors[-2:-1], reference[-2:-1]).min() >= FP32


def test_spaces_one_per_model_and_precision(minilm, hf, onnx_fp32, onnx_int8) -> None:
    assert minilm.space == hf.space == onnx_fp32.space
    assert onnx_int8.space != onnx_fp32.space
    assert onnx_int8.space.endswith("|int8")
    info = onnx_fp32.info()
    assert info["runtime"] == "onnx-fp32"
    assert info["dimension"] == 384
    assert info["space"] == minilm.space


def test_queries_and_empty_input(onnx_fp32, minilm) -> None:
    q = onnx_fp32.embed_query("Which package checks ext4 file systems?")
    assert q.shape == (384,)
    assert cosines(q[None], minilm.embed_query("Which package checks ext4 file systems?")[None])[0] >= FP32
    assert onnx_fp32.embed_documents([]).shape == (0, 384)
    with pytest.raises(obembed.errors.InvalidInputError, match="input 1"):
        onnx_fp32.embed_documents(["ok", "  "])


def test_threads_option_sets_torch_threads(texts) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        one = obembed.load("st:all-MiniLM-L6-v2", device="cpu", threads=1)
        one.embed_documents(texts[:2])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
