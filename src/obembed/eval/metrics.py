"""Retrieval metrics per query, their means, and bootstrap confidence intervals.

Definitions (those of BEIR / trec_eval, so figures are comparable):

* ``recall@k`` = |relevant ∩ top k| / |relevant| (relevant: grade > 0);
* ``mrr@k``    = 1 / rank of the first relevant document within the top k, else 0;
* ``ndcg@k``   = DCG@k / IDCG@k with linear gains (``gain = grade``) and ``1 / log2(rank + 1)`` discounts;
  the ideal ranking sorts *all* judged grades of the query, including documents missing from the corpus.

A ranking is a list of document ids, best first; score ties must already be broken by the caller
(:func:`obembed.eval.search.exact_search` keeps corpus order among equal scores).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..errors import InvalidInputError

__all__ = ["METRICS", "bootstrap_ci", "mrr_at_k", "ndcg_at_k", "per_query_metrics", "recall_at_k", "summarize"]

METRICS: tuple[str, ...] = ("recall@1", "recall@10", "recall@100", "mrr@10", "ndcg@10")
"""The metrics an evaluation reports, in table order."""


def _relevant(judged: Mapping[str, int]) -> set[str]:
    return {d for d, g in judged.items() if g > 0}


def recall_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    rel = _relevant(judged)
    if not rel:
        raise InvalidInputError("recall is undefined for a query with no relevant document")
    return len(rel.intersection(ranking[:k])) / len(rel)


def mrr_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(ranking[:k]):
        if judged.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def ndcg_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def _parse(name: str) -> tuple[str, int]:
    base, _, k = name.partition("@")
    if base not in ("recall", "mrr", "ndcg") or not k.isdigit() or int(k) < 1:
        raise InvalidInputError(f"unknown metric {name!r}; use recall@K, mrr@K or ndcg@K")
    return base, int(k)


_FUNCS = {"recall": recall_at_k, "mrr": mrr_at_k, "ndcg": ndcg_at_k}


def per_query_metrics(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]],
                      metrics: Iterable[str] = METRICS) -> dict[str, np.ndarray]:
    """``{metric: array over queries}`` in ``qrels`` order (queries without a ranking score 0)."""
    names = list(metrics)
    parsed = [_parse(m) for m in names]
    out = {m: np.zeros(len(qrels), dtype=np.float64) for m in names}
    for i, (qid, judged) in enumerate(qrels.items()):
        ranking = rankings.get(qid, [])
        for m, (base, k) in zip(names, parsed, strict=True):
            out[m][i] = _FUNCS[base](ranking, judged, k)
    return out


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over queries (resampled with replacement, seeded)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise InvalidInputError("no values to bootstrap: the evaluation has no queries")
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence={confidence} must lie between 0 and 1 (e.g. 0.95)")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, 2_000_000 // max(1, x.size))  # bound memory for big query sets
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def summarize(per_query: Mapping[str, np.ndarray], *, n_resamples: int = 1000, confidence: float = 0.95,
              seed: int = 0) -> dict[str, dict[str, float]]:
    """``{metric: {"mean", "ci_low", "ci_high"}}``; every metric uses the same seed (paired resamples)."""
    out: dict[str, dict[str, float]] = {}
    for name, vals in per_query.items():
        lo, hi = bootstrap_ci(vals, n_resamples=n_resamples, confidence=confidence, seed=seed)
        out[name] = {"mean": float(np.mean(vals)), "ci_low": lo, "ci_high": hi}
    return out
