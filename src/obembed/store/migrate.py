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
  are deleted. A rerun copies only what is still missing, so the result equals an uninterrupted run. Rows written
  to the collection meanwhile are picked up by the next pass; :func:`swap` runs a last pass first.
* a provider error pauses the migration (:class:`MigrationPausedError`, the error recorded); rerun to resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, MigrationError, MigrationPausedError, ObembedError, ProviderError
from . import schema
from .collection import Collection

if TYPE_CHECKING:
    from .base import QueryModel
    from .seekdb import Store

__all__ = ["MIGRATIONS_TABLE", "drop_migration", "migrate", "migration_status", "rollback", "swap"]

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


def shadow_table(name: str) -> str:
    """The table holding the model that does not answer: the new one before the swap, the old one after."""
    return "obembed_mig_" + hashlib.sha1(name.encode()).hexdigest()[:24]


def _state(store: Store, name: str) -> dict[str, Any] | None:
    store.execute(_ddl(), what="create the migrations table", fetch=False)
    rows, _ = store.execute(f"SELECT `state`, `target`, `previous`, `error` FROM {schema.quote(MIGRATIONS_TABLE)} "
                            "WHERE `name` = %s", (name,), what=f"read the migration of {name!r}")
    if not rows:
        return None
    state, target, previous, error = rows[0]
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
          progress: Progress | None) -> int:
    """Make ``dst`` hold every row of ``src`` (same fields, vectors of ``provider``); returns rows re-embedded."""
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
        dst.upsert(items)
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
                raise MigrationError(f"collection {name!r} has a sparse vector column, which a migration does not "
                                     "carry over yet: ingest into a new collection (sparse=True) with the new model")
            if _same_space(coll, provider):
                raise MigrationError(f"nothing to migrate: collection {name!r} already holds vectors of "
                                     f"{provider.spec} ({coll.dimension}-d, space {coll.space})")
            idx = target["index_type"]
            target["index_params"] = schema.index_params(idx, target["dimension"], {}) if idx else {}
            store.execute(f"DROP TABLE IF EXISTS {schema.quote(shadow_table(name))}", fetch=False,
                          what="clear a stale shadow table")
            store.execute(schema.collection_ddl(shadow_table(name), target["dimension"], coll.distance,
                                                columns=coll.columns, index=idx, index_params=target["index_params"],
                                                fulltext=coll.metadata.get("fulltext")),
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
        _sync(coll, shadow, provider, batch_size, progress)
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
            _sync(coll, _shadow_collection(coll, model), prov, DEFAULT_BATCH, None)
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
        with store._session.lock:
            store.execute(f"DROP TABLE IF EXISTS {schema.quote(shadow_table(coll.name))}", fetch=False,
                          what="drop the shadow table")
            store.execute(f"DELETE FROM {schema.quote(MIGRATIONS_TABLE)} WHERE `name` = %s", (coll.name,),
                          fetch=False, what="forget the migration")
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
                             f"{coll.spec}; swap first (`--swap`), or cancel the migration with `--rollback`")
    if st["state"] == "swapping":
        coll = _flip(coll, st, "target", None)
    with store._session.lock:
        store.execute(f"DROP TABLE IF EXISTS {schema.quote(shadow_table(coll.name))}", fetch=False,
                      what="drop the old vectors")
        store.execute(f"DELETE FROM {schema.quote(MIGRATIONS_TABLE)} WHERE `name` = %s", (coll.name,),
                      fetch=False, what="finish the migration")
    return {"collection": coll.name, "state": None, "dropped": st["previous"].get("spec")}


def drop_migration(store: Store, name: str) -> None:
    """Remove a collection's migration (shadow table and state row): for drop_collection."""
    store.execute(f"DROP TABLE IF EXISTS {schema.quote(shadow_table(name))}", fetch=False, what="drop the shadow")
    store.execute(_ddl(), what="create the migrations table", fetch=False)
    store.execute(f"DELETE FROM {schema.quote(MIGRATIONS_TABLE)} WHERE `name` = %s", (name,), fetch=False,
                  what="forget the migration")


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
