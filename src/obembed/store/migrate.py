"""Change a collection's model without downtime: build the new model's vectors in a shadow table, swap, roll back.

Layout (the reason is in docs/storage.md, "Changing the model"): the new vectors live in a **shadow table**, a
full copy of the collection's rows with a ``VECTOR(new_dim)`` column and its own vector index, not in a second
column of the live table. Adding a column to a live table with a vector index is a schema change on the table
every search reads; a separate table leaves the live one (and its index) untouched until the swap, lets the new
index be built at its own dimension, and makes the swap one ``RENAME TABLE`` of two tables (atomic in the engine)
plus one metadata row. The old table is kept under another name until ``drop_old``, so ``rollback`` is the same
rename the other way.

The state of a migration is one row of ``obembed_migrations`` (``building`` -> ``swapping`` -> ``swapped``); every
step is idempotent, so a run killed at any moment is finished by running the same step again:

* ``building``: :func:`migrate` copies the rows whose shadow copy is missing or differs (content, source, chunk,
  hash, columns, metadata), re-embedding their stored content in batches; shadow rows whose id left the live table
  are deleted. A rerun copies only what is still missing, so the result equals an uninterrupted run.
* a provider error pauses the migration (:class:`MigrationPausedError`, the error recorded); rerun to resume.
* ``removing`` (cancel before the swap, ``drop_old`` after it): the shadow table is dropped, then the row.

Writes during a migration (:meth:`Collection.upsert`/``delete``, so ingest too) go to both tables: the hook
(:func:`dual_upsert`, :func:`dual_delete`) embeds the row's content with the other model and writes both rows in
one transaction that first locks the migration's state row; a swap, rollback or removal changes that row before it
renames or drops a table, so it waits for writes in flight, and writes started after it see the new state. When no
migration is under way the hook costs a dictionary lookup (a process looks at the state again after
:data:`STATE_CACHE_S`); a row that missed the hook (written by a process that had not looked yet, or while the
other model's provider was unreachable) is found by the next pass, and :func:`swap` runs a last pass first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InvalidInputError, MigrationError, MigrationPausedError, ObembedError, ProviderError
from . import schema
from .collection import DELETE_BATCH, Collection
from .filters import Where, compile_where

if TYPE_CHECKING:
    from .base import QueryModel
    from .seekdb import Store

__all__ = [
    "MIGRATIONS_TABLE",
    "drop_migration",
    "dual_delete",
    "dual_upsert",
    "migrate",
    "migration_status",
    "rollback",
    "swap",
]

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "obembed_migrations"
DEFAULT_BATCH = 256

Progress = Callable[[int, int], None]
"""``progress(done, total)`` after every batch."""


def _ddl() -> str:
    return f"""CREATE TABLE IF NOT EXISTS {schema.quote(MIGRATIONS_TABLE)} (
  `name` varchar(64) NOT NULL,
  `state` varchar(16) NOT NULL,
  `target` json NOT NULL,
  `previous` json NOT NULL,
  `error` text,
  `updated_at` timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (`name`)
) DEFAULT CHARSET = utf8mb4"""


SHADOW_PREFIX = "obembed_mig_"
REMOVING = "removing"
STATE_CACHE_S = 1.0
"""How long a process trusts its last look at "is this collection being migrated?" before a write looks again."""


def shadow_table(name: str) -> str:
    """The table holding the model that does not answer: the new one before the swap, the old one after."""
    return SHADOW_PREFIX + hashlib.sha1(name.encode()).hexdigest()[:24]


def _has_table(store: Store) -> bool:
    return schema.table_exists(store, MIGRATIONS_TABLE, "the migrations table")


def _ensure_table(store: Store) -> None:
    schema.ensure_table(store, MIGRATIONS_TABLE, _ddl(), "the migrations table")


def _state(store: Store, name: str, *, finish: bool = True) -> dict[str, Any] | None:
    """The migration of ``name`` (None: none). A removal cut off by a kill is finished first (``finish``)."""
    _ensure_table(store)
    rows, _ = store.execute(f"SELECT `state`, `target`, `previous`, `error` FROM {schema.quote(MIGRATIONS_TABLE)} "
                            "WHERE `name` = %s", (name,), what=f"read the migration of {name!r}")
    st = _parse_state(rows[0]) if rows else None
    if st is not None and st["state"] == REMOVING:  # a removal was cut off: finish it
        if not finish:
            return None
        _remove(store, name)
        st = None
    _remember(store, name, st)
    return st


def _parse_state(row: Sequence[Any]) -> dict[str, Any]:
    state, target, previous, error = row
    return {"state": state, "target": json.loads(target), "previous": json.loads(previous), "error": error}


def _set_state(store: Store, name: str, state: str, error: str | None = None) -> None:
    store.execute(f"UPDATE {schema.quote(MIGRATIONS_TABLE)} SET `state` = %s, `error` = %s WHERE `name` = %s",
                  (state, error, name), what=f"record the migration of {name!r}", fetch=False)


def _model_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The model-dependent part of a collection's metadata."""
    return {k: meta.get(k) for k in ("dimension", "distance", "spec", "space", "provider", "index_type",
                                     "index_params")}


