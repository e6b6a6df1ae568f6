"""Token-sorted batching and the worker layout (threads per process) for local models.

Padding is most of the gap between what a CPU could do and what a naive encoder does: a batch costs
``items x longest`` token slots, so short texts batched with long ones pay for the long one's length.
The helpers here sort the *whole input* by true token length (the tokenizer's own count, which the
provider needs anyway for truncation accounting), cut batches by a padded-token budget, and put the
results back in input order.

Threads per process are chosen in :mod:`._threads` (measured from /proc/stat); :func:`run_sorted` calls the
provider's ``before_batch`` hook between batches so a long job can follow the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ProviderResponseError

__all__ = [
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_TOKEN_BUDGET",
    "ONNX_PAIR_TOKEN_BUDGET",
    "ONNX_TOKEN_BUDGET",
    "padded_tokens",
    "plan_batches",
    "run_sorted",
]

DEFAULT_TOKEN_BUDGET = 2048
"""Padded token slots per batch (items x longest): 8 texts of 256 tokens, 32 of 64. Measured on this project's
2-core box (idle, MiniLM, 400 Debian texts, median of 3): st: 76 texts/s at 2048 vs 55 at 8192; smaller batches
stay in cache (benchmarks/RESULTS.md, "token budget")."""
ONNX_TOKEN_BUDGET = 512
"""The onnx: embedders' default. Zen 4 with AVX-512 (MiniLM, 400 texts): 87 texts/s at 1024 vs 78 at 2048 and 60
at 8192. Zen 3 with AVX2 only (MiniLM, 200 texts, fresh sessions, 10 interleaved rounds): 512 beat 1024 in 7 of 10
rounds, median 1.64x vs 1.47x raw sentence-transformers; 768 1.61x (benchmarks/RESULTS.md, "Quiet reruns 2")."""
ONNX_PAIR_TOKEN_BUDGET = 1024
"""The onnx: cross-encoder's default (pairs are long: a query and a passage); measured at this size."""
DEFAULT_MAX_ITEMS = 256
"""Upper bound on items per batch, whatever their length."""


def plan_batches(
    lengths: Sequence[int],
    *,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, longest first, each within the padded-token budget.

    Every index appears exactly once. Items are sorted by length (descending, stable), so a batch's
    padded size is ``len(batch) * lengths[batch[0]]``; a batch is closed before it would exceed
    ``token_budget`` or ``max_items`` (a single item longer than the budget forms its own batch).
    Longest first puts the memory peak at the start, where a failure costs least.
    """
    budget = max(1, int(token_budget))
    max_items = max(1, int(max_items))
    order = sorted(range(len(lengths)), key=lambda i: -int(lengths[i]))
    batches: list[list[int]] = []
    start = 0
    while start < len(order):
        longest = max(1, int(lengths[order[start]]))
        size = max(1, min(budget // longest, max_items))
        batches.append(order[start : start + size])
        start += size
    return batches


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Token slots the batches really compute (items x longest, summed): the work after padding."""
    return sum(len(b) * max(int(lengths[i]) for i in b) for b in batches if b)


def run_sorted(
    lengths: Sequence[int],
    embed: Callable[[list[int]], np.ndarray],
    *,
    dimension: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_items: int = DEFAULT_MAX_ITEMS,
    before_batch: Callable[[], object] | None = None,
) -> np.ndarray:
    """Embed every item through ``embed(indices) -> (len(indices), d)`` in token-sorted batches.

    Returns a float32 ``(n, d)`` array in input order (row ``i`` is item ``i``). ``before_batch`` runs before
    each batch (the providers re-check their thread count there: cheap unless a re-measurement is due).
    """
    n = len(lengths)
    if n == 0:
        return np.zeros((0, dimension or 0), dtype=np.float32)
    out: np.ndarray | None = None
    for idx in plan_batches(lengths, token_budget=token_budget, max_items=max_items):
        if before_batch is not None:
            before_batch()
        vecs = np.asarray(embed(idx), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(idx):
            raise ProviderResponseError(f"a batch of {len(idx)} items gave an array of shape {vecs.shape}")
        if out is None:
            out = np.empty((n, vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
    assert out is not None
    return out
