"""DSNs (user@tenant redaction, cluster logins) and the store's lifecycle: byte-exact ids/sources, orphan tables,
batched deletes, scalar column values, deep NOT chains, no leak of a half-opened store."""

from __future__ import annotations

import socket
import uuid
from urllib.parse import quote

import numpy as np
import pytest

from obembed.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    InvalidFilterError,
    InvalidInputError,
    StoreConnectionError,
    StoreError,
    redact,
)
from obembed.store import collection as collection_mod
from obembed.store import compile_where, connect
from obembed.store import seekdb as seekdb_mod
from obembed.store.dsn import redact_dsn

pytestmark = pytest.mark.seekdb

D = 4


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------------------------------- 1. DSN redaction
@pytest.mark.parametrize(("dsn", "secret", "expected"), [
    ("mysql://user@tenant:s3cret-Pw@ob.example:2881/db", "s3cret-Pw", "mysql://user@tenant:***@ob.example:2881/db"),
    ("mysql://root@sys#cluster:s3cret-Pw@10.0.0.1:2883/vec", "s3cret-Pw",
     "mysql://root@sys%23cluster:***@10.0.0.1:2883/vec"),
    ("mysql://user:p@ss-w0rd@host:2881/db", "ss-w0rd", "mysql://user:***@host:2881/db"),
    ("mysql://user@tenant:p%40ss-w0rd@host/db", "ss-w0rd", "mysql://user@tenant:***@host/db"),
])
def test_user_at_tenant_dsn_is_redacted(dsn, secret, expected):
    assert redact_dsn(dsn) == expected
    text = redact(f"connecting to {dsn} failed")
    assert secret not in text
    assert "ob.example" in text or "host" in text or "10.0.0.1" in text  # only the password goes


def test_parse_dsn_takes_a_cluster_login():
    from obembed.store import parse_dsn

    p = parse_dsn("mysql://root@sys#obcluster:pw#1@ob.example:2883/vec")
    assert (p["user"], p["password"], p["host"], p["database"]) == ("root@sys#obcluster", "pw#1", "ob.example", "vec")


def test_redact_leaves_plain_urls_alone():
    assert redact("see http://example.com:8080/a@b and mysql://root@localhost/db") == \
        "see http://example.com:8080/a@b and mysql://root@localhost/db"


def test_user_at_tenant_dsn_refused_connection_has_no_password():
    port = _closed_port()
    with pytest.raises(StoreConnectionError) as ei:
        connect(f"mysql://app@tenant1:t3nant-Secret@127.0.0.1:{port}/obembed")
    assert "t3nant-Secret" not in str(ei.value)


@pytest.fixture
def tenant_dsn(store, store_test_dsn):
    """A working OceanBase-style ``user@tenant`` DSN (seekdb's tenant is ``sys``) whose password has '@' too."""
    if store_test_dsn:
        pytest.skip("needs the embedded engine's unix socket")  # pragma: no cover - OBEMBED_TEST_DSN runs only
    user, pw = "obembed_at_test", "Pw@tenant-S3cret"
    store.execute(f"CREATE USER IF NOT EXISTS '{user}' IDENTIFIED BY '{pw}'", fetch=False)
    store.execute(f"GRANT ALL ON `{store.database}`.* TO '{user}'", fetch=False)
    sock = store._embedded.connect_args()["unix_socket"]
    return (f"mysql://{user}@sys:{quote(pw, safe='@')}@localhost/{store.database}?unix_socket={quote(sock)}",
            "tenant-S3cret")


def test_dsn_store_repr_and_not_found_error_have_no_password(tenant_dsn):
    dsn, secret = tenant_dsn
    s = connect(dsn)
    try:
        assert s.mode == "dsn"
        assert secret not in repr(s)
        assert "obembed_at_test@sys:***@localhost" in repr(s)
        with pytest.raises(CollectionNotFoundError) as ei:
            s.collection("no_such_collection_here")
        msg = str(ei.value)
        assert secret not in msg
        assert "Store(" not in msg
        assert "unix_socket" not in msg
        assert "no_such_collection_here" in msg
    finally:
        s.close()


# ------------------------------------------------------------------------------------------- 2. collation
def test_engine_default_collation_is_case_insensitive(store):
    """Why the key columns are utf8mb4_bin: the engine's default compares 'a' = 'A' as equal."""
    assert store.execute("SELECT 'a' = 'A'")[0][0][0] == 1


def test_ids_and_sources_differing_in_case_are_distinct(store, collection_name):
    coll = store.create_collection(collection_name, D)
    coll.upsert([{"id": "A", "vector": [1, 0, 0, 0], "source": "docs/README.md", "content_hash": "H"},
                 {"id": "a", "vector": [0, 1, 0, 0], "source": "docs/readme.md", "content_hash": "h"}])
    assert coll.count() == 2
    assert [r["id"] for r in coll.get(["a"])] == ["a"]
    assert coll.sources() == {"docs/README.md": 1, "docs/readme.md": 1}
    assert coll.hashes("docs/readme.md") == {"a": "h"}
    assert coll.count({"source": "docs/README.md"}) == 1
    assert coll.delete(ids=["a"]) == 1
    assert [r["id"] for r in coll.get(["A", "a"])] == ["A"]