def _shadow_collection(coll: Collection, model: dict[str, Any]) -> Collection:
    meta = dict(coll.metadata)
    meta.update(model)
    meta["name"] = shadow_table(coll.name)
    return Collection(coll.store, meta)


def _same_space(coll: Collection, provider: QueryModel) -> bool:
    return int(provider.dimension) == coll.dimension and bool(coll.space) and provider.space == coll.space


def _load(store: Store, info: dict[str, Any], what: str) -> QueryModel:
    factory = store.provider_factory
    spec = info.get("spec")
    if factory is None or not spec:
        raise ConfigError(f"{what} needs the model {spec or '(none recorded)'}: open the store with "
                          "obembed.connect(), or pass the provider")
    options = dict((info.get("provider") or {}).get("options") or {})
    return factory(spec, **options)


def _pending_sql(coll: Collection, src: str, dst: str, batch: int, after: bool) -> str:
    cols = ["content", "source", "chunk", "content_hash", *coll.columns, "metadata"]
    differs = " OR ".join(f"NOT (s.{schema.quote(c)} <=> m.{schema.quote(c)})" for c in cols)
    sel = ", ".join(f"m.{schema.quote(c)}" for c in ["id", *cols])
    return (f"SELECT {sel} FROM {schema.quote(src)} m LEFT JOIN {schema.quote(dst)} s ON s.`id` = m.`id` "
            f"WHERE (s.`id` IS NULL OR {differs})" + (" AND m.`id` > %s" if after else "")
            + f" ORDER BY m.`id` LIMIT {int(batch)}")


def _count(store: Store, sql: str) -> int:
    return int(store.execute(sql, what="count rows")[0][0][0])


def _sync(src: Collection, dst: Collection, provider: QueryModel, batch_size: int,
          progress: Progress | None, state: str) -> int:
    """Make ``dst`` hold every row of ``src`` (same fields, vectors of ``provider``) while the migration is in
    ``state``; returns rows re-embedded."""
    store = src.store
    s, d = schema.quote(src.name), schema.quote(dst.name)
    missing = store.execute(f"SELECT `id` FROM {s} WHERE `content` IS NULL LIMIT 1", what="check contents")[0]
    if missing:
        raise MigrationError(
            f"row {missing[0][0]!r} of collection {src.metadata['name']!r} has no stored content, so it cannot be "
            "re-embedded with another model; give it content (upsert it with 'content') or delete it, then rerun")
    store.execute(f"DELETE FROM {d} WHERE `id` NOT IN (SELECT `id` FROM {s})", what="drop rows deleted meanwhile",
                  fetch=False)
    total = _count(store, f"SELECT COUNT(*) FROM {s}")
    done = total - _count(store, f"SELECT COUNT(*) FROM ({_pending_sql(src, src.name, dst.name, 10**12, False)}) t")
    names = ["id", "content", "source", "chunk", "content_hash", *src.columns, "metadata"]
    last: str | None = None
    embedded = 0
    if progress:
        progress(done, total)
    while True:
        rows, _ = store.execute(_pending_sql(src, src.name, dst.name, batch_size, last is not None),
                                [last] if last is not None else None, what="read rows to re-embed")
        if not rows:
            return embedded
        items = [dict(zip(names, r, strict=True)) for r in rows]
        vectors = provider.embed_documents([it["content"] for it in items])  # type: ignore[attr-defined]
        for it, v in zip(items, vectors, strict=True):
            it["vector"] = v
            it["metadata"] = json.loads(it["metadata"]) if it["metadata"] else None
        read = {r[0]: tuple(r) for r in rows}
        sel = ", ".join(schema.quote(c) for c in names)
        marks = ", ".join(["%s"] * len(rows))

        def unchanged(cur: Any, items: list[dict[str, Any]] = items, read: dict[str, Any] = read,
                      sel: str = sel, marks: str = marks) -> Statements:
            # a write to both tables since the read (it holds the same lock) already gave the shadow its row
            cur.execute(f"SELECT {sel} FROM {s} WHERE `id` IN ({marks})", list(read))
            now = {r[0]: tuple(r) for r in cur.fetchall()}
            keep = [it for it in items if now.get(it["id"]) == read[it["id"]]]
            return list(dst._statements(dst._prepare(keep))) if keep else []

        if _locked_write(store, src.name, state, unchanged, f"re-embed rows of {src.name!r}") is None:
            raise MigrationError(f"the migration of {src.name!r} changed meanwhile (another process swapped, rolled "
                                 "back or cancelled it); look at `obembed collections show NAME` and rerun")
        embedded += len(items)
        done += len(items)
        last = items[-1]["id"]
        if progress:
            progress(min(done, total), total)


