"""Metrics against values worked out by hand, exact search ties, bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from obembed.errors import InvalidInputError
from obembed.eval import (
    bootstrap_ci,
    exact_search,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    recall_at_k,
    summarize,
)

# one query, graded: a is highly relevant (2), b relevant (1), c judged not relevant (0)
JUDGED = {"a": 2, "b": 1, "c": 0}
RANKING = ["x", "b", "a", "c", "y"]


def test_recall_by_hand():
    assert recall_at_k(RANKING, JUDGED, 1) == 0.0  # x is not relevant
    assert recall_at_k(RANKING, JUDGED, 2) == 0.5  # b found, a not yet
    assert recall_at_k(RANKING, JUDGED, 3) == 1.0
    assert recall_at_k(RANKING, JUDGED, 100) == 1.0  # k beyond the list


def test_recall_without_relevant_is_an_error():
    with pytest.raises(InvalidInputError, match="no relevant"):
        recall_at_k(RANKING, {"a": 0}, 10)


def test_mrr_by_hand():
    assert mrr_at_k(RANKING, JUDGED, 10) == 0.5  # first relevant (b) at rank 2
    assert mrr_at_k(RANKING, JUDGED, 1) == 0.0  # cut before it
    assert mrr_at_k(["c", "y", "a"], JUDGED, 10) == pytest.approx(1 / 3)  # grade 0 does not count


def test_ndcg_graded_by_hand():
    # DCG = 0/log2(2) + 1/log2(3) + 2/log2(4) = 0.6309 + 1.0; IDCG = 2/log2(2) + 1/log2(3) = 2.6309
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(RANKING, JUDGED, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(RANKING, JUDGED, 10) == pytest.approx(0.619907, abs=1e-6)
    assert ndcg_at_k(["a", "b"], JUDGED, 10) == pytest.approx(1.0)  # the ideal order
    assert ndcg_at_k(["b", "a"], JUDGED, 10) < 1.0  # the grade matters, not just relevance
    # at k=1 only the top document counts: b (1) against the ideal a (2)
    assert ndcg_at_k(["b", "a"], JUDGED, 1) == pytest.approx(0.5)


def test_ndcg_ideal_counts_relevant_documents_not_retrieved():
    # a judged document absent from the ranking (say, missing from the corpus) still lowers nDCG
    assert ndcg_at_k(["a"], {"a": 1, "zz": 1}, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_per_query_metrics_order_and_missing_ranking():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    out = per_query_metrics({"q1": ["a", "b"]}, qrels, ["recall@1", "mrr@10", "ndcg@10"])
    assert out["recall@1"].tolist() == [1.0, 0.0]  # q2 had no ranking: scores 0
    assert out["mrr@10"].tolist() == [1.0, 0.0]
    with pytest.raises(InvalidInputError, match="unknown metric"):
        per_query_metrics({}, qrels, ["precision@5"])


def test_exact_search_breaks_ties_by_corpus_order():
    docs = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0.6, 0.8]], dtype=np.float32)  # 0, 2, 3 identical
    idx, scores = exact_search(docs, np.array([[1, 0]], dtype=np.float32), 3)
    assert idx[0].tolist() == [0, 2, 3]
    assert scores[0].tolist() == pytest.approx([1.0, 1.0, 1.0])
    # k cuts through the tie: still the lowest indexes, deterministically
    idx2, _ = exact_search(docs, np.array([[1, 0]], dtype=np.float32), 2)
    assert idx2[0].tolist() == [0, 2]
    # and the metric sees a tie resolved in corpus order: the relevant copy at index 3 is rank 3
    ids = ["d0", "d1", "d2", "d3", "d4"]
    ranking = [ids[j] for j in idx[0]]
    assert mrr_at_k(ranking, {"d3": 1}, 10) == pytest.approx(1 / 3)


@pytest.mark.parametrize("distance", ["cosine", "ip", "l2"])
def test_exact_search_matches_a_full_sort(distance):
    rng = np.random.default_rng(3)
    docs = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(7, 16)).astype(np.float32)
    idx, _ = exact_search(docs, queries, 10, distance=distance, chunk=3)
    for i, q in enumerate(queries):
        if distance == "cosine":
            s = (docs / np.linalg.norm(docs, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
        elif distance == "ip":
            s = docs @ q
        else:
            s = -np.linalg.norm(docs - q, axis=1)
        assert idx[i].tolist() == np.argsort(-s, kind="stable")[:10].tolist()


def test_exact_search_rejects_mismatched_shapes():
    with pytest.raises(InvalidInputError, match="shapes"):
        exact_search(np.zeros((3, 4)), np.zeros((1, 5)), 2)


def test_bootstrap_contains_the_mean_and_is_seeded():
    rng = np.random.default_rng(0)
    values = (rng.random(200) < 0.7).astype(float)  # a recall-like 0/1 vector, mean ~0.7
    lo, hi = bootstrap_ci(values, seed=1)
    assert lo < values.mean() < hi
    assert hi - lo < 0.2  # 200 queries: a few points either side, not the whole [0, 1]
    assert bootstrap_ci(values, seed=1) == (lo, hi)  # same seed, same interval
    mrr_like = rng.random(200)  # continuous values: another seed gives other resamples, another interval
    assert bootstrap_ci(mrr_like, seed=2) != bootstrap_ci(mrr_like, seed=1)
    lo99, hi99 = bootstrap_ci(values, seed=1, confidence=0.99)
    assert lo99 <= lo
    assert hi99 >= hi


def test_bootstrap_degenerate_and_bad_input():
    assert bootstrap_ci([1.0] * 20) == (1.0, 1.0)
    with pytest.raises(InvalidInputError, match="no values"):
        bootstrap_ci([])
    with pytest.raises(InvalidInputError, match="confidence"):
        bootstrap_ci([1.0, 0.0], confidence=1.5)


def test_summarize_reports_mean_inside_interval():
    pq = {"recall@10": np.array([1, 0, 1, 1, 0, 1, 1, 1], dtype=float)}
    s = summarize(pq, n_resamples=500, seed=4)["recall@10"]
    assert s["mean"] == 0.75
    assert s["ci_low"] <= 0.75 <= s["ci_high"]
