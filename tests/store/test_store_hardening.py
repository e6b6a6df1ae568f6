"""Issue 20, store half: each defect's regression test (collation, zero vectors, NULL distances, inf filters,
metadata sets, long sources, half-dropped collections, racing creates, lock advice)."""

from __future__ import annotations

import logging
import threading

import pytest

from obembed.errors import CollectionExistsError, InvalidFilterError, InvalidInputError, StoreError
from obembed.store import schema
from obembed.store.session import map_error

pytestmark = pytest.mark.seekdb

D = 4


@pytest.fixture
def coll(store, collection_name):
    c = store.create_collection(collection_name, D, columns={"year": "int"})
    c.upsert([{"id": "x", "vector": [1, 0, 0, 0], "content": "kept", "source": "a.txt", "year": 2020}])
    return c


def test_id_with_a_trailing_space_is_refused_not_merged(coll):
    # defect 1: 'x' and 'x ' are one key to the engine (PAD SPACE): refused, naming the row and the fix
    with pytest.raises(InvalidInputError, match=r"row 1: id 'x ' ends with a space.*same key as 'x'.*Strip"):
        coll.upsert([{"id": "y", "vector": [0, 1, 0, 0]}, {"id": "x ", "vector": [0, 0, 1, 0]}])
    assert coll.count() == 1
    assert coll.get(["x"])[0]["content"] == "kept"


@pytest.mark.parametrize("other", ["x\t", "X", "x\u00a0", "x\x00", "x\u3000", "e\u0301", "\u00e9", "\ufb01", "fi"])
def test_ids_the_engine_keeps_apart_stay_apart(coll, other):
    # everything else the engine was seen to compare (case, other blanks, NUL, normalisation forms) is distinct
    coll.upsert([{"id": other, "vector": [0, 1, 0, 0], "content": other}])
    assert coll.count() == 2
    assert [r["content"] for r in coll.get([other, "x"])] == [other, "kept"]


def test_delete_and_hashes_compare_exactly(coll):
    # under the collation `id` IN ('x ') would also delete 'x', and source = 'a.txt ' would read 'a.txt's rows
    assert coll.delete(ids=["x "]) == 0
    assert coll.count() == 1
    assert coll.hashes("a.txt ") == {}
    assert list(coll.hashes("a.txt")) == ["x"]


@pytest.mark.parametrize("vec", [[0, 0, 0, 0], [1e-30, 0, 0, 0], [0.0, -0.0, 0.0, 0.0]])
def test_zero_and_near_zero_vectors_refused_like_nan(coll, vec):
    with pytest.raises(InvalidInputError, match=r"row 1 \(id 'z'\): the vector(( is all zeros)|('s norm)).*fix"):
        coll.upsert([{"id": "ok", "vector": [0, 1, 0, 0]}, {"id": "z", "vector": vec}])
    assert coll.count() == 1
    with pytest.raises(InvalidInputError, match="query vector"):
        coll.search(vec, k=1)


def test_huge_components_refused(coll):
    with pytest.raises(InvalidInputError, match=r"id 'big'.*beyond"):
        coll.upsert([{"id": "big", "vector": [3e38, 3e38, 0, 0]}])
    assert coll.search([1, 0, 0, 0], k=1)[0].id == "x"


def test_l2_collection_takes_near_zero_but_not_zero(store, make_collection_name):
    c = store.create_collection(make_collection_name("l2"), D, distance="l2")
    c.upsert([{"id": "tiny", "vector": [1e-30, 0, 0, 0]}])
    with pytest.raises(InvalidInputError, match="all zeros"):
        c.upsert([{"id": "zero", "vector": [0, 0, 0, 0]}])
    assert [h.id for h in c.search([1, 0, 0, 0], k=5)] == ["tiny"]


def test_search_skips_null_distances_already_stored_and_says_so(store, coll, caplog):
    # old data: a zero vector written before obembed refused it (raw SQL here)
    store.execute(f"INSERT INTO {schema.quote(coll.name)} (`id`, `embedding`) VALUES ('zero', '[0,0,0,0]')",
                  fetch=False)
    coll.upsert([{"id": "y", "vector": [0.5, 0.5, 0, 0]}])
    with caplog.at_level(logging.WARNING, logger="obembed.store.collection"):
        hits = coll.search([1, 0, 0, 0], k=5, exact=True)
    assert [h.id for h in hits] == ["x", "y"]
    assert "1 stored rows have no cosine distance" in caplog.text
    assert [h.id for h in coll.search([1, 0, 0, 0], k=1)] == ["x"]


@pytest.mark.parametrize("where", ["year = 1e400", "year > -1e400", {"year": float("inf")},
                                   {"year": {"$lt": float("-inf")}}, {"year": {"$in": [1, float("inf")]}},
                                   {"year": 10**30}, {"year": "a\ud800"}])
def test_infinite_huge_or_invalid_filter_values_are_filter_errors(coll, where):
    with pytest.raises(InvalidFilterError, match="filter on 'year'"):
        coll.search([1, 0, 0, 0], k=1, where=where)
    with pytest.raises(InvalidFilterError):
        coll.count(where)


@pytest.mark.parametrize("value", [{1, 2}, frozenset({"a"}), b"raw", object()])
def test_metadata_that_has_no_json_form_is_refused(coll, value):
    with pytest.raises(InvalidInputError, match=r"row 0 \(id 'm'\): 'metadata' is not JSON-serialisable"):
        coll.upsert([{"id": "m", "vector": [0, 1, 0, 0], "metadata": {"tags": value}}])
    assert coll.count() == 1