def migrate(coll: Collection, provider: QueryModel, *, batch_size: int = DEFAULT_BATCH,
            progress: Progress | None = None) -> dict[str, Any] | None:
    """Build ``provider``'s vectors for every row of ``coll`` in the shadow table (or continue doing so); the
    collection keeps answering from its current model. Returns :func:`migration_status`."""
    store = coll.store
    name = coll.name
    with store._session.lock:
        st = _state(store, name)
        info = dict(provider.info())
        info.setdefault("space", provider.space)
        target: dict[str, Any] = {"dimension": int(provider.dimension), "distance": coll.distance,
                                  "spec": provider.spec, "space": provider.space, "provider": info,
                                  "index_type": coll.metadata.get("index_type")}
        if st is None:
            if coll.has_sparse:
                raise MigrationError(
                    f"collection {name!r} has a sparse vector column (hybrid search): its sparse weights are token "
                    "ids of the current model's vocabulary, which a migration cannot carry to another model, so it "
                    "refuses rather than leave hybrid search half old. Ingest the same sources into a new "
                    f"collection with {provider.spec} (store.create_collection(new, model, sparse=True) when it has "
                    "a sparse output, or `obembed ingest PATH --collection NEW --model SPEC`), search that one, "
                    f"then drop {name!r} (docs/storage.md, 'Changing the model')")
            if _same_space(coll, provider):
                raise MigrationError(f"nothing to migrate: collection {name!r} already holds vectors of "
                                     f"{provider.spec} ({coll.dimension}-d, space {coll.space})")
            idx = target["index_type"]
            target["index_params"] = schema.index_params(idx, target["dimension"], {}) if idx else {}
            store.execute(f"DROP TABLE IF EXISTS {schema.quote(shadow_table(name))}", fetch=False,
                          what="clear a stale shadow table")
            store.execute(schema.collection_ddl(shadow_table(name), target["dimension"], coll.distance,
                                                columns=coll.columns, index=idx, index_params=target["index_params"],
                                                fulltext=coll.metadata.get("fulltext") or coll.fulltext_pending),
                          what=f"create the shadow table of {name!r}", fetch=False, retry=False)
            store.execute(f"INSERT INTO {schema.quote(MIGRATIONS_TABLE)} (`name`, `state`, `target`, `previous`) "
                          "VALUES (%s, 'building', %s, %s)",
                          (name, json.dumps(target, default=str), json.dumps(_model_meta(coll.metadata), default=str)),
                          what=f"record the migration of {name!r}", fetch=False)
            st = _state(store, name)
            assert st is not None
        elif st["state"] != "building":
            raise MigrationError(f"collection {name!r} was swapped to {st['target']['spec']} already; "
                                 "`--drop-old` to finish, or `--rollback` to go back")
        elif st["target"].get("space") != provider.space or int(st["target"]["dimension"]) != int(provider.dimension):
            raise MigrationError(f"collection {name!r} is being migrated to {st['target']['spec']}, not "
                                 f"{provider.spec}; finish that one, or cancel it with `--rollback`")
    shadow = _shadow_collection(coll, {**st["target"]})
    try:
        _sync(coll, shadow, provider, batch_size, progress, "building")
    except (ProviderError, OSError) as exc:
        _set_state(store, name, "building", f"{type(exc).__name__}: {exc}")
        raise MigrationPausedError(f"migration of {name!r} to {provider.spec} paused: {exc}. The rows done so far "
                                   "are kept; run the same command again to resume") from exc
    _set_state(store, name, "building", None)
    return migration_status(coll)


