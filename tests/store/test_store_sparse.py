"""Sparse vector columns on the real embedded seekdb: stored and read back exactly, sparse / full-text / hybrid
search against a brute-force numpy computation, and bad sparse input refused before SQL."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obembed.errors import ConfigError, InvalidInputError
from obembed.store.search import RRF_K

pytestmark = pytest.mark.seekdb

D = 8
VOCAB = 40
N = 30
WORDS = ["apple", "river", "stone", "cloud", "ember", "frost", "maple", "orbit"]


def _data() -> tuple[np.ndarray, list[dict[int, float]], list[str]]:
    rng = np.random.default_rng(7)
    dense = rng.standard_normal((N, D)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    sparse = []
    for _ in range(N):
        ids = rng.choice(VOCAB, size=6, replace=False)
        sp = {int(i): float(np.float32(rng.uniform(0.01, 2.0))) for i in ids}
        sp[249_999] = float(np.float32(rng.uniform(0.01, 0.5)))  # an id far out, as in BGE-M3's vocabulary
        sparse.append(sp)
    texts = [" ".join(rng.choice(WORDS, size=3, replace=False)) for _ in range(N)]
    return dense, sparse, texts


DENSE, SPARSE, TEXTS = _data()


def _ip(sp: dict[int, float], q: dict[int, float]) -> float:
    return float(sum(np.float32(w) * np.float32(q[i]) for i, w in sp.items() if i in q))


def _brute_sparse(q: dict[int, float], k: int, keep=lambda i: True) -> list[str]:
    scores = [(_ip(SPARSE[i], q), i) for i in range(N) if keep(i)]
    scores = [(s, i) for s, i in scores if s > 0]
    scores.sort(key=lambda t: -t[0])
    return [f"r{i}" for _, i in scores[:k]]


def _brute_dense(v: np.ndarray, k: int) -> list[str]:
    d = 1.0 - DENSE @ v / np.linalg.norm(v)
    return [f"r{i}" for i in np.argsort(d, kind="stable")[:k]]


@pytest.fixture(scope="module")
def sp_coll(store):
    name = "sparse_module_coll"
    c = store.create_collection(name, D, sparse=True, fulltext="space", columns={"grp": "int"})
    c.upsert([{"id": f"r{i}", "vector": DENSE[i], "sparse": SPARSE[i], "content": TEXTS[i], "grp": i % 3}
              for i in range(N)])
    yield c
    store.drop_collection(name)


def test_sparse_rows_read_back_exactly(sp_coll):
    assert sp_coll.has_sparse
    rows = sp_coll.get([f"r{i}" for i in range(N)], include_vectors=True)
    # the engine prints weights with 6 significant digits (as it does dense vectors): same ids, close weights
    for r, want in zip(rows, SPARSE, strict=True):
        assert sorted(r["sparse"]) == sorted(want)
        assert [r["sparse"][i] for i in sorted(want)] == pytest.approx([want[i] for i in sorted(want)], rel=1e-5)


def test_sparse_search_equals_brute_force(sp_coll):
    rng = np.random.default_rng(1)
    for _ in range(4):
        q = {int(i): float(rng.uniform(0.1, 1.0)) for i in rng.choice(VOCAB, size=5, replace=False)}
        want = _brute_sparse(q, 5)
        for exact in (True, None):
            hits = sp_coll.search(q, 5, mode="sparse", exact=exact)
            assert [h.id for h in hits] == want
            for h in hits:
                assert h.score == pytest.approx(_ip(SPARSE[int(h.id[1:])], q), rel=1e-5)
        filt = sp_coll.search(q, 5, mode="sparse", where={"grp": 1})
        assert [h.id for h in filt] == _brute_sparse(q, 5, keep=lambda i: i % 3 == 1)
    # the index path (APPROXIMATE) on this small table finds the same rows
    q = {3: 1.0, 7: 0.5, 11: 0.25}
    assert {h.id for h in sp_coll.search(q, 5, mode="sparse", exact=False)} == set(_brute_sparse(q, 5))


def test_hybrid_dense_sparse_equals_numpy_rrf(sp_coll):
    rng = np.random.default_rng(2)
    v = rng.standard_normal(D).astype(np.float32)
    q = {int(i): 1.0 for i in rng.choice(VOCAB, size=4, replace=False)}
    k, n = 5, 12
    for wd, ws in ((1.0, 1.0), (1.0, 3.0), (0.0, 1.0)):
        hits = sp_coll.search("unused text", k, mode="hybrid", vector=v, sparse_vector=q, candidates=n,
                              weights={"dense": wd, "sparse": ws})
        fused: dict[str, float] = {}
        for ids, w in ((_brute_dense(v, n), wd), (_brute_sparse(q, n), ws)):
            if w <= 0:
                continue
            for r, i in enumerate(ids):
                fused[i] = fused.get(i, 0.0) + w / (RRF_K + r + 1)
        want = sorted(fused.items(), key=lambda t: -t[1])[:k]
        assert [h.id for h in hits] == [i for i, _ in want]
        assert [h.score for h in hits] == pytest.approx([s for _, s in want])


def test_fulltext_mode_and_three_way_hybrid(sp_coll):
    hits = sp_coll.search("maple", 50, mode="fulltext")
    assert {h.id for h in hits} == {f"r{i}" for i, t in enumerate(TEXTS) if "maple" in t.split()}
    assert all(h.distance is None and h.score > 0 for h in hits)
    v = DENSE[4]
    three = sp_coll.search("maple", 5, mode="hybrid", vector=v, sparse_vector=SPARSE[4], candidates=20)
    fused: dict[str, float] = {}
    for leg in (sp_coll.search(v, 20), sp_coll.search(SPARSE[4], 20, mode="sparse"),
                sp_coll.search("maple", 20, mode="fulltext")):
        for r, h in enumerate(leg):
            fused[h.id] = fused.get(h.id, 0.0) + 1.0 / (RRF_K + r + 1)
    want = sorted(fused.items(), key=lambda t: -t[1])[:5]
    assert [h.id for h in three] == [i for i, _ in want]
    assert len(three) == 5
    assert all(not math.isnan(h.score) for h in three)
    with pytest.raises(InvalidInputError, match="unknown leg"):
        sp_coll.search("maple", 5, mode="hybrid", weights={"bm25": 1.0})
    with pytest.raises(InvalidInputError, match="no leg"):
        sp_coll.search("maple", 5, mode="hybrid", weights={"dense": 0, "sparse": 0, "fulltext": 0})
    with pytest.raises(InvalidInputError, match="mode="):
        sp_coll.search("maple", 5, mode="bm25")


def test_sparse_query_on_a_collection_without_sparse_column(store, collection_name):
    c = store.create_collection(collection_name, D)
    c.upsert([{"id": "a", "vector": DENSE[0]}])
    assert not c.has_sparse
    with pytest.raises(ConfigError, match=r"no sparse vector column.*sparse=True"):
        c.search({1: 1.0}, 3, mode="sparse")
    with pytest.raises(ConfigError, match="sparse=True"):
        c.search("x", 3, mode="hybrid", vector=DENSE[0], weights={"dense": 1, "sparse": 1})
    with pytest.raises(InvalidInputError, match=r"row 0 \(id 'b'\).*sparse=True"):
        c.upsert([{"id": "b", "vector": DENSE[1], "sparse": {1: 0.5}}])
    assert c.count() == 1


bad_weight = st.one_of(st.just(float("nan")), st.just(float("inf")), st.floats(max_value=-1e-6, allow_nan=False),
                       st.text(max_size=3), st.none())
bad_id = st.one_of(st.integers(max_value=-1), st.integers(min_value=500_000), st.text(max_size=4),
                   st.floats(allow_nan=False), st.booleans())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(0, 4), bad=st.one_of(
    st.tuples(st.just("weight"), bad_weight), st.tuples(st.just("id"), bad_id),
    st.tuples(st.just("type"), st.one_of(st.lists(st.floats(0, 1), max_size=3), st.text(max_size=4)))))
def test_bad_sparse_rows_are_refused_before_sql(sp_coll, pos, bad):
    before = [r["sparse"] for r in sp_coll.get(["r0", "r1"], include_vectors=True)]
    rows = [{"id": f"r{i}", "vector": DENSE[(i + 1) % N], "sparse": {1: 0.5}} for i in range(5)]
    kind, value = bad
    if kind == "weight":
        rows[pos]["sparse"] = {2: 0.5, 3: value}
    elif kind == "id":
        rows[pos]["sparse"] = {value: 0.5}
    else:
        rows[pos]["sparse"] = value
    with pytest.raises(InvalidInputError, match=rf"row {pos} \(id 'r{pos}'\).*sparse"):
        sp_coll.upsert(rows)
    assert [r["sparse"] for r in sp_coll.get(["r0", "r1"], include_vectors=True)] == before  # nothing written
    if kind != "type":
        with pytest.raises(InvalidInputError, match="sparse"):
            sp_coll.search(rows[pos]["sparse"], 3, mode="sparse")
