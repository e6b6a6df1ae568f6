"""Bad input: clear errors naming the input and the fix, and nothing partially written."""

from __future__ import annotations

import socket
from urllib.parse import quote

import pytest

from obembed.errors import (
    ConfigError,
    DimensionMismatchError,
    InvalidFilterError,
    InvalidInputError,
    StoreConnectionError,
)
from obembed.store import connect, parse_dsn

pytestmark = pytest.mark.seekdb

D = 4


@pytest.fixture
def coll(store, collection_name):
    c = store.create_collection(collection_name, D, columns={"lang": "varchar(8)"})
    c.upsert([{"id": "keep", "vector": [1, 0, 0, 0], "lang": "en", "content": "kept"}])
    return c


def good(i: int) -> dict:
    return {"id": f"g{i}", "vector": [0.1 * (i + 1), 1, 0, 0], "lang": "ja"}


def test_wrong_dimension_writes_nothing(coll):
    rows = [good(i) for i in range(5)] + [{"id": "bad", "vector": [1, 2, 3]}]
    with pytest.raises(DimensionMismatchError, match=r"row 5 \(id 'bad'\).*3 dimensions.*4-d") as ei:
        coll.upsert(rows, batch_size=2)  # the bad row is in the last batch: still nothing written
    assert "embed with the collection's model" in str(ei.value)
    assert coll.count() == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_inf_refused_before_sql(coll, bad):
    rows = [good(0), {"id": "poison", "vector": [1, bad, 0, 0]}]
    with pytest.raises(InvalidInputError, match=r"row 1 \(id 'poison'\).*NaN or inf.*fix or drop"):
        coll.upsert(rows)
    assert coll.count() == 1
    with pytest.raises(InvalidInputError, match="NaN or inf"):
        coll.search([bad, 0, 0, 0], k=1)
    # the table is not poisoned: exact distance queries still work
    assert coll.search([1, 0, 0, 0], k=1, exact=True)[0].id == "keep"


def test_empty_batch(coll):
    with pytest.raises(InvalidInputError, match="no rows"):
        coll.upsert([])
    assert coll.count() == 1


def test_duplicate_ids_in_one_batch(coll):
    with pytest.raises(InvalidInputError, match=r"row 2: id 'g0' appears twice"):
        coll.upsert([good(0), good(1), good(0)])
    assert coll.count() == 1


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"vector": [1, 0, 0, 0]}, "'id' must be a non-empty string"),
        ({"id": "", "vector": [1, 0, 0, 0]}, "'id' must be a non-empty string"),
        ({"id": 7, "vector": [1, 0, 0, 0]}, "'id' must be a non-empty string"),
        ({"id": "x"}, "has no 'vector'"),
        ({"id": "x", "vector": ["a", "b", "c", "d"]}, "not numeric"),
        ({"id": "x", "vector": [1, 0, 0, 0], "colour": "red"}, r"unknown field\(s\) \['colour'\]"),
        ({"id": "x", "vector": [1, 0, 0, 0], "metadata": "notadict"}, "'metadata' must be a dict"),
        ({"id": "x", "vector": [1, 0, 0, 0], "metadata": {"x": float("nan")}}, "not JSON-serialisable"),
        ({"id": "x", "vector": [1, 0, 0, 0], "chunk": "3"}, "'chunk' must be an int"),
        ("not a dict", "not a dict"),
    ],
)
def test_bad_rows(coll, row, match):
    with pytest.raises(InvalidInputError, match=match):
        coll.upsert([good(0), row])
    assert coll.count() == 1


@pytest.mark.parametrize(
    "name",
    ["a b", "x`; DROP TABLE obembed_collections; --", "it's", 'dq"', "1abc", "with-dash", "db.table", "",
     "SELECT * FROM t", "obembed_collections", "a" * 64, "名前"],
)
def test_unsafe_collection_names(store, name):
    with pytest.raises(InvalidInputError, match="collection name"):
        store.create_collection(name, D)
    with pytest.raises(InvalidInputError, match="collection name"):
        store.collection(name)
    with pytest.raises(InvalidInputError, match="collection name"):
        store.drop_collection(name)


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"bad name": "int"}, "column name"),
        ({"x`y": "int"}, "column name"),
        ({"content": "int"}, "built into every collection"),
        ({"Embedding": "int"}, "built into every collection"),
        ({"year": "int; DROP TABLE x"}, "not allowed"),
        ({"year": "int) ; --"}, "not allowed"),
        ({"year": "vector(3)"}, "not allowed"),
        ({"year": 5}, "must be a string"),
    ],
)
def test_unsafe_columns(store, collection_name, columns, match):
    with pytest.raises(InvalidInputError, match=match):
        store.create_collection(collection_name, D, columns=columns)
    assert not store.has_collection(collection_name)


def test_bad_collection_options(store, collection_name):
    with pytest.raises(InvalidInputError, match="distance"):
        store.create_collection(collection_name, D, distance="manhattan")
    with pytest.raises(ConfigError, match="index"):
        store.create_collection(collection_name, D, index="ivf_sq8")
    with pytest.raises(InvalidInputError, match=r"1\.\.16000"):
        store.create_collection(collection_name, 0)
    with pytest.raises(InvalidInputError, match="≤ 4096"):
        store.create_collection(collection_name, 5000)
    with pytest.raises(ConfigError, match="parser"):
        store.create_collection(collection_name, D, fulltext="klingon")
    assert not store.has_collection(collection_name)