# ------------------------------------------------------------------------------------------- 4. orphan table
def test_empty_orphan_table_is_replaced_and_a_foreign_table_refused(store, make_collection_name, monkeypatch):
    from obembed.store import seekdb

    # the wait for a racing creator's metadata row (10 s) is the racing test's subject, not this one's
    monkeypatch.setattr(seekdb, "CREATE_WAIT_S", 1.0)
    name = make_collection_name("orphan")
    # what a create_collection killed between its CREATE TABLE and its metadata row leaves behind
    store.execute(f"CREATE TABLE `{name}` (`id` varchar(512) NOT NULL PRIMARY KEY, `x` int)", fetch=False)
    coll = store.create_collection(name, D)
    coll.upsert([{"id": "r1", "vector": [1, 0, 0, 0], "content": "ok"}])
    assert coll.search([1, 0, 0, 0], k=1)[0].id == "r1"
    assert store.has_collection(name)

    foreign = make_collection_name("foreign")
    store.execute(f"CREATE TABLE `{foreign}` (`id` varchar(64) NOT NULL PRIMARY KEY)", fetch=False)
    try:
        store.execute(f"INSERT INTO `{foreign}` VALUES ('keep me')", fetch=False)
        with pytest.raises(CollectionExistsError, match="1 rows but is not an obembed collection"):
            store.create_collection(foreign, D)
        assert store.execute(f"SELECT `id` FROM `{foreign}`")[0] == [("keep me",)]  # untouched
    finally:
        store.execute(f"DROP TABLE IF EXISTS `{foreign}`", fetch=False)


# ------------------------------------------------------------------------------------------- 5. batched delete
def test_delete_more_than_one_batch_of_ids(store, collection_name):
    coll = store.create_collection(collection_name, D, index=None)
    n = 2 * collection_mod.DELETE_BATCH + 5
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((n, D)).astype(np.float32)
    coll.upsert([{"id": f"r{i}", "vector": vecs[i]} for i in range(n)])
    statements: list[str] = []
    real = store._session.execute

    def spy(sql, *a, **kw):
        statements.append(sql)
        return real(sql, *a, **kw)

    store._session.execute = spy  # type: ignore[method-assign]
    try:
        gone = coll.delete(ids=[f"r{i}" for i in range(n - 1)] + ["missing"])
    finally:
        del store._session.execute
    assert gone == n - 1
    assert [r["id"] for r in coll.get([f"r{n - 1}", "r0"])] == [f"r{n - 1}"]
    deletes = [s for s in statements if s.startswith("DELETE")]
    assert len(deletes) == 3  # 1000 + 1000 + 5 ids
    # each id is bound twice (`id` IN (...) AND BINARY `id` IN (...): exact under the PAD SPACE collation)
    assert all(s.count("%s") <= 2 * collection_mod.DELETE_BATCH for s in deletes)


# ------------------------------------------------------------------------------------------- 10. no leak
def test_failed_open_closes_its_connection(store, store_test_dsn, monkeypatch):
    if store_test_dsn:
        pytest.skip("needs the embedded engine's unix socket")  # pragma: no cover
    sessions: list[seekdb_mod.Session] = []
    real_init = seekdb_mod.Session.__init__

    def init(self, *a, **kw):
        sessions.append(self)
        real_init(self, *a, **kw)

    monkeypatch.setattr(seekdb_mod.Session, "__init__", init)
    monkeypatch.setattr(seekdb_mod.schema, "meta_table_ddl", lambda: "CREATE TABLE obembed_bad (")  # engine refuses
    sock = store._embedded.connect_args()["unix_socket"]
    fresh_db = f"leak_{uuid.uuid4().hex[:8]}"  # no metadata table yet, so open runs the (refused) DDL
    with pytest.raises(StoreError, match="create the metadata table"):
        connect(f"mysql://root@localhost/{fresh_db}?unix_socket={quote(sock)}")
    assert len(sessions) == 1
    assert sessions[0].conn is None  # closed, not leaked


# ------------------------------------------------------------------------------------------- 11. scalar values
@pytest.mark.parametrize("bad", [{"k": "v"}, ["a", "b"], {"a"}, b"raw", object()])
def test_non_scalar_column_values_are_refused(store, collection_name, bad):
    coll = store.create_collection(collection_name, D, columns={"lang": "varchar(8)"})
    with pytest.raises(InvalidInputError, match=r"row 1 \(id 'two'\): column 'lang'") as ei:
        coll.upsert([{"id": "one", "vector": [1, 0, 0, 0], "lang": "en"},
                     {"id": "two", "vector": [0, 1, 0, 0], "lang": bad}])
    assert ei.value.index == 1
    assert coll.count() == 0  # nothing written


def test_json_and_binary_columns_take_their_values(store, collection_name):
    coll = store.create_collection(collection_name, D, columns={"tags": "json", "raw": "varbinary(16)",
                                                                 "year": "int"})
    coll.upsert([{"id": "x", "vector": [1, 0, 0, 0], "tags": {"a": [1, 2]}, "raw": b"\x00\x01", "year": np.int64(7)}])
    row = coll.get(["x"])[0]
    assert row["raw"] == b"\x00\x01"
    assert row["year"] == 7
    assert row["tags"].replace(" ", "") == '{"a":[1,2]}'


# ------------------------------------------------------------------------------------------- 12. NOT chains
@pytest.mark.parametrize("expr", ["NOT " * 2400 + "lang = 'ja'", "(" * 2500 + "lang = 'ja'" + ")" * 2500,
                                  "NOT (" * 1500 + "lang = 'ja'" + ")" * 1500])
def test_deep_not_chains_are_a_filter_error(expr):
    with pytest.raises(InvalidFilterError, match="nested too deeply"):
        compile_where(expr, ["lang"])


def test_moderate_not_nesting_still_compiles():
    sql, params = compile_where("NOT " * 10 + "lang = 'ja'", ["lang"])
    assert sql.count("NOT (") == 10
    assert params == ["ja"]
