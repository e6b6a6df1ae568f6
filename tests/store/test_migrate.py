"""Model migration (issue 18) on the session's real seekdb (embedded, or OBEMBED_TEST_DSN), with two real local
models whose vector spaces differ: the bundled MiniLM (384-d) and MiniLM with truncate_dim=128."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import obembed
from obembed.cli import main
from obembed.errors import MigrationError, MigrationPausedError, ProviderConnectionError
from obembed.store.migrate import shadow_table
from obembed.store.rows import parse_vector

TEXTS = [f"{w} package number {i}: a {w} tool for the command line" for i, w in
         enumerate(["editor", "database", "compiler", "browser", "mailer", "shell"] * 5)]


@pytest.fixture(scope="module")
def mini128():
    return obembed.load("st:all-MiniLM-L6-v2", truncate_dim=128)


def _fill(store, name: str, model) -> Any:
    coll = store.create_collection(name, model, columns={"lang": "varchar(8)"})
    vecs = model.embed_documents(TEXTS)
    coll.upsert([{"id": f"p{i:02d}", "content": t, "vector": v, "lang": "en", "metadata": {"i": i}}
                 for i, (t, v) in enumerate(zip(TEXTS, vecs, strict=True))])
    return coll


class Flaky:
    """The real model, whose link 'drops' (the library's real ProviderConnectionError) after ``ok`` batches."""

    def __init__(self, model: Any, ok: int) -> None:
        self.model, self.ok = model, ok

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def embed_documents(self, items: Any, **kw: Any) -> Any:
        if self.ok <= 0:
            raise ProviderConnectionError("connection refused by 127.0.0.1:9", "test")
        self.ok -= 1
        return self.model.embed_documents(items, **kw)


def test_migrate_swap_rollback_drop(store, collection_name, minilm, mini128):
    coll = _fill(store, collection_name, minilm)
    with pytest.raises(MigrationError, match="nothing to migrate"):
        coll.migrate(minilm)
    with pytest.raises(MigrationError, match="--drop-old before --swap"):
        coll.drop_old_model()

    # searches in a thread while the migration runs: never fail, always answer from the old model
    stop = threading.Event()
    errors: list[BaseException] = []
    answers: list[str] = []

    def searcher() -> None:
        while not stop.is_set():
            try:
                answers.append(coll.search("a database server", k=1)[0].id)
            except BaseException as exc:
                errors.append(exc)

    t = threading.Thread(target=searcher)
    t.start()
    try:
        # the provider drops after 2 batches of 7: paused, the rows done are kept, the error is recorded
        with pytest.raises(MigrationPausedError, match="run the same command again"):
            coll.migrate(Flaky(mini128, 2), batch_size=7)
        st = coll.migration
        assert st is not None
        assert (st["state"], st["done"], st["rows"]) == ("building", 14, 30)
        assert "connection refused" in st["error"]
        assert st["answering"] == minilm.spec
        # a row written meanwhile (with the old model only) and a row deleted meanwhile
        coll.upsert([{"id": "p99", "content": "a brand new database engine", "lang": "en",
                      "vector": minilm.embed_query("a brand new database engine")}])
        coll.delete(["p00"])
        progress: list[tuple[int, int]] = []
        st = coll.migrate(mini128, batch_size=7, progress=lambda d, n: progress.append((d, n)))
    finally:
        stop.set()
        t.join()
    assert errors == []
    assert answers
    assert set(answers) <= {f"p{i:02d}" for i in range(30)} | {"p99"}
    assert st is not None
    assert (st["done"], st["pending"], st["error"]) == (30, 0, None)
    assert progress[0] == (14, 30)  # p99 was written to both tables by the write hook, p00 left both
    assert progress[-1] == (30, 30)

    # the result equals an uninterrupted migration: every row's new vector is the new model's
    shadow_rows, _ = store.execute(f"SELECT `id`, `content` FROM `{shadow_table(collection_name)}` ORDER BY `id`")
    live = {r["id"]: r["content"] for b in coll.iter_rows(include_vectors=False) for r in b}
    assert dict(shadow_rows) == live
    # a row changed after the last pass is picked up by the swap's own last pass
    coll.upsert([{"id": "p01", "content": "a web browser", "lang": "de",
                  "vector": minilm.embed_query("a web browser")}])

    new = coll.swap_model()
    assert (new.dimension, new.spec, new.migration["state"]) == (128, mini128.spec, "swapped")
    got = new.get(["p01", "p99"], include_vectors=True)
    assert got[0]["lang"] == "de"
    assert got[0]["metadata"] == {}
    np.testing.assert_allclose(got[0]["vector"], mini128.embed_documents(["a web browser"])[0], atol=1e-4)
    assert new.search("a brand new database engine", k=1)[0].id == "p99"  # the new model answers
    with pytest.raises(MigrationError, match="already"):
        new.migrate(mini128)

    # rollback after the swap: rows written since get the old model's vectors too
    new.upsert([{"id": "q1", "content": "a mail client", "vector": mini128.embed_query("a mail client")}])
    old = new.rollback_model()
    assert (old.dimension, old.spec, old.migration["state"]) == (384, minilm.spec, "building")
    assert old.search("a mail client", k=1)[0].id == "q1"
    new = old.swap_model()
    assert new.dimension == 128
    assert new.count() == 31
    assert new.drop_old_model()["dropped"] == minilm.spec
    assert new.migration is None
    assert not store._table_exists(shadow_table(collection_name))
    with pytest.raises(MigrationError):
        new.rollback_model()


def test_migrate_refuses_rows_without_content(store, collection_name, minilm, mini128):
    coll = _fill(store, collection_name, minilm)
    coll.upsert([{"id": "bare", "vector": minilm.embed_query("x")}])
    with pytest.raises(MigrationError, match=r"'bare' .* no stored content"):
        coll.migrate(mini128)
    assert coll.count() == 31
    assert coll.dimension == 384
    assert coll.rollback_model().migration is None
    store.drop_collection(collection_name)
    assert not store._table_exists(shadow_table(collection_name))


def test_cli_migrate(store, store_test_dsn, collection_name, minilm):
    db = ["--dsn", store_test_dsn] if store_test_dsn else ["--db", str(store.path)]
    _fill(store, collection_name, minilm)
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> Any:
        res = runner.invoke(main, list(args), catch_exceptions=False)
        assert res.exit_code == code, res.output
        return res

    res = cli("collections", "migrate", collection_name, *db, "--drop-old", code=1)
    assert "--drop-old before --swap" in res.output
    res = cli("collections", "migrate", collection_name, *db, "-m", "st:all-MiniLM-L6-v2", "-o", "truncate_dim=64",
              "--json")
    st = json.loads(res.stdout)
    assert (st["done"], st["rows"], st["answering"]) == (30, 30, minilm.spec)
    shown = cli("collections", "show", collection_name, *db).stdout
    assert "migration" in shown
    assert "30/30 rows re-embedded" in shown
    assert f"{minilm.spec} answers" in shown
    cli("collections", "migrate", collection_name, *db, "--swap")
    shown = json.loads(cli("collections", "show", collection_name, *db, "--json").stdout)
    assert shown["dimension"] == 64
    assert shown["migration"]["state"] == "swapped"
    res = cli("search", "a database tool", "-c", collection_name, *db, "-k", "1", "--json")
    assert json.loads(res.stdout)["hits"][0]["content"].startswith("database")
    res = cli("collections", "migrate", collection_name, *db, "--drop-old")
    assert "dropped the vectors of" in res.stdout


def _table(store, table: str) -> dict[str, tuple[str, np.ndarray]]:
    rows, _ = store.execute(f"SELECT `id`, `content`, `embedding` FROM `{table}` ORDER BY `id`")
    return {r[0]: (r[1], parse_vector(r[2])) for r in rows}


def test_writes_during_a_migration_get_both_vectors(store, collection_name, minilm, mini128):
    """Upserts and deletes in a thread while the migration runs, and after its last pass: the write hook puts every
    row in both tables, so the swap needs no re-embedding and the table equals a fresh embedding with the new model."""
    coll = _fill(store, collection_name, minilm)
    new_texts = {f"w{i:02d}": f"written meanwhile {i}: a {w} for the desktop" for i, w in
                 enumerate(["spreadsheet", "music player", "text editor", "terminal", "image viewer", "game"] * 2)}
    changed = {f"p{i:02d}": f"rewritten package {i}: a network monitor" for i in (3, 9, 15)}
    old_vecs = dict(zip([*new_texts, *changed], minilm.embed_documents([*new_texts.values(), *changed.values()]),
                        strict=True))
    gone = ["p05", "p11", "w01"]
    errors: list[BaseException] = []
    started = threading.Event()

    def writer() -> None:
        try:
            started.wait(60)
            for i, (rid, text) in enumerate(new_texts.items()):
                coll.upsert([{"id": rid, "content": text, "vector": old_vecs[rid], "lang": "en"}])
                if i == 4:
                    coll.upsert([{"id": r, "content": t, "vector": old_vecs[r], "lang": "fr"}
                                 for r, t in changed.items()])
                if i == 6:
                    assert coll.delete(gone[:2]) == 2
            assert coll.delete(where={"id": "w01"}) == 1
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    try:
        coll.migrate(mini128, batch_size=4, progress=lambda d, n: started.set())
    finally:
        started.set()
        t.join()
    assert errors == []
    # after the migration's last pass: only the hook can bring these rows to the new model's table
    late = {"z1": "a late arrival: a backup tool"}
    coll.upsert([{"id": "z1", "content": late["z1"], "vector": minilm.embed_documents(list(late.values()))[0]}])
    assert coll.delete(["p20"]) == 1
    shadow = _table(store, shadow_table(collection_name))
    live = _table(store, collection_name)
    assert set(shadow) == set(live)
    assert {"z1", *new_texts} - {"w01"} <= set(live)
    assert not {"p20", "w01", *gone} & set(live)
    assert live["p03"][0] == shadow["p03"][0] == changed["p03"]
    with pytest.raises(obembed.errors.InvalidInputError, match=r"row 0 \(id 'bare'\) has no 'content'.*migrated"):
        coll.upsert([{"id": "bare", "vector": minilm.embed_query("x")}])  # cannot get the other vector: refused
    assert "bare" not in _table(store, collection_name)

    # the swap's last pass has nothing to re-embed: a provider that fails on any call still swaps
    new = coll.swap_model(Flaky(mini128, 0))
    assert (new.dimension, new.spec) == (128, mini128.spec)
    final = _table(store, collection_name)
    assert set(final) == set(live)
    ids = sorted(final)
    fresh = mini128.embed_documents([final[i][0] for i in ids])
    np.testing.assert_allclose(np.stack([final[i][1] for i in ids]), fresh, atol=1e-4)
    # the old model's table got the same rows (rollback stays complete)
    old = _table(store, shadow_table(collection_name))
    assert set(old) == set(final)
    np.testing.assert_allclose(old["z1"][1], minilm.embed_documents([late["z1"]])[0], atol=1e-4)


def test_sparse_collection_is_refused_with_the_way_out(store, collection_name, minilm, mini128):
    coll = store.create_collection(collection_name, minilm, sparse=True)
    coll.upsert([{"id": "a", "content": "a text editor", "vector": minilm.embed_query("a text editor"),
                  "sparse": {7: 0.5}}])
    with pytest.raises(MigrationError, match=r"sparse vector column.*Ingest the same sources into a new collection"):
        coll.migrate(mini128)
    assert coll.migration is None
    assert not store._table_exists(shadow_table(collection_name))
    assert coll.get(["a"], include_vectors=True)[0]["sparse"] == {7: 0.5}  # nothing changed


def test_bare_dimension_collection_migrates_and_takes_writes_after_the_swap(store, collection_name, minilm):
    """A collection made from a bare dimension (no model recorded) migrates to a real model; after the swap the old
    side cannot be embedded (no model), so writes go to the answering table alone, and an object opened before the
    swap writes its (old-space) vectors to the old table while the live one gets the model's vectors."""
    rng = np.random.default_rng(0)
    stale = store.create_collection(collection_name, 384)
    texts = ["a text editor", "a mail reader", "a tiling window manager"]
    stale.upsert([{"id": f"b{i}", "content": t, "vector": rng.standard_normal(384)} for i, t in enumerate(texts)])
    stale.migrate(minilm)
    new = stale.swap_model()
    assert new.spec == minilm.spec
    new.upsert([{"id": "n1", "content": "a music player", "vector": minilm.embed_documents(["a music player"])[0]}])
    old_vec = rng.standard_normal(384).astype(np.float32)
    stale.upsert([{"id": "s1", "content": "a disk usage tool", "vector": old_vec}])
    live = _table(store, collection_name)
    old = _table(store, shadow_table(collection_name))
    assert set(live) == {"b0", "b1", "b2", "n1", "s1"}
    assert set(old) == {"b0", "b1", "b2", "s1"}  # n1 has no old-space vector: the old side has no model
    np.testing.assert_allclose(old["s1"][1], old_vec, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(live["s1"][1], minilm.embed_documents(["a disk usage tool"])[0], atol=1e-4)
    assert new.drop_old_model()["dropped"] is None


_BAD_ROWS = st.one_of(
    st.fixed_dictionaries({"id": st.just("x1"), "vector": st.just([0.1] * 384)}),  # no content
    st.fixed_dictionaries({"id": st.just("x2"), "content": st.text(min_size=1, max_size=20),
                           "vector": st.lists(st.floats(-1, 1), min_size=1, max_size=383)}),  # wrong dimension
    st.fixed_dictionaries({"id": st.just("x3"), "content": st.just("t"), "vector": st.just([float("nan")] * 384)}),
    st.fixed_dictionaries({"id": st.one_of(st.just(""), st.just("ends "), st.integers()), "content": st.just("t"),
                           "vector": st.just([0.1] * 384)}),  # bad id
    st.fixed_dictionaries({"id": st.just("x4"), "content": st.just("t"), "vector": st.just([0.1] * 384),
                           "colour": st.text(max_size=5)}),  # unknown field
)


@pytest.fixture(scope="module")
def migrating(store, mini128, minilm):
    import uuid

    name = f"migprop_{uuid.uuid4().hex[:8]}"
    coll = store.create_collection(name, minilm)
    texts = ["a text editor", "a mail reader", "a shell"]
    coll.upsert([{"id": f"r{i}", "content": t, "vector": v}
                 for i, (t, v) in enumerate(zip(texts, minilm.embed_documents(texts), strict=True))])
    coll.migrate(mini128)
    yield coll
    store.drop_collection(name, missing_ok=True)


@settings(max_examples=25)
@given(good=st.booleans(), bad=_BAD_ROWS)
def test_bad_rows_during_a_migration_write_nothing_to_either_table(store, migrating, good, bad):
    before = (_table(store, migrating.name), _table(store, shadow_table(migrating.name)))
    rows = ([{"id": "r0", "content": "changed", "vector": [0.2] * 384}] if good else []) + [bad]
    with pytest.raises((obembed.errors.InvalidInputError, obembed.errors.DimensionMismatchError)) as err:
        migrating.upsert(rows)
    assert f"row {len(rows) - 1}" in str(err.value)  # names the bad row
    after = (_table(store, migrating.name), _table(store, shadow_table(migrating.name)))
    assert {k: v[0] for k, v in after[0].items()} == {k: v[0] for k, v in before[0].items()}
    assert {k: v[0] for k, v in after[1].items()} == {k: v[0] for k, v in before[1].items()}