def _rename(store: Store, a: str, b: str) -> None:
    tmp = "obembed_mtmp_" + hashlib.sha1(a.encode()).hexdigest()[:24]
    store.execute(f"RENAME TABLE {schema.quote(a)} TO {schema.quote(tmp)}, {schema.quote(b)} TO {schema.quote(a)}, "
                  f"{schema.quote(tmp)} TO {schema.quote(b)}", what=f"swap tables of {a!r}", fetch=False, retry=False)


def _write_meta(store: Store, name: str, model: dict[str, Any]) -> None:
    store.execute(
        f"UPDATE {schema.quote(schema.META_TABLE)} SET `dimension` = %s, `distance` = %s, `spec` = %s, `space` = %s, "
        "`provider` = %s, `index_type` = %s, `index_params` = %s WHERE `name` = %s",
        (model["dimension"], model["distance"], model.get("spec"), model.get("space"),
         json.dumps(model["provider"], default=str) if model.get("provider") else None, model.get("index_type"),
         json.dumps(model.get("index_params") or {}), name), what=f"record the model of {name!r}", fetch=False)


def _flip(coll: Collection, st: dict[str, Any], to: str, provider: QueryModel | None) -> Collection:
    """Swap (``to="target"``) or roll back (``to="previous"``): bring the waiting table up to date, then rename
    both tables and rewrite the metadata row. Rerunning after a kill finishes the step."""
    store = coll.store
    name = coll.name
    final = "swapped" if to == "target" else "building"
    moving = f"{st['state']}>{to}"
    if st["state"] not in ("building", "swapped"):  # a kill between the steps below: finish them
        moving = st["state"]
    if moving in ("building>target", "swapped>previous"):
        model = st[to]
        prov = provider or _load(store, model, "the swap" if to == "target" else "the rollback")
        if provider is not None and (provider.space != model.get("space")):
            raise MigrationError(f"{provider.spec} is not the model of this step ({model.get('spec')})")
        try:
            _sync(coll, _shadow_collection(coll, model), prov, DEFAULT_BATCH, None, st["state"])
        except (ProviderError, OSError) as exc:
            raise MigrationPausedError(f"{'swap' if to == 'target' else 'rollback'} of {name!r} paused while "
                                       f"re-embedding the last rows: {exc}; run it again") from exc
        moving = "swapping" if to == "target" else "rolling"
        with store._session.lock:
            _set_state(store, name, moving)
            _rename(store, name, shadow_table(name))
            _write_meta(store, name, st[to])
            _set_state(store, name, final)
    else:  # resumed: did the rename happen? the live table's dimension says
        want = int(st["target" if moving == "swapping" else "previous"]["dimension"])
        with store._session.lock:
            live = Collection(store, {**coll.metadata, "dimension": _table_dim(store, name)})
            if live.dimension != want:
                _rename(store, name, shadow_table(name))
            _write_meta(store, name, st["target" if moving == "swapping" else "previous"])
            _set_state(store, name, "swapped" if moving == "swapping" else "building")
    return store.collection(name)


