"""The store against the real embedded seekdb (or OBEMBED_TEST_DSN): collections, upsert, get, count, delete,
search, filters, metadata."""

from __future__ import annotations

import numpy as np
import pytest

from obembed.errors import CollectionExistsError, CollectionNotFoundError
from obembed.store import Collection, Hit

pytestmark = pytest.mark.seekdb

D = 8


def unit(rng: np.random.Generator, n: int, d: int = D) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def rows_for(vecs: np.ndarray, **extra) -> list[dict]:
    out = []
    for i, v in enumerate(vecs):
        r = {"id": f"r{i:03d}", "vector": v, "content": f"text {i}", "source": f"doc{i % 3}.txt", "chunk": i,
             "content_hash": f"h{i}", "metadata": {"n": i, "tag": "even" if i % 2 == 0 else "odd"}}
        r.update({k: f(i) for k, f in extra.items()})
        out.append(r)
    return out


@pytest.fixture
def coll(store, collection_name) -> Collection:
    return store.create_collection(collection_name, D, columns={"lang": "varchar(8)", "year": "int"})


def test_create_upsert_get_count_delete(store, coll):
    rng = np.random.default_rng(1)
    vecs = unit(rng, 20)
    n = coll.upsert(rows_for(vecs, lang=lambda i: "ja" if i % 4 == 0 else "en", year=lambda i: 2000 + i),
                    batch_size=7)
    assert n == 20
    assert coll.count() == 20
    assert coll.count({"lang": "ja"}) == 5
    assert coll.count("lang = 'en' AND year >= 2010") == 8
    assert coll.count({"metadata.tag": "even"}) == 10
    assert coll.count({"metadata.n": {">=": 15}}) == 5

    got = coll.get(["r003", "nope", "r001"], include_vectors=True)
    assert [g["id"] for g in got] == ["r003", "r001"]
    assert got[0]["content"] == "text 3"
    assert got[0]["source"] == "doc0.txt"
    assert got[0]["chunk"] == 3
    assert got[0]["metadata"] == {"n": 3, "tag": "odd"}
    assert got[0]["lang"] == "en"
    assert got[0]["year"] == 2003
    np.testing.assert_allclose(got[0]["vector"], vecs[3], atol=1e-5)  # engine returns ~6 significant digits

    assert coll.delete(["r000", "r001", "missing"]) == 2
    assert coll.delete(where={"year": {"<": 2005}}) == 3
    assert coll.count() == 15
    assert coll.get(["r000"]) == []


def test_upsert_is_idempotent_and_replaces(coll):
    rng = np.random.default_rng(2)
    vecs = unit(rng, 5)
    rows = rows_for(vecs, lang=lambda i: "en", year=lambda i: 2020)
    coll.upsert(rows)
    coll.upsert(rows)
    assert coll.count() == 5
    new = unit(rng, 1)[0]
    coll.upsert([{"id": "r002", "vector": new, "content": "changed", "lang": "fr", "year": 1999}])
    assert coll.count() == 5
    (row,) = coll.get(["r002"], include_vectors=True)
    assert row["content"] == "changed"
    assert row["lang"] == "fr"
    assert row["year"] == 1999
    assert row["source"] is None
    assert row["metadata"] == {}
    np.testing.assert_allclose(row["vector"], new, atol=1e-5)
    hit = coll.search(new, k=1)[0]
    assert hit.id == "r002"
    assert hit.distance == pytest.approx(0.0, abs=1e-5)


def test_search_exact_and_approximate_agree_and_scores(coll):
    rng = np.random.default_rng(3)
    vecs = unit(rng, 60)
    coll.upsert(rows_for(vecs, lang=lambda i: "en", year=lambda i: i))
    q = vecs[7] + 0.05 * unit(rng, 1)[0]
    exact_ids = list(np.argsort(-(vecs @ q))[:5])
    for exact in (True, False):
        hits = coll.search(q, k=5, exact=exact)
        assert all(isinstance(h, Hit) for h in hits)
        assert [h.id for h in hits] == [f"r{i:03d}" for i in exact_ids]
        qn = q / np.linalg.norm(q)
        for h in hits:
            i = int(h.id[1:])
            assert h.score == pytest.approx(float(vecs[i] @ qn), abs=1e-4)
            assert h.distance == pytest.approx(1 - h.score, abs=1e-6)
            assert h.metadata["n"] == i
            assert h.columns == {"lang": "en", "year": i}
    d = hits[0].to_dict()
    assert d["id"] == hits[0].id
    assert d["columns"]["year"] == int(hits[0].id[1:])