def test_lone_surrogates_refused_naming_the_field(coll):
    for field, row in [("'id'", {"id": "a\ud800"}), ("'content'", {"id": "c", "content": "a\udfffb"}),
                       ("'source'", {"id": "s", "source": "/x/\udcff.txt"}),
                       ("'metadata'", {"id": "m", "metadata": {"k": "\ud800"}})]:
        with pytest.raises(InvalidInputError, match=f"{field} contains .*lone surrogate"):
            coll.upsert([{**row, "vector": [0, 1, 0, 0]}])
    assert coll.count() == 1


def test_sources_up_to_4096_characters_and_not_beyond(coll):
    long = "/" + "d" * 250 + ("/" + "é" * 250) * 15 + "/f.txt"
    assert 2048 < len(long) <= schema.SOURCE_MAX
    coll.upsert([{"id": "long", "vector": [0, 1, 0, 0], "source": long}])
    assert coll.get(["long"])[0]["source"] == long
    with pytest.raises(InvalidInputError, match=r"'source' has 4097 characters, more than the 4096"):
        coll.upsert([{"id": "longer", "vector": [0, 1, 0, 0], "source": "s" * 4097}])


def test_a_collection_with_the_old_source_width_is_widened_on_demand(store, collection_name):
    c = store.create_collection(collection_name, D)
    store.execute(f"ALTER TABLE {schema.quote(collection_name)} MODIFY COLUMN `source` varchar(2048) "
                  "COLLATE utf8mb4_bin", fetch=False)  # as collections made before this change
    old = store.collection(collection_name)
    old.upsert([{"id": "short", "vector": [1, 0, 0, 0], "source": "s" * 2048}])
    old.upsert([{"id": "long", "vector": [0, 1, 0, 0], "source": "l" * 3000}])
    assert [len(r["source"]) for r in c.get(["short", "long"])] == [2048, 3000]


def test_a_half_dropped_collection_is_repaired_by_the_next_command(store, make_collection_name):
    # a drop killed between its DROP TABLE and its metadata DELETE leaves a metadata row without a table
    names = [make_collection_name("half") for _ in range(3)]
    for name in names:
        store.create_collection(name, D).upsert([{"id": "a", "vector": [1, 0, 0, 0]}])
        store.execute(f"DROP TABLE {schema.quote(name)}", fetch=False)
    store.drop_collection(names[0])  # drop again: finishes
    assert not store.has_collection(names[0])
    assert not store.has_collection(names[1])  # open / has: the table is gone, so is the collection
    c = store.create_collection(names[2], D)  # create the name again: finishes the drop first
    c.upsert([{"id": "b", "vector": [1, 0, 0, 0]}])
    assert c.count() == 1
    assert names[0] not in [x["name"] for x in store.list_collections()]


def test_two_first_creates_racing_attach_to_one_collection(store, tmp_path, make_collection_name, store_test_dsn):
    # defect 9: two connections (as two processes) create the same new collection at the same moment
    from obembed.store import connect

    name = make_collection_name("race")
    other = connect(store_test_dsn) if store_test_dsn else connect(path=store.path)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def create(s):
        barrier.wait()
        try:
            results.append(s.create_collection(name, D, exists_ok=True).name)
        except Exception as exc:  # recorded, asserted below
            results.append(exc)

    try:
        threads = [threading.Thread(target=create, args=(s,)) for s in (store, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == [name, name]
        with pytest.raises(CollectionExistsError, match="exists already"):
            other.create_collection(name, D)
    finally:
        other.close()


def test_lock_and_timeout_errors_give_true_advice():
    import pymysql

    lock = map_error(pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), "upsert into 'kb'")
    assert "another session holds a lock" in str(lock)
    assert "query_timeout" not in str(lock)
    timeout = map_error(pymysql.err.OperationalError(4012, "Timeout"), "drop collection 'kb'")
    assert isinstance(timeout, StoreError)
    assert "waiting for a lock" in str(timeout)
    assert "docs/reliability.md" in str(timeout)


def test_a_side_table_is_found_by_its_own_name_not_a_like_wildcard_match(store, collection_name):
    """``SHOW TABLES LIKE 'obembed_...'`` also matches ``obembedX...`` (``_`` is a wildcard): a user table so
    named must not pass for obembed's side table (its DDL would be skipped and every read of it would fail)."""
    side = f"zz_{collection_name}"[:60]
    lookalike = side.replace("_", "x", 1)
    assert lookalike != side
    store.execute(f"CREATE TABLE {schema.quote(lookalike)} (`k` int PRIMARY KEY)", fetch=False)
    try:
        assert not schema.table_exists(store, side, "a side table")
        ddl = f"CREATE TABLE IF NOT EXISTS {schema.quote(side)} (`k` int PRIMARY KEY)"
        assert schema.ensure_table(store, side, ddl, "a side table") is True
        assert schema.table_exists(store, side, "a side table")
        assert schema.ensure_table(store, side, ddl, "a side table") is False  # there now: no DDL
        store.execute(f"INSERT INTO {schema.quote(side)} VALUES (1)", fetch=False)
        assert store.execute(f"SELECT `k` FROM {schema.quote(side)}")[0] == [(1,)]
    finally:
        for t in (side, lookalike):
            store.execute(f"DROP TABLE IF EXISTS {schema.quote(t)}", fetch=False)