def test_filter_injection_against_the_engine(store, coll):
    evil = "en' OR '1'='1"
    assert coll.count({"lang": evil}) == 0
    assert coll.search([1, 0, 0, 0], k=5, where={"lang": evil}) == []
    assert coll.delete(where={"lang": evil}) == 0
    assert coll.delete(where="lang = 'en'' OR ''1''=''1'") == 0
    for where in ("lang = 'en'; DROP TABLE obembed_collections", "1=1", {"lang`": "x"}):
        with pytest.raises(InvalidFilterError):
            coll.count(where)
    assert coll.count() == 1
    assert store.has_collection(coll.name)


def test_bad_queries(coll):
    with pytest.raises(DimensionMismatchError, match="query vector: the vector has 2 dimensions"):
        coll.search([1, 0], k=1)
    for k in (0, -1, 100_000, 2.5, True):
        with pytest.raises(InvalidInputError, match="k="):
            coll.search([1, 0, 0, 0], k=k)
    with pytest.raises(InvalidInputError, match="ef_search"):
        coll.search([1, 0, 0, 0], k=1, ef_search=0)
    with pytest.raises(ConfigError, match="no model recorded"):
        coll.search("a text query on a bare-dimension collection", k=1)
    with pytest.raises(ConfigError, match="FULLTEXT"):
        coll.hybrid_search("text", k=1)
    with pytest.raises(InvalidInputError, match="ids= or where="):
        coll.delete()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_dsn_refused_connection():
    port = _closed_port()
    with pytest.raises(StoreConnectionError, match=rf"127.0.0.1:{port}: cannot connect.*check the host and port") \
            as ei:
        connect(f"mysql://root:s3cret-pw@127.0.0.1:{port}/obembed")
    assert "s3cret-pw" not in str(ei.value)


def test_dsn_from_the_environment(monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("OBEMBED_DSN", f"mysql://root:env-secret@127.0.0.1:{port}/obembed")
    import obembed

    with pytest.raises(StoreConnectionError, match=f"127.0.0.1:{port}") as ei:
        obembed.connect()
    assert "env-secret" not in str(ei.value)


@pytest.mark.parametrize("dsn", ["postgres://u:p@h/db", "mysql:///db", "mysql://u:p@h:notaport/db",
                                 "mysql://u:p@h/db?sslmode=x", "mysql://u:p@h/bad-db-name"])
def test_bad_dsn(dsn):
    with pytest.raises((ConfigError, InvalidInputError)) as ei:
        connect(dsn)
    assert ":p@" not in str(ei.value)


def test_dsn_wrong_password(store, store_test_dsn):
    """A real login refusal: a user with a password on the session's engine (embedded: over its unix socket)."""
    user = "obembed_pw_test"
    store.execute(f"CREATE USER IF NOT EXISTS '{user}' IDENTIFIED BY 'right-Pw-123'", fetch=False)
    store.execute(f"GRANT ALL ON `{store.database}`.* TO '{user}'", fetch=False)
    if store_test_dsn:
        p = parse_dsn(store_test_dsn)
        base = f"{p['host']}:{p['port']}/{store.database}"
        tail = ""
    else:
        sock = store._embedded.connect_args()["unix_socket"]
        base = f"localhost/{store.database}"
        tail = f"?unix_socket={quote(sock)}"
    with pytest.raises(StoreConnectionError, match=r"refused the login.*check the user and password") as ei:
        connect(f"mysql://{user}:wrong-Pw-999@{base}{tail}")
    assert "wrong-Pw-999" not in str(ei.value)
    ok = connect(f"mysql://{user}:right-Pw-123@{base}{tail}")  # the same DSN with the right password works
    try:
        assert ok.mode == "dsn"
        assert "right-Pw-123" not in repr(ok)
        assert ok.execute("SELECT 1")[0][0][0] == 1
    finally:
        ok.close()


def test_parse_dsn_forms():
    p = parse_dsn("mysql://root@sys:p%40ss%2Fw@ob.example:2883/vec?connect_timeout=5")
    assert p == {"host": "ob.example", "port": 2883, "user": "root@sys", "password": "p@ss/w", "database": "vec",
                 "connect_timeout": 5.0}
    p = parse_dsn("seekdb://localhost")
    assert (p["port"], p["user"], p["password"], p["database"]) == (2881, "root", "", "obembed")
    assert parse_dsn("mysql://root@localhost/db?unix_socket=/tmp/x.sock")["unix_socket"] == "/tmp/x.sock"


def test_engine_error_rolls_back_its_batch_only(coll):
    """A value the engine refuses (too long for varchar(8)) fails its own batch; earlier batches stay committed."""
    from obembed.errors import StoreError

    rows = [good(0), good(1), {"id": "long", "vector": [0, 0, 1, 0], "lang": "much-too-long-for-8"}, good(3)]
    with pytest.raises(StoreError, match=r"rows 2\.\.3 rolled back; 2 earlier rows committed"):
        coll.upsert(rows, batch_size=2)
    assert sorted(r["id"] for r in coll.get(["keep", "g0", "g1", "long", "g3"])) == ["g0", "g1", "keep"]