def _table_dim(store: Store, table: str) -> int:
    rows, _ = store.execute(
        "SELECT column_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "AND column_name = %s", (store.database, table, schema.VECTOR_COLUMN), what="read a vector dimension")
    text = str(rows[0][0])
    return int(text[text.index("(") + 1:text.index(")")])


def swap(coll: Collection, provider: QueryModel | None = None) -> Collection:
    """Make the new model the collection's model (after a last pass over rows written meanwhile): the tables are
    renamed in one statement and the metadata row rewritten. The old vectors stay until :func:`drop_old`.
    Returns the collection reopened (its new model answers)."""
    st = _state(coll.store, coll.name)
    if st is None:
        raise MigrationError(f"collection {coll.name!r} has no migration to swap; start one with "
                             "`obembed collections migrate NAME --model SPEC`")
    if st["state"] == "swapped":
        raise MigrationError(f"collection {coll.name!r} was swapped to {st['target']['spec']} already")
    if st["state"] == "rolling":
        return _flip(coll, st, "previous", None)
    return _flip(coll, st, "target", provider)


def rollback(coll: Collection, provider: QueryModel | None = None) -> Collection:
    """Before the swap: cancel the migration (drop the new vectors). After it: answer from the old model again
    (rows written since the swap are re-embedded with it first); the new vectors are kept, so a later swap is
    quick. Refused once the old vectors are dropped."""
    store = coll.store
    st = _state(store, coll.name)
    if st is None:
        raise MigrationError(f"collection {coll.name!r} has no migration to roll back (after `--drop-old` the old "
                             "vectors are gone: migrate back instead)")
    if st["state"] == "building":
        _remove(store, coll.name)
        return store.collection(coll.name)
    if st["state"] == "swapping":
        coll = _flip(coll, st, "target", None)
        st = _state(store, coll.name)
        assert st is not None
    return _flip(coll, st, "previous", provider)


def drop_old(coll: Collection) -> dict[str, Any]:
    """After the swap: drop the old model's vectors (rollback is no longer possible)."""
    store = coll.store
    st = _state(store, coll.name)
    if st is None or st["state"] not in ("swapped", "swapping"):
        raise MigrationError(f"--drop-old before --swap: collection {coll.name!r} still answers from "
                             f"{coll.spec}; swap first (`--swap`), or cancel the migration with `--rollback` "
                             "(or the old vectors were dropped already)")
    if st["state"] == "swapping":
        coll = _flip(coll, st, "target", None)
    _remove(store, coll.name)
    return {"collection": coll.name, "state": None, "dropped": st["previous"].get("spec")}


def drop_migration(store: Store, name: str) -> None:
    """Remove a collection's migration (shadow table and state row): for drop_collection."""
    if _has_table(store):
        _remove(store, name)
    else:
        store.execute(f"DROP TABLE IF EXISTS {schema.quote(shadow_table(name))}", fetch=False,
                      what="drop the shadow")
        _remember(store, name, None)


def _remove(store: Store, name: str) -> None:
    """End a migration: mark it ``removing`` (this waits for writes in flight to both tables; later writes go to
    the collection's table only), drop the shadow table, forget the state row. A kill at any point is finished
    by the next look at the state (:func:`_state`)."""
    with store._session.lock:
        _set_state(store, name, REMOVING)
        store.execute(f"DROP TABLE IF EXISTS {schema.quote(shadow_table(name))}", fetch=False,
                      what="drop the shadow table")
        store.execute(f"DELETE FROM {schema.quote(MIGRATIONS_TABLE)} WHERE `name` = %s", (name,), fetch=False,
                      what="forget the migration")
        _remember(store, name, None)


def migration_status(coll: Collection) -> dict[str, Any] | None:
    """``None`` without a migration; else state, models present, which one answers, progress, last error."""
    store = coll.store
    st = _state(store, coll.name)
    if st is None:
        return None
    answering = st["previous"] if st["state"] in ("building", "rolling") else st["target"]
    out: dict[str, Any] = {
        "state": st["state"], "from": st["previous"].get("spec"), "to": st["target"].get("spec"),
        "answering": answering.get("spec"), "error": st["error"],
    }
    if st["state"] == "building":
        try:
            total = _count(store, f"SELECT COUNT(*) FROM {schema.quote(coll.name)}")
            pending_sql = _pending_sql(coll, coll.name, shadow_table(coll.name), 10**12, False)
            pending = _count(store, f"SELECT COUNT(*) FROM ({pending_sql}) t")
        except ObembedError as exc:  # pragma: no cover - shown, not raised
            out["progress_error"] = str(exc)
        else:
            out.update(rows=total, done=total - pending, pending=pending)
    return out


# ------------------------------------------------------------------------------------------------ the write hook
# Collection.upsert/delete ask `_active` first: a dict lookup while the last look is fresh (STATE_CACHE_S), one
# query after that. While a migration is under way, rows go to both tables in one transaction that first locks
# the migration's state row (SELECT ... FOR UPDATE): a swap or rollback sets that row before it renames the
# tables, so it waits for writes in flight, and writes wait for it; no write lands on one side of a rename only.
_CACHE: weakref.WeakKeyDictionary[Store, dict[str, tuple[float, dict[str, Any] | None]]] = (
    weakref.WeakKeyDictionary())
_FLIP_WAIT_S = 30.0
_WARNED: set[tuple[int, str, str | None]] = set()


def _remember(store: Store, name: str, st: dict[str, Any] | None) -> None:
    _CACHE.setdefault(store, {})[name] = (time.monotonic() + STATE_CACHE_S, st)


def _active(store: Store, name: str) -> bool:
    """Whether ``name`` may be under a migration (cached for :data:`STATE_CACHE_S`)."""
    if name.startswith(SHADOW_PREFIX):
        return False
    hit = _CACHE.get(store, {}).get(name)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1] is not None
    if not _has_table(store):
        _remember(store, name, None)
        return False
    rows, _ = store.execute(f"SELECT `state`, `target`, `previous`, `error` FROM {schema.quote(MIGRATIONS_TABLE)} "
                            "WHERE `name` = %s", (name,), what=f"read the migration of {name!r}")
    st = _parse_state(rows[0]) if rows else None
    _remember(store, name, st)
    return st is not None


