"""DashScope text-embedding-v3/v4 sparse output (``output_type``) through the sparse interface: the official
``dashscope`` package against a real 127.0.0.1 server speaking the native API's documented sparse shape
(``sparse_embedding: [{"index", "value", "token"}]``), with bad sparse entries injected."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import obembed
from obembed.errors import ConfigError, ProviderResponseError
from obembed.providers.sparse import SparseEmbedder, check_sparse_output, embed_with_sparse, has_sparse_output

from .conftest import DASHSCOPE_KEY, FAST_RETRY
from .fakeapi import sparse_for, vector_for

pytest.importorskip("dashscope")

TEXTS = [f"文档 {i} OceanBase vector search number {i} vector" for i in range(13)]


def sdk(server, model="text-embedding-v4", **kw):
    kw = {**FAST_RETRY, "base_address": server.url + "/api/v1", "api_key": DASHSCOPE_KEY, **kw}
    return obembed.load(f"dashscope-sdk:{model}", **kw)


def expected_sparse(text: str) -> dict[int, float]:
    return {e["index"]: e["value"] for e in sparse_for(text)}


@pytest.mark.parametrize("model", ["text-embedding-v3", "text-embedding-v4"])
def test_dense_and_sparse_from_the_same_requests(dashscope_server, model):
    p = sdk(dashscope_server, model, output_type="dense&sparse", dimensions=512)
    assert isinstance(p, SparseEmbedder)
    assert has_sparse_output(p)
    res = embed_with_sparse(p, TEXTS)
    np.testing.assert_allclose(res.vectors, np.stack([vector_for(t, model, 512) for t in TEXTS]), atol=1e-6)
    assert res.extra["sparse"] == [expected_sparse(t) for t in TEXTS]  # placed by text_index, in input order
    reqs = dashscope_server.received
    assert sorted(r.n_inputs for r in reqs) == [3, 10]  # one pass: each text sent once, both outputs back
    assert all(r.body["parameters"]["output_type"] == "dense&sparse" for r in reqs)
    assert {r.body["parameters"]["text_type"] for r in reqs} == {"document"}
    q = p.embed_sparse(["vector search"], "query")
    assert q == [expected_sparse("vector search")]
    assert dashscope_server.received[-1].body["parameters"]["text_type"] == "query"


def test_output_types(dashscope_server):
    only = sdk(dashscope_server, output_type="sparse")
    assert only.sparse_dimension > 0
    assert only.embed_sparse(TEXTS[:2]) == [expected_sparse(t) for t in TEXTS[:2]]
    assert "embedding" not in str(dashscope_server.received[-1].body["parameters"])
    with pytest.raises(ConfigError, match="dense&sparse"):
        only.embed_both(TEXTS[:2])
    dense = sdk(dashscope_server)
    assert dense.sparse_dimension == 0
    assert not has_sparse_output(dense)
    with pytest.raises(ConfigError, match="output_type='sparse' or 'dense&sparse'"):
        dense.embed_sparse(["x"])
    with pytest.raises(ConfigError, match=r"gives no sparse vectors.*output_type=dense&sparse"):
        embed_with_sparse(dense, ["x"])


@pytest.mark.parametrize("bad", [float("nan"), -0.5, "0.3", None, float("inf")])
def test_bad_sparse_weights_are_refused(dashscope_server, bad):
    dashscope_server.fault("bad_sparse", body=bad)
    p = sdk(dashscope_server, output_type="dense&sparse", max_retries=0)
    with pytest.raises(ProviderResponseError, match=r"input \d+: sparse weight of id \d+"):
        p.embed_both(TEXTS[:3])


@given(pairs=st.lists(st.tuples(st.one_of(st.integers(-3, 600_000), st.text(max_size=2), st.booleans()),
                                st.one_of(st.floats(allow_nan=True), st.integers(-2, 3), st.none(),
                                          st.text(max_size=2))), max_size=8))
def test_check_sparse_output_accepts_exactly_the_valid_entries(pairs):
    """Every entry list either comes back exactly (ids ints in range, weights finite ≥ 0, zeros left out, the
    max kept for a repeated id) or is a ProviderResponseError naming the item."""
    def valid(i, w):
        return (isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 500_000
                and isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w >= 0)

    if all(valid(i, w) for i, w in pairs):
        want: dict[int, float] = {}
        for i, w in pairs:
            if w > 0:
                want[i] = max(want.get(i, 0.0), float(w))
        assert check_sparse_output(pairs, "input 3", dimension=500_000) == want
    else:
        with pytest.raises(ProviderResponseError, match="input 3: sparse"):
            check_sparse_output(pairs, "input 3", dimension=500_000)
