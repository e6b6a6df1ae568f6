from __future__ import annotations

import numpy as np
import pytest

import obembed
from obembed.errors import InvalidInputError


def test_hand_computed_values():
    a = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    b = np.array([[3.0, 4.0]], dtype=np.float32)
    np.testing.assert_allclose(obembed.similarity(a, b, "cosine"), [[0.6], [0.8]], atol=1e-6)
    np.testing.assert_allclose(obembed.similarity(a, b, "dot"), [[3.0], [8.0]], atol=1e-6)
    np.testing.assert_allclose(obembed.similarity(a, b, "l2"), [[np.sqrt(20)], [np.sqrt(13)]], atol=1e-5)


def test_defaults_to_self_and_accepts_single_vectors():
    v = np.array([1.0, 1.0, 0.0])
    m = obembed.similarity(v)
    assert m.shape == (1, 1)
    assert m[0, 0] == pytest.approx(1.0)
    x = np.random.default_rng(0).normal(size=(5, 8))
    s = obembed.similarity(x)
    assert s.shape == (5, 5)
    np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-6)
    np.testing.assert_allclose(s, s.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(obembed.similarity(x, metric="l2")), 0.0, atol=1e-3)


def test_zero_vector_has_zero_cosine_not_nan():
    s = obembed.similarity(np.zeros((1, 3)), np.ones((1, 3)))
    assert s[0, 0] == 0.0


@pytest.mark.parametrize(
    ("a", "b", "metric", "match"),
    [
        (np.ones((2, 3)), np.ones((2, 4)), "cosine", "dimensions differ"),
        (np.array([[np.nan, 1.0]]), None, "cosine", "NaN"),
        (np.ones((2, 2, 2)), None, "cosine", "shape"),
        (np.ones((2, 3)), None, "manhattan", "unknown metric"),
    ],
)
def test_bad_input(a, b, metric, match):
    with pytest.raises(InvalidInputError, match=match):
        obembed.similarity(a, b, metric)


def test_the_guides_four_sentences(minilm):
    sentences = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.",
                 "OceanBase is a distributed relational database."]
    vecs = minilm.embed_documents(sentences)
    sim = obembed.similarity(vecs, vecs)
    assert sim.shape == (4, 4)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-5)
    # the two weather sentences are each other's nearest neighbour
    off = sim - np.eye(4) * 2
    assert off[0].argmax() == 1
    assert off[1].argmax() == 0