def test_search_with_filters(coll):
    rng = np.random.default_rng(4)
    vecs = unit(rng, 40)
    coll.upsert(rows_for(vecs, lang=lambda i: "ja" if i % 5 == 0 else "en", year=lambda i: 2000 + i))
    q = unit(rng, 1)[0]
    for where in ({"lang": "ja"}, "lang = 'ja'", {"year": {"in": [2000, 2005, 2010, 2015, 2020, 2025, 2030, 2035]}}):
        hits = coll.search(q, k=3, where=where)
        ja = [i for i in range(40) if i % 5 == 0]
        best = sorted(ja, key=lambda i: -float(vecs[i] @ q))[:3]
        assert [h.id for h in hits] == [f"r{i:03d}" for i in best], where
    hits = coll.search(q, k=10, where={"$or": [{"metadata.tag": "odd"}, {"year": {">=": 2038}}]})
    assert len(hits) == 10
    assert all(h.metadata["tag"] == "odd" or h.columns["year"] >= 2038 for h in hits)


def test_collection_metadata_list_and_drop(store, make_collection_name):
    name = make_collection_name("meta")
    coll = store.create_collection(name, 16, columns={"lang": "varchar(8)"}, fulltext=True, distance="l2")
    assert (coll.dimension, coll.distance, coll.columns) == (16, "l2", {"lang": "varchar(8)"})
    assert coll.metadata["index_type"] == "hnsw"
    assert coll.metadata["fulltext"] == "ngram"
    assert coll.metadata["index_params"]["ef_search"] >= 64
    assert coll.metadata["engine_version"]
    assert coll.metadata["obembed_version"]
    with pytest.raises(CollectionExistsError, match="exists already"):
        store.create_collection(name, 16)
    again = store.create_collection(name, 16, exists_ok=True)
    assert again.distance == "l2"
    listed = {c["name"]: c for c in store.list_collections()}
    assert listed[name]["dimension"] == 16
    assert listed[name]["count"] == 0
    reopened = store.collection(name)
    assert reopened.columns == {"lang": "varchar(8)"}
    store.drop_collection(name)
    assert name not in {c["name"] for c in store.list_collections()}
    with pytest.raises(CollectionNotFoundError, match=name):
        store.collection(name)
    with pytest.raises(CollectionNotFoundError):
        store.drop_collection(name)


def test_hashes_sources_iter_rows(coll):
    rng = np.random.default_rng(5)
    coll.upsert(rows_for(unit(rng, 25), lang=lambda i: "en", year=lambda i: i))
    hashes = coll.hashes()
    assert len(hashes) == 25
    assert hashes["r004"] == "h4"
    assert set(coll.hashes("doc1.txt")) == {f"r{i:03d}" for i in range(25) if i % 3 == 1}
    assert coll.sources() == {"doc0.txt": 9, "doc1.txt": 8, "doc2.txt": 8}
    batches = list(coll.iter_rows(batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 5]
    ids = [r["id"] for b in batches for r in b]
    assert ids == sorted(ids)
    assert len(set(ids)) == 25
    assert batches[0][0]["vector"].shape == (D,)
    assert "vector" not in next(coll.iter_rows(include_vectors=False))[0]


def test_session_settings(store):
    """Bulk work gets a long statement timeout (the engine's 10 s default fails big indexed inserts); UTC times."""
    rows, _ = store.execute("SELECT @@ob_query_timeout, @@ob_trx_timeout, @@time_zone")
    assert rows[0][0] >= 600_000_000
    assert rows[0][1] >= 600_000_000
    assert rows[0][2] == "+00:00"


def test_one_store_shared_by_threads(store, collection_name):
    """The store serialises its one connection: concurrent upserts and searches from threads all succeed."""
    from concurrent.futures import ThreadPoolExecutor

    coll = store.create_collection(collection_name, D, columns={"lang": "varchar(8)", "year": "int"})
    rng = np.random.default_rng(6)
    vecs = unit(rng, 80)

    def work(t: int) -> int:
        part = vecs[t * 20:(t + 1) * 20]
        coll.upsert([{"id": f"t{t}_{i}", "vector": v, "lang": "en", "year": t} for i, v in enumerate(part)])
        found = 0
        for i, v in enumerate(part):
            found += coll.search(v, k=1)[0].id == f"t{t}_{i}"
        return found + coll.count({"year": t})

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    assert results == [40, 40, 40, 40]
    assert coll.count() == 80