def _same_model(coll: Collection, model: dict[str, Any]) -> bool:
    return int(model["dimension"]) == coll.dimension and (model.get("space") or None) == (coll.space or None)


def _tables(coll: Collection, st: dict[str, Any]) -> tuple[Collection, Collection, dict[str, Any]]:
    """(the table holding the caller's model, the other table, the other model) in state ``st``: before the swap
    the collection's own table holds the previous model, after it the target (the shadow table the other)."""
    live_key, shadow_key = ("previous", "target") if st["state"] == "building" else ("target", "previous")
    live = Collection(coll.store, {**_shadow_collection(coll, st[live_key]).metadata, "name": coll.name})
    shadow = _shadow_collection(coll, st[shadow_key])
    if _same_model(coll, st[live_key]):
        return live, shadow, st[shadow_key]
    if _same_model(coll, st[shadow_key]):  # a Collection object opened before the swap (or the rollback)
        return shadow, live, st[live_key]
    raise MigrationError(
        f"collection {coll.name!r} is being migrated from {st['previous'].get('spec')} to {st['target'].get('spec')}; "
        f"these rows have {coll.dimension}-d vectors of {coll.spec}, neither of the two: reopen the collection "
        "(store.collection(name)) and write vectors of the model that answers")


Statements = Sequence[tuple[str, Sequence[Any]]]


def _locked_write(store: Store, name: str, state: str, statements: Statements | Callable[[Any], Statements],
                  what: str) -> list[int] | None:
    """Run ``statements`` in one transaction if the migration of ``name`` is still in ``state`` (its row locked
    first; a callable gets the cursor then and returns them); returns each statement's rowcount, or None when the
    state moved (nothing written)."""
    import pymysql

    from .session import map_error

    sess = store._session
    with sess.lock:
        conn = sess._live
        try:
            conn.begin()
            with conn.cursor() as cur:
                cur.execute(f"SELECT `state` FROM {schema.quote(MIGRATIONS_TABLE)} WHERE `name` = %s FOR UPDATE",
                            (name,))
                row = cur.fetchone()
                if (row[0] if row else None) != state:
                    conn.rollback()
                    return None
                todo = statements(cur) if callable(statements) else statements
                counts = [int(cur.execute(sql, params)) for sql, params in todo]
            conn.commit()
            return counts
        except pymysql.err.Error as exc:
            try:
                conn.rollback()
            except pymysql.err.Error:
                pass
            raise map_error(exc, what) from exc
        except BaseException:
            try:
                conn.rollback()
            except pymysql.err.Error:
                pass
            raise


def _steady_state(coll: Collection) -> dict[str, Any] | None:
    """The migration state, waiting out a swap or rollback in flight (they take a moment)."""
    deadline = time.monotonic() + _FLIP_WAIT_S
    while True:
        st = _state(coll.store, coll.name, finish=False)
        if st is None or st["state"] in ("building", "swapped"):
            return st
        if time.monotonic() > deadline:
            raise MigrationError(
                f"collection {coll.name!r}: a {'swap' if st['state'] == 'swapping' else 'rollback'} was interrupted; "
                f"finish it with `obembed collections migrate {coll.name} "
                f"{'--swap' if st['state'] == 'swapping' else '--rollback'}`, then write again")
        time.sleep(0.05)


