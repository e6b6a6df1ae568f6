"""Token-sorted batching, without a model (the thread choice: test_threads.py)."""

from __future__ import annotations

import numpy as np
import pytest

from obembed.errors import ProviderResponseError
from obembed.providers._batching import (
    padded_tokens,
    plan_batches,
    run_sorted,
)

# token lengths shaped like the Debian descriptions (p50 ~78, a long tail up to the 256 cut)
RNG = np.random.default_rng(7)
LENGTHS = [int(x) for x in np.clip(RNG.lognormal(4.35, 0.55, 500), 5, 256)]


def test_every_index_once_sorted_and_within_budget() -> None:
    batches = plan_batches(LENGTHS, token_budget=4096, max_items=64)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(LENGTHS)))
    for b in batches:
        longest = max(LENGTHS[i] for i in b)
        assert len(b) <= 64
        assert len(b) == 1 or len(b) * longest <= 4096
        assert [LENGTHS[i] for i in b] == sorted((LENGTHS[i] for i in b), reverse=True)
    # longest first across batches
    assert LENGTHS[batches[0][0]] == max(LENGTHS)


def test_an_item_longer_than_the_budget_gets_its_own_batch() -> None:
    assert plan_batches([10, 5000, 10], token_budget=1000) == [[1], [0, 2]]


def test_sorted_batches_pad_far_less_than_unsorted_chunks() -> None:
    sorted_work = padded_tokens(LENGTHS, plan_batches(LENGTHS, token_budget=8192))
    chunks = [list(range(i, min(i + 32, len(LENGTHS)))) for i in range(0, len(LENGTHS), 32)]
    unsorted_work = padded_tokens(LENGTHS, chunks)
    real = sum(LENGTHS)
    assert sorted_work < 1.3 * real  # little padding (the sparse long tail costs most of it)
    assert unsorted_work > 1.8 * sorted_work  # fixed chunks of 32 pay for their longest text


def test_run_sorted_returns_rows_in_input_order() -> None:
    seen: list[list[int]] = []

    def embed(idx: list[int]) -> np.ndarray:
        seen.append(idx)
        return np.array([[i, LENGTHS[i]] for i in idx], dtype=np.float32)

    out = run_sorted(LENGTHS, embed, token_budget=2048)
    assert out.shape == (len(LENGTHS), 2)
    assert out[:, 0].tolist() == list(range(len(LENGTHS)))
    assert len(seen) > 1
    assert run_sorted([], embed, dimension=2).shape == (0, 2)


def test_run_sorted_refuses_a_batch_with_the_wrong_row_count() -> None:
    with pytest.raises(ProviderResponseError, match="batch of 2 items"):
        run_sorted([3, 3], lambda idx: np.zeros((1, 4)))
