"""``connect(target)`` (a folder or a DSN), the exact-or-index policy and RRF fusion (pure functions), and
``Collection.model`` rebuilt from the metadata."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import obembed
from obembed.errors import ConfigError, DimensionMismatchError
from obembed.store import EXACT_MAX_ROWS, connect, rrf_fuse, use_exact

pytestmark = pytest.mark.seekdb


def test_connect_takes_a_folder_as_its_first_argument(tmp_path, store_test_dsn):
    folder = tmp_path / "kb"
    with obembed.connect(str(folder)) as s:
        assert s.mode == "embedded"
        assert s.path == folder.resolve()
        s.create_collection("c", 4).upsert([{"id": "a", "vector": [1, 0, 0, 0]}])
        # a collection's model is rebuilt by obembed.load; should that be another space, by its backend as written
        assert s.provider_factory is obembed.load
        assert s.fallback_factory is not None
        as_written = s.fallback_factory("st:all-MiniLM-L6-v2", device="cpu")
        assert (as_written.name, as_written.runtime) == ("st", "torch")
    assert folder.is_dir()
    with obembed.connect(folder) as s:  # a PathLike too; the data is there
        assert [h.id for h in s.collection("c").search([1, 0, 0, 0], 1)] == ["a"]


@pytest.mark.parametrize("name", ["kb.db", "notes.txt", "data"])
def test_connect_to_a_file_names_it_and_the_fix(tmp_path, name):
    f = tmp_path / name
    f.write_text("not a store")
    for call in (lambda: obembed.connect(str(f)), lambda: connect(path=f)):
        with pytest.raises(ConfigError) as e:
            call()
        msg = str(e.value)
        assert str(f) in msg
        assert "folder" in msg
        assert "mysql://" in msg
    assert f.read_text() == "not a store"  # nothing touched


@pytest.mark.parametrize("dsn", ["mysql://root@127.0.0.1:notaport/db", "seekdb://u:p@/db"])
def test_a_string_with_scheme_is_a_dsn(tmp_path, dsn, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        obembed.connect(dsn)
    assert "DSN" in str(e.value)
    assert "p@" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # no folder made of a DSN


def test_target_and_keyword_together_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="target"):
        obembed.connect(str(tmp_path / "a"), path=tmp_path / "b")


@given(exact=st.one_of(st.none(), st.booleans()), has_index=st.booleans(),
       rows=st.integers(0, 3 * EXACT_MAX_ROWS), ef=st.one_of(st.none(), st.integers(1, 1000)))
@settings(max_examples=200, deadline=None)
def test_use_exact_policy(exact, has_index, rows, ef):
    got = use_exact(exact, has_index=has_index, rows=lambda: rows, ef_search=ef)
    if not has_index:
        assert got is True  # nothing else can answer
    elif exact is not None:
        assert got is exact
    elif ef is not None:
        assert got is False
    else:
        assert got is (rows <= EXACT_MAX_ROWS)


ids = st.lists(st.sampled_from([f"i{n}" for n in range(30)]), unique=True, max_size=30)


@given(a=ids, b=ids, k=st.integers(1, 40), wa=st.floats(0.1, 5), wb=st.floats(0.1, 5))
@settings(max_examples=200, deadline=None)
def test_rrf_fuse_invariants(a, b, k, wa, wb):
    out = rrf_fuse([(a, wa), (b, wb)], k)
    got = [i for i, _ in out]
    assert len(got) == len(set(got)) == min(k, len(set(a) | set(b)))
    scores = [s for _, s in out]
    assert scores == sorted(scores, reverse=True)
    for i, s in out:  # each score is the weighted sum of 1 / (60 + rank)
        want = sum(w / (60 + r.index(i) + 1) for r, w in ((a, wa), (b, wb)) if i in r)
        assert s == pytest.approx(want)
    # an id ranked first on both sides wins
    if a and b and a[0] == b[0]:
        assert got[0] == a[0]


def test_collection_model_is_rebuilt_from_its_metadata(store, minilm, collection_name):
    coll = store.create_collection(collection_name, minilm)
    coll.upsert([{"id": t, "vector": v, "content": t}
                 for t, v in zip(["a cat", "a car"], minilm.embed_documents(["a cat", "a car"]), strict=True)])
    again = store.collection(collection_name)  # nothing attached: rebuilt by the store's provider_factory
    model = again.model
    assert model.spec == minilm.spec
    assert model.dimension == minilm.dimension
    assert model.space == minilm.space
    assert np.allclose(model.embed_query("kitten"), minilm.embed_query("kitten"), atol=1e-5)
    assert [h.id for h in again.search("kitten", 1)] == ["a cat"]


def test_query_model_puts_options_on_top_of_the_recorded_ones(store, minilm, collection_name):
    """``obembed search -o ...`` and the Python API share one rule: a spec is built as given, options go on top
    of the recorded ones, nothing given is the collection's own model."""
    store.create_collection(collection_name, minilm)
    recorded = dict(store.collection(collection_name).metadata["provider"]["options"])
    calls: list[tuple[str, dict[str, object]]] = []

    def factory(spec, **options):
        calls.append((spec, options))
        return minilm

    saved = store.provider_factory, dict(store._providers)
    store._providers.clear()
    try:
        store.provider_factory = factory
        coll = store.collection(collection_name)
        assert coll.query_model(threads=1) is minilm
        assert calls == [(minilm.spec, {**recorded, "threads": 1})]
        coll.query_model("st:another-model", device="cpu")
        assert calls[-1] == ("st:another-model", {"device": "cpu"})
        assert coll.query_model() is coll.model
        assert calls[-1] == (minilm.spec, recorded)
    finally:
        store.provider_factory = saved[0]
        store._providers.clear()
        store._providers.update(saved[1])


def test_collection_model_falls_back_when_the_fast_model_is_another_space(store, minilm, collection_name):
    store.create_collection(collection_name, minilm)
    built: list[str] = []

    class OtherSpace:  # a real provider object standing for "a faster runtime that is not the same space"
        spec = minilm.spec
        dimension = minilm.dimension
        space = "some-other-space"

        def info(self):
            return {}

        def embed_query(self, item):
            return np.zeros(self.dimension, np.float32)

    def fast(spec, **options):
        built.append("fast")
        return OtherSpace()

    def exact(spec, **options):
        built.append("exact")
        return obembed.load(spec, device="cpu", **options)

    saved = store.provider_factory, store.fallback_factory, dict(store._providers)
    store._providers.clear()
    try:
        store.provider_factory = fast
        store.fallback_factory = None
        with pytest.raises(DimensionMismatchError):
            _ = store.collection(collection_name).model
        store.fallback_factory = exact
        model = store.collection(collection_name).model
        assert built == ["fast", "fast", "exact"]
        assert model.space == minilm.space
    finally:
        store.provider_factory, store.fallback_factory = saved[0], saved[1]
        store._providers.clear()
        store._providers.update(saved[2])