def dual_upsert(coll: Collection, rows: list[Any], batch_size: int) -> int | None:
    """The write hook of :meth:`Collection.upsert`: ``None`` when no migration is under way (the caller writes as
    usual); else every row is written to both tables, with the other model's vector computed from its content,
    each batch in one transaction. Rows without content cannot get the other vector: refused before any write."""
    if not _active(coll.store, coll.name):
        return None
    coll._prepare(rows)  # every row checked (id, fields, vector) before any embedding or SQL
    for i, r in enumerate(rows):
        if not isinstance(r.get("content"), str):
            raise InvalidInputError(
                f"row {i} (id {r.get('id')!r}) has no 'content': collection {coll.name!r} is being migrated to "
                "another model, which re-embeds the stored content, so every row written meanwhile needs it; give "
                "it content, or cancel the migration (`obembed collections migrate NAME --rollback`)", index=i)
    written = 0
    for start in range(0, len(rows), batch_size):
        part = rows[start:start + batch_size]
        other_vecs: Any = None
        other_model: dict[str, Any] | None = None
        while True:
            st = _steady_state(coll)
            if st is None:  # finished meanwhile: a plain write
                _remember(coll.store, coll.name, None)
                return None if written == 0 else written + coll.upsert(rows[start:], batch_size=batch_size)
            mine, other, model = _tables(coll, st)
            if other_model is None or model.get("space") != other_model.get("space"):
                other_model, other_vecs = model, None
                try:
                    other_vecs = other.model.embed_documents([r["content"] for r in part])  # type: ignore[attr-defined]
                except (ProviderError, ConfigError) as exc:  # unreachable; no factory; a bare-dimension old model
                    if mine.name != coll.name:
                        raise
                    # the pass of `migrate`/`--swap`/`--rollback` re-embeds it later (the other copy is missing)
                    key = (id(coll.store), coll.name, other.spec)
                    if key not in _WARNED:
                        _WARNED.add(key)
                        log.warning("collection %s: rows are written with the answering model only while %s cannot "
                                    "embed them (%s: %s); the migration's next pass adds the other vectors",
                                    coll.name, other.spec or "the other model", type(exc).__name__, exc)
            statements = list(mine._statements(mine._prepare(part)))
            if other_vecs is not None:
                twin = [{**r, "vector": v} for r, v in zip(part, other_vecs, strict=True)]
                statements += list(other._statements(other._prepare(twin)))
            if _locked_write(coll.store, coll.name, st["state"], statements,
                             f"upsert into {coll.name!r} (both models)") is not None:
                written += len(part)
                break
    return written


def dual_delete(coll: Collection, ids: list[str] | None, where: Where) -> int | None:
    """The delete hook of :meth:`Collection.delete`: ``None`` without a migration; else the rows leave both tables
    in one transaction per batch of ids; returns the rows deleted from the collection's own table."""
    if not _active(coll.store, coll.name):
        return None
    wsql, wparams = compile_where(where, coll._filter_columns) if where is not None else ("", [])
    parts: list[list[str] | None] = ([ids[s:s + DELETE_BATCH] for s in range(0, len(ids), DELETE_BATCH)]
                                     if ids is not None else [None])
    total = 0
    for n, part in enumerate(parts):
        while True:
            st = _steady_state(coll)
            if st is None:  # finished meanwhile: plain deletes for the rest
                _remember(coll.store, coll.name, None)
                if n == 0:
                    return None
                return total + coll.delete([i for p in parts[n:] for i in (p or [])], where=where)
            statements = []
            for table in (coll.name, shadow_table(coll.name)):
                q = schema.quote(table)
                if part is None:
                    statements.append((f"DELETE FROM {q} WHERE ({wsql})", list(wparams)))
                else:
                    marks = ", ".join(["%s"] * len(part))
                    sql = f"DELETE FROM {q} WHERE `id` IN ({marks}) AND BINARY `id` IN ({marks})"
                    statements.append((sql + (f" AND ({wsql})" if wsql else ""), [*part, *part, *wparams]))
            counts = _locked_write(coll.store, coll.name, st["state"], statements, f"delete from {coll.name!r}")
            if counts is not None:
                total += counts[0]
                break
    return total
