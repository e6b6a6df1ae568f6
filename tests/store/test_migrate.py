"""Model migration (issue 18) on the session's real seekdb (embedded, or OBEMBED_TEST_DSN), with two real local
models whose vector spaces differ: the bundled MiniLM (384-d) and MiniLM with truncate_dim=128."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import obembed
from obembed.cli import main
from obembed.errors import MigrationError, MigrationPausedError, ProviderConnectionError
from obembed.store.migrate import shadow_table

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
    assert progress[0] == (13, 30)
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
