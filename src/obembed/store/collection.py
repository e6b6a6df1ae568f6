"""A collection: one table of vectors beside scalar data (reads, writes, search, hybrid search, indexes)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError, DimensionMismatchError, InvalidInputError, StoreError
from . import schema
from .base import Hit, Query, QueryModel, RerankModel
from .filters import Where, compile_where
from .rows import (
    BASE_SELECT,
    as_vector,
    check_text,
    metadata_json,
    parse_sparse,
    parse_vector,
    scalar_value,
    score,
    sparse_literal,
    vector_bytes,
    vector_problems,
)
from .search import SEARCH_MODES, hybrid_weights, rerank_candidates, rerank_hits, rrf_fuse, use_exact

if TYPE_CHECKING:
    from .seekdb import Store

__all__ = ["DELETE_BATCH", "MAX_K", "MAX_STATEMENT_BYTES", "Collection", "SparseQuery"]

SparseQuery = Mapping[int, float]
"""A sparse vector: ``{token id: weight}``."""

log = logging.getLogger(__name__)

MAX_STATEMENT_BYTES = 8 * 1024 * 1024  # well under the engine's 16 MiB max_allowed_packet
MAX_K = 16384
DELETE_BATCH = 1000
"""ids per DELETE statement (and per get() SELECT): bounded IN lists."""


class Collection:
    """One table of vectors beside scalar data; from :meth:`Store.create_collection` / :meth:`Store.collection`."""

    def __init__(self, store: Store, meta: dict[str, Any], provider: QueryModel | None = None) -> None:
        self.store = store
        self.metadata: dict[str, Any] = meta
        self.name: str = meta["name"]
        self.dimension: int = int(meta["dimension"])
        self.distance: str = meta["distance"]
        self.columns: dict[str, str] = dict(meta.get("columns") or {})
        self._provider: QueryModel | None = None
        self._source_width: int | None = None
        self._table = schema.quote(self.name)
        self._fn = schema.DISTANCE_FUNCTIONS[self.distance][1]
        self._filter_columns = ["id", "content", "source", "chunk", "content_hash", "created_at", "updated_at",
                                *self.columns]
        if provider is not None:
            self.attach(provider)

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, {self.dimension}-d {self.distance}, spec={self.metadata.get('spec')!r})"

    # -------------------------------------------------------------------- provider
    @property
    def spec(self) -> str | None:
        return self.metadata.get("spec")

    @property
    def space(self) -> str | None:
        return self.metadata.get("space")

    def check_provider(self, provider: QueryModel) -> None:
        """Refuse a provider whose vector space or dimension differs from the collection's."""
        dim = int(provider.dimension)
        pspace = provider.space
        pspec = provider.spec
        theirs = (f"{self.spec} ({self.dimension}-d, space {self.space})" if self.space
                  else f"{self.dimension}-d vectors")
        if dim != self.dimension:
            raise DimensionMismatchError(
                f"collection {self.name!r} holds {theirs}; provider {pspec} gives {dim}-d vectors. Query it with "
                f"{self.spec or f'a {self.dimension}-d model'}, or ingest into a new collection for {pspec}")
        if self.space and pspace and pspace != self.space:
            raise DimensionMismatchError(
                f"collection {self.name!r} holds vectors of {theirs}; provider {pspec} is another vector space "
                f"({pspace}). Use {self.spec} for this collection, or ingest into a new collection for {pspec}")

    def attach(self, provider: QueryModel) -> Collection:
        """Use ``provider`` for text queries (checked against the metadata); returns self."""
        self.check_provider(provider)
        self._provider = provider
        return self

    @property
    def model(self) -> QueryModel:
        """The model for text queries: the attached one, else rebuilt from the collection's metadata (its recorded
        spec and options) by the store's ``provider_factory``, once per store. Should that model be another
        vector space than the one recorded (a faster runtime that does not reproduce it), the store's
        ``fallback_factory`` builds the recorded spec as written."""
        if self._provider is None:
            self.attach(self._rebuild(self._recorded_options()))
        assert self._provider is not None
        return self._provider

    def query_model(self, spec: str | None = None, **options: Any) -> QueryModel:
        """The model for text queries with a change: another ``spec`` (built as given), or ``options`` on top of
        the recorded ones (``device="cuda"``, ``threads=2`` ...: rebuilt like :attr:`model`, same check and
        fallback). With neither, :attr:`model`. Not attached: :attr:`model` stays the recorded one."""
        if spec is None and not options:
            return self.model
        if spec is not None:
            return self._factory(spec)(spec, **options)
        return self._rebuild({**self._recorded_options(), **options})

    def _recorded_options(self) -> dict[str, Any]:
        return dict((self.metadata.get("provider") or {}).get("options") or {})

    def _factory(self, spec: str | None) -> Callable[..., QueryModel]:
        factory = self.store.provider_factory
        if not spec:
            raise ConfigError(
                f"collection {self.name!r} was created from a bare dimension and has no model recorded; "
                "search it with a vector, or open it with store.collection(name, provider=...)")
        if factory is None:
            raise ConfigError(
                f"searching collection {self.name!r} with text needs its model {spec}: open the store with "
                "obembed.connect() (which can rebuild models), or pass provider= to store.collection()")
        return factory

    def _rebuild(self, options: dict[str, Any]) -> QueryModel:
        """The recorded spec with ``options`` from the store's factory (checked; the fallback when the fast path
        is another vector space), built once per store and options."""
        spec = self.spec
        factory = self._factory(spec)
        assert spec
        key = (spec, json.dumps(options, sort_keys=True, default=str))
        cache = self.store._providers
        with self.store._provider_lock:
            provider = cache.get(key)
            if provider is None:  # build each model once per store, not once per Collection object
                provider = factory(spec, **options)
                try:
                    self.check_provider(provider)
                except DimensionMismatchError:
                    fallback = self.store.fallback_factory
                    if fallback is None:
                        raise
                    log.info("collection %s: %s from the fast path is another vector space; loading the "
                             "recorded model as written", self.name, spec)
                    provider = fallback(spec, **options)
                cache[key] = provider
        return provider

    @property
    def provider(self) -> QueryModel:
        """Same as :attr:`model` (the older name)."""
        return self.model

    # -------------------------------------------------------------------- model migration
    def migrate(self, model: QueryModel, *, batch_size: int = 256,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any] | None:
        """Build ``model``'s vectors beside the current ones (or continue an interrupted run); searches keep
        answering from the current model until :meth:`swap_model`. See :mod:`obembed.store.migrate`."""
        from . import migrate

        return migrate.migrate(self, model, batch_size=batch_size, progress=progress)

    def swap_model(self, model: QueryModel | None = None) -> Collection:
        """Make the migrated model answer (atomic); returns the collection reopened."""
        from . import migrate

        return migrate.swap(self, model)

    def rollback_model(self, model: QueryModel | None = None) -> Collection:
        """Cancel a migration before the swap, or answer from the old model again after it."""
        from . import migrate

        return migrate.rollback(self, model)

    def drop_old_model(self) -> dict[str, Any]:
        """After the swap: drop the old model's vectors."""
        from . import migrate

        return migrate.drop_old(self)

    @property
    def migration(self) -> dict[str, Any] | None:
        """The state of a model migration (None: none under way)."""
        from . import migrate

        return migrate.migration_status(self)

    # -------------------------------------------------------------------- writing
    def _row_values(self, i: int, row: Any, seen: set[str], *, vector: bool = True) -> tuple[list[Any], bytes]:
        """Check one row; return its column values (without the vector) and its float32 vector bytes
        (``b""`` with ``vector=False``, when the caller checked all vectors at once)."""
        if not isinstance(row, Mapping):
            raise InvalidInputError(f"row {i} is a {type(row).__name__}, not a dict with 'id' and 'vector'", index=i)
        rid = row.get("id")
        if not isinstance(rid, str) or not rid or len(rid) > schema.ID_MAX:
            raise InvalidInputError(f"row {i}: 'id' must be a non-empty string of at most {schema.ID_MAX} "
                                    f"characters, got {rid!r:.80}", index=i)
        check_text(rid, f"row {i}: 'id'", i)
        if rid.endswith(" "):
            raise InvalidInputError(
                f"row {i}: id {rid!r:.80} ends with a space; the engine compares text with trailing spaces "
                f"ignored, so it would be the same key as {rid.rstrip(' ')!r:.80} and one row would silently "
                "replace the other. Strip the spaces or end the id with another character", index=i)
        if rid in seen:
            raise InvalidInputError(f"row {i}: id {rid!r} appears twice in this batch; ids must be unique "
                                    "(merge the rows or make the ids distinct)", index=i)
        seen.add(rid)
        unknown = set(row) - self._writable
        if "sparse" in unknown:
            raise InvalidInputError(f"row {i} (id {rid!r}) has a 'sparse' vector: {self._no_sparse()}", index=i)
        if unknown:
            raise InvalidInputError(
                f"row {i} (id {rid!r}): unknown field(s) {sorted(unknown)}; known: {sorted(self._writable)} "
                "(put free-form fields into 'metadata', or declare columns at create_collection)", index=i)
        if "vector" not in row or row["vector"] is None:
            raise InvalidInputError(f"row {i} (id {rid!r}) has no 'vector'; embed its content first", index=i)
        vec = (as_vector(row["vector"], self.dimension, f"row {i} (id {rid!r})", self.distance) if vector
               else None)
        content = row.get("content")
        if content is not None and not isinstance(content, str):
            raise InvalidInputError(f"row {i} (id {rid!r}): 'content' must be a string or None", index=i)
        if content is not None:
            check_text(content, f"row {i} (id {rid!r}): 'content'", i)
        source = row.get("source")
        if source is not None and not isinstance(source, str):
            source = str(source)
        if source is not None:
            check_text(source, f"row {i} (id {rid!r}): 'source'", i)
            if len(source) > schema.SOURCE_MAX:
                raise InvalidInputError(
                    f"row {i} (id {rid!r}): 'source' has {len(source)} characters, more than the "
                    f"{schema.SOURCE_MAX} a source may have (the longest path Linux opens is 4095 bytes); "
                    "shorten it (e.g. a relative path)", index=i)
        chash = row.get("content_hash")
        if chash is not None and (not isinstance(chash, str) or len(chash) > 128):
            raise InvalidInputError(f"row {i} (id {rid!r}): 'content_hash' must be a string of at most 128 "
                                    "characters or None", index=i)
        chunk = row.get("chunk")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int | np.integer)):
            raise InvalidInputError(f"row {i} (id {rid!r}): 'chunk' must be an int or None", index=i)
        meta = row.get("metadata")
        if meta is not None:
            if not isinstance(meta, Mapping):
                raise InvalidInputError(f"row {i} (id {rid!r}): 'metadata' must be a dict or None", index=i)
            meta = metadata_json(meta, f"row {i} (id {rid!r})", i)
        if chash is not None:
            check_text(chash, f"row {i} (id {rid!r}): 'content_hash'", i)
        values: list[Any] = [rid, content, source, None if chunk is None else int(chunk), chash]
        for c, ctype in self.columns.items():
            v = row.get(c)
            if isinstance(v, np.generic):
                v = v.item()
            v = scalar_value(v, ctype, f"row {i} (id {rid!r}): column {c!r} ({ctype})", i)
            values.append(v)
        values.append(meta)
        if self.has_sparse:
            sp = row.get("sparse")
            values.append(None if sp is None else sparse_literal(sp, f"row {i} (id {rid!r})",
                                                                 max_id=schema.SPARSE_MAX_ID, index=i))
        return values, (np.ascontiguousarray(vec, dtype="<f4").tobytes() if vec is not None else b"")

    def _prepare(self, rows: list[Any]) -> list[tuple[list[Any], bytes]]:
        """Check every row before any SQL; vectors are checked in one numpy pass when they stack cleanly."""
        seen: set[str] = set()
        bulk: np.ndarray | None = None
        raw = [r.get("vector") if isinstance(r, Mapping) else None for r in rows]
        if all(v is not None for v in raw):
            try:
                arr = np.asarray(raw, dtype=np.float32)
            except (TypeError, ValueError):
                arr = None
            if (arr is not None and arr.ndim == 2 and arr.shape[1] == self.dimension
                    and not any(vector_problems(arr, self.distance))):
                bulk = np.ascontiguousarray(arr, dtype="<f4")
        if bulk is None:  # something is off: the per-row path names the first bad row
            return [self._row_values(i, r, seen) for i, r in enumerate(rows)]
        buf = bulk.tobytes()
        step = 4 * self.dimension
        out = []
        for i, r in enumerate(rows):
            values, _ = self._row_values(i, r, seen, vector=False)
            out.append((values, buf[i * step:(i + 1) * step]))
        return out

    @property
    def _writable(self) -> set[str]:
        extra = {"sparse"} if self.has_sparse else set()
        return {"id", "vector", "content", "source", "chunk", "content_hash", "metadata", *self.columns, *extra}

    @property
    def has_sparse(self) -> bool:
        """Whether the table has a sparse vector column (``create_collection(..., sparse=True)``); read from the
        table itself once (older collections and other tools' tables have none)."""
        if "sparse" not in self.metadata:
            rows, _ = self.store.execute(
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "AND column_name = %s", (self.store.database, self.name, schema.SPARSE_COLUMN),
                what=f"look up the sparse column of {self.name!r}")
            self.metadata["sparse"] = bool(rows[0][0])
        return bool(self.metadata["sparse"])

    def _no_sparse(self) -> ConfigError:
        return ConfigError(
            f"collection {self.name!r} has no sparse vector column (a column cannot be added to an existing "
            "collection): create a new one with store.create_collection(name, model, sparse=True) and ingest with "
            "a model that gives "
            "sparse output (e.g. a BGE-M3 folder with sparse_linear.pt, or DashScope text-embedding-v3/v4 with "
            "output_type='dense&sparse'); CLI: obembed ingest PATH -c NEW_NAME --sparse -m 'st:FOLDER?sparse=true'")

    def _insert_sql(self, n: int) -> str:
        cols = ["id", "content", "source", "chunk", "content_hash", *self.columns, "metadata",
                *([schema.SPARSE_COLUMN] if self.has_sparse else []), schema.VECTOR_COLUMN]
        col_sql = ", ".join(schema.quote(c) for c in cols)
        one = "(" + ", ".join(["%s"] * len(cols)) + ")"
        upd = ", ".join(f"{schema.quote(c)} = VALUES({schema.quote(c)})" for c in cols[1:])
        return f"INSERT INTO {self._table} ({col_sql}) VALUES {', '.join([one] * n)} ON DUPLICATE KEY UPDATE {upd}"

    def upsert(self, rows: Iterable[Mapping[str, Any]], *, batch_size: int = 1000) -> int:
        """Insert or replace rows by id; returns the number of rows written.

        Every row is checked before any SQL runs (id, unknown fields, dimension, NaN/inf, duplicate ids), so bad
        input writes nothing. Rows go in multi-row statements with float32 binary vectors, one transaction per
        ``batch_size`` rows: after an engine error the earlier batches stay committed (the error says how many).
        Fields a row leaves out are stored as NULL (upsert replaces the whole row).
        """
        self.store._check_open()
        if isinstance(rows, Mapping):
            rows = [rows]
        rows = list(rows)
        if not rows:
            raise InvalidInputError("upsert() got no rows; pass a non-empty list of dicts with 'id' and 'vector'")
        if batch_size < 1:
            raise InvalidInputError(f"batch_size={batch_size} must be ≥ 1")
        from .migrate import dual_upsert  # a model migration under way: both tables (a cached look when none)

        dual = dual_upsert(self, rows, batch_size)
        if dual is not None:
            return dual
        prepared = self._prepare(rows)
        longest = max((len(v[0][2]) for v in prepared if v[0][2] is not None), default=0)
        if longest > schema.SOURCE_LEGACY:
            self._widen_source(longest)
        written = 0
        for start in range(0, len(prepared), batch_size):
            batch = prepared[start:start + batch_size]
            statements = list(self._statements(batch))
            try:
                self.store._session.transaction(statements, what=f"upsert into {self.name!r}")
            except StoreError as exc:
                raise type(exc)(f"{exc} [rows {start}..{start + len(batch) - 1} rolled back; {written} earlier rows "
                                "committed]") from exc
            written += len(batch)
        log.debug("upserted %d rows into %s", written, self.name)
        return written

    def _widen_source(self, needed: int) -> None:
        """Collections made before sources could be 4096 characters have ``source varchar(2048)``: widen the
        column (an online ALTER, once) when a longer source arrives."""
        if self._source_width is None:
            rows, _ = self.store.execute(
                "SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.columns WHERE table_schema = %s AND "
                "table_name = %s AND column_name = 'source'", (self.store.database, self.name),
                what=f"read the source column of {self.name!r}")
            self._source_width = int(rows[0][0]) if rows and rows[0][0] is not None else schema.SOURCE_MAX
        if needed <= self._source_width:
            return
        log.info("collection %s: widening source from varchar(%d) to varchar(%d)", self.name, self._source_width,
                 schema.SOURCE_MAX)
        self.store.execute(
            f"ALTER TABLE {self._table} MODIFY COLUMN `source` varchar({schema.SOURCE_MAX}) "
            f"COLLATE {schema.BINARY_COLLATION}", what=f"widen the source column of {self.name!r}", fetch=False)
        self._source_width = schema.SOURCE_MAX

    def _statements(self, batch: list[tuple[list[Any], bytes]]) -> Iterator[tuple[str, list[Any]]]:
        chunk: list[Any] = []
        size = 0
        n = 0
        for values, vec in batch:
            row_bytes = 2 * len(vec) + sum(len(v) * 4 if isinstance(v, str | bytes) else 16 for v in values) + 64
            if n and size + row_bytes > MAX_STATEMENT_BYTES:
                yield self._insert_sql(n), chunk
                chunk, size, n = [], 0, 0
            chunk.extend(values)
            chunk.append(vec)
            size += row_bytes
            n += 1
        if n:
            yield self._insert_sql(n), chunk

    def delete(self, ids: Iterable[str] | str | None = None, *, where: Where = None) -> int:
        """Delete rows by id and/or filter; returns how many rows were deleted."""
        self.store._check_open()
        if ids is None and where is None:
            raise InvalidInputError("delete() needs ids= or where=; to remove everything use drop_collection()")
        wsql, wparams = compile_where(where, self._filter_columns) if where is not None else ("", [])
        if ids is None and not wsql:
            raise InvalidInputError("delete(where={}) would delete every row; use drop_collection() for that")
        from .migrate import dual_delete  # a model migration under way: both tables (a cached look when none)

        dual = dual_delete(self, None if ids is None else [ids] if isinstance(ids, str) else list(ids), where)
        if dual is not None:
            return dual
        if ids is None:
            _, n = self.store.execute(f"DELETE FROM {self._table} WHERE ({wsql})", wparams,
                                      what=f"delete from {self.name!r}", fetch=False)
            return int(n)
        id_list = [ids] if isinstance(ids, str) else list(ids)
        total = 0
        # bounded IN lists (like get()): one statement per DELETE_BATCH ids, each committed on its own
        for start in range(0, len(id_list), DELETE_BATCH):
            part = id_list[start:start + DELETE_BATCH]
            marks = ", ".join(["%s"] * len(part))
            # exact: under the PAD SPACE collation `id` IN ('x ') also matches 'x'; BINARY compares the bytes
            sql = f"DELETE FROM {self._table} WHERE `id` IN ({marks}) AND BINARY `id` IN ({marks})"
            if wsql:
                sql += f" AND ({wsql})"
            _, n = self.store.execute(sql, [*part, *part, *wparams], what=f"delete from {self.name!r}",
                                      fetch=False)
            total += int(n)
        return total

    # -------------------------------------------------------------------- reading
    def _select_cols(self, include_vectors: bool = False) -> str:
        cols = [*BASE_SELECT, *self.columns, "created_at", "updated_at"]
        if include_vectors:
            cols.append(schema.VECTOR_COLUMN)
            if self.has_sparse:
                cols.append(schema.SPARSE_COLUMN)
        return ", ".join(schema.quote(c) for c in cols)

    def _row_dict(self, r: Sequence[Any], include_vectors: bool) -> dict[str, Any]:
        names = [*BASE_SELECT, *self.columns, "created_at", "updated_at"]
        d = dict(zip(names, r[: len(names)], strict=True))
        d["metadata"] = json.loads(d["metadata"]) if d["metadata"] else {}
        if include_vectors:
            d["vector"] = parse_vector(r[len(names)])
            if self.has_sparse:
                d["sparse"] = parse_sparse(r[len(names) + 1])
        return d

    def get(self, ids: Iterable[str] | str, *, include_vectors: bool = False) -> list[dict[str, Any]]:
        """Rows by id, in the order asked (missing ids are left out). Vectors come back as float32 arrays
        (the engine returns them as text with ~6 significant digits)."""
        id_list = [ids] if isinstance(ids, str) else list(ids)
        if not id_list:
            return []
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(id_list), 1000):
            part = id_list[start:start + 1000]
            rows, _ = self.store.execute(
                f"SELECT {self._select_cols(include_vectors)} FROM {self._table} "
                f"WHERE `id` IN ({', '.join(['%s'] * len(part))})", part, what=f"get from {self.name!r}")
            for r in rows:  # the IN above pads ('x' finds 'x '): out is keyed by the exact stored id
                d = self._row_dict(r, include_vectors)
                out[d["id"]] = d
        return [out[i] for i in id_list if i in out]

    def count(self, where: Where = None) -> int:
        """Number of rows (matching ``where``)."""
        sql, params = compile_where(where, self._filter_columns)
        rows, _ = self.store.execute(f"SELECT COUNT(*) FROM {self._table}" + (f" WHERE {sql}" if sql else ""),
                                     params, what=f"count {self.name!r}")
        return int(rows[0][0])

    def hashes(self, source: str | None = None) -> dict[str, str | None]:
        """``{id: content_hash}`` (of one source, or all): what incremental ingest compares against."""
        if source is None:
            rows, _ = self.store.execute(f"SELECT `id`, `content_hash` FROM {self._table}", what="read hashes")
        else:
            rows, _ = self.store.execute(f"SELECT `id`, `content_hash` FROM {self._table} WHERE `source` = %s "
                                         "AND BINARY `source` = %s", (source, source), what="read hashes")
        return {r[0]: r[1] for r in rows}

    def sources(self) -> dict[str | None, int]:
        """``{source: number of rows}``."""
        rows, _ = self.store.execute(f"SELECT `source`, COUNT(*) FROM {self._table} GROUP BY `source`",
                                     what="list sources")
        return {r[0]: int(r[1]) for r in rows}

    def iter_rows(self, batch_size: int = 1000, *, include_vectors: bool = True,
                  where: Where = None) -> Iterator[list[dict[str, Any]]]:
        """All rows in id order, ``batch_size`` at a time (keyset pagination: flat memory, consistent pages)."""
        if batch_size < 1:
            raise InvalidInputError(f"batch_size={batch_size} must be ≥ 1")
        wsql, wparams = compile_where(where, self._filter_columns)
        last: str | None = None
        while True:
            clauses = [f"({wsql})"] if wsql else []
            params = list(wparams)
            if last is not None:
                clauses.append("`id` > %s")
                params.append(last)
            rows, _ = self.store.execute(
                f"SELECT {self._select_cols(include_vectors)} FROM {self._table}"
                + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
                + f" ORDER BY `id` LIMIT {int(batch_size)}", params, what=f"read rows of {self.name!r}")
            if not rows:
                return
            batch = [self._row_dict(r, include_vectors) for r in rows]
            yield batch
            last = batch[-1]["id"]
            if len(rows) < batch_size:
                return

    # -------------------------------------------------------------------- searching
    def _query_vector(self, query: Query) -> npt.NDArray[np.float32]:
        if isinstance(query, str):
            if not query.strip():
                raise InvalidInputError("the search text is empty; pass a non-empty query")
            vec = self.model.embed_query(query)
            return as_vector(vec, self.dimension, "query", self.distance)
        return as_vector(query, self.dimension, "query vector", self.distance)

    @property
    def has_index(self) -> bool:
        return bool(self.metadata.get("index_type"))

    @property
    def fulltext_pending(self) -> str | None:
        """The parser of a FULLTEXT index recorded to be built after the first load, not built yet (an ingest
        creating the collection is running, or was stopped): :meth:`create_fulltext_index` builds it."""
        pending = self.metadata.get("fulltext_pending")
        return str(pending) if pending else None

    def _fulltext_ready(self) -> bool:
        """Whether the FULLTEXT index is there; a pending one is looked up again (another process's ingest may
        have built it since this collection was opened)."""
        if self.metadata.get("fulltext"):
            return True
        if self.fulltext_pending:
            self._refresh_fulltext()
        return bool(self.metadata.get("fulltext"))

    def _refresh_fulltext(self) -> None:
        fresh = self.store._meta_row(self.name)
        if fresh is not None:
            self.metadata["fulltext"], self.metadata["fulltext_pending"] = fresh["fulltext"], fresh["fulltext_pending"]

    def _no_fulltext(self, use: str) -> ConfigError:
        """The error for a full-text search on a collection without a FULLTEXT index (or with a pending one)."""
        pending = self.fulltext_pending
        if pending:
            return ConfigError(
                f"collection {self.name!r} gets its FULLTEXT index ({pending}) once its first ingest has loaded the "
                f"rows, and it is not built yet: wait for the ingest, or rerun it if it was stopped (it builds the "
                f"index at the end), or call collection.create_fulltext_index(); until then {use} is not available")
        return ConfigError(f"collection {self.name!r} has no FULLTEXT index; create it with fulltext=True (or "
                           f"collection.create_fulltext_index()) to use {use}")

    def create_fulltext_index(self, parser: str | None = None) -> bool:
        """Build the FULLTEXT index on ``content`` over the stored rows (synchronous: complete when it returns).

        ``parser``: default the pending one (``create_collection(..., defer_fulltext=True)``). Returns False when
        the index was there already with this parser (another ingest built it first), True when built here."""
        self.store._check_open()
        self._refresh_fulltext()  # another process may have built it meanwhile
        want = (parser or self.fulltext_pending or "").lower()
        if not want:
            raise ConfigError(f"collection {self.name!r}: name the full-text parser, e.g. "
                              f"create_fulltext_index('space'); one of {schema.FULLTEXT_PARSERS}")
        have = self.metadata.get("fulltext")
        if have:
            if have == want:
                return False
            raise StoreError(f"collection {self.name!r} already has a FULLTEXT index with parser {have!r}")
        ddl = schema.fulltext_index_ddl(self.name, want)
        t0 = time.perf_counter()
        try:
            self.store.execute(ddl, what=f"build the FULLTEXT index of {self.name!r}", fetch=False, retry=False)
        except StoreError as exc:
            if "1061" not in str(exc):  # not "duplicate key name": another process's build won the race
                raise
        self.store.execute(f"UPDATE {schema.quote(schema.META_TABLE)} SET `fulltext_parser` = %s WHERE `name` = %s",
                           (want, self.name), what="record the FULLTEXT index", fetch=False)
        self.metadata["fulltext"], self.metadata["fulltext_pending"] = want, None
        log.info("built the FULLTEXT index (%s) of %s in %.1f s", want, self.name, time.perf_counter() - t0)
        return True

    def search_sql(self, k: int, *, where: Where = None, exact: bool = False,
                   ef_search: int | None = None, skip_null: bool = False) -> tuple[str, list[Any]]:
        """The SELECT a search runs (the query vector is the first parameter); useful with EXPLAIN.
        ``skip_null`` (exact only): leave out rows whose distance is NULL (zero vectors stored before obembed
        refused them); the query vector is then also the last parameter."""
        wsql, wparams = compile_where(where, self._filter_columns)
        dist = f"{self._fn}({schema.quote(schema.VECTOR_COLUMN)}, %s)"
        conds = [f"({wsql})"] if wsql else []
        if skip_null:
            exact = True
            conds.append(f"{dist} IS NOT NULL")
        sql = (f"SELECT {self._select_cols()}, {dist} AS `_distance` "
               f"FROM {self._table}" + (f" WHERE {' AND '.join(conds)}" if conds else "") + " ORDER BY `_distance`")
        if exact or not self.has_index:
            sql += f" LIMIT {int(k)}"
        else:
            sql += f" APPROXIMATE LIMIT {int(k)}"
            hnsw = str(self.metadata.get("index_type", "")).startswith("hnsw")
            if ef_search is not None and not hnsw:
                raise InvalidInputError(f"ef_search applies to HNSW indexes; {self.name!r} has a "
                                        f"{self.metadata.get('index_type')} index (IVF uses SET ob_ivf_nprobes = n)")
            if ef_search is None and hnsw:
                # the engine ignores the index's own ef_search and uses the session's (64): pass ours explicitly
                ef_search = (self.metadata.get("index_params") or {}).get("ef_search")
            if ef_search is not None:
                sql += f" PARAMETERS(ef_search={max(int(ef_search), int(k))})"
        return sql, wparams

    def _hits(self, rows: Sequence[Sequence[Any]]) -> list[Hit]:
        hits = []
        n = len(BASE_SELECT)
        for r in rows:
            if r[-1] is None:  # search() re-runs without these; a full-text hit has a score, never NULL
                continue
            d = float(r[-1])
            cols = dict(zip(self.columns, r[n:n + len(self.columns)], strict=True))
            hits.append(Hit(id=r[0], content=r[1], source=r[2], chunk=r[3], distance=d,
                            score=score(self.distance, d), metadata=json.loads(r[5]) if r[5] else {}, columns=cols))
        return hits

    def use_exact(self, exact: bool | None = None, *, ef_search: int | None = None) -> bool:
        """Whether a search with these options scans exactly (the policy of :func:`obembed.store.search.use_exact`:
        ``exact`` when given, else exact up to ``EXACT_MAX_ROWS`` rows or without an index)."""
        return use_exact(exact, has_index=self.has_index, rows=self.count, ef_search=ef_search)

    def search(self, query: Query | SparseQuery, k: int = 10, *, where: Where = None, exact: bool | None = None,
               ef_search: int | None = None, mode: str = "dense", weights: Mapping[str, float] | None = None,
               rerank: str | RerankModel | None = None, candidates: int | None = None,
               vector: npt.ArrayLike | None = None, sparse_vector: SparseQuery | None = None) -> list[Hit]:
        """The ``k`` nearest rows to a vector or a text (embedded with the collection's model).

        ``rerank`` (a spec such as ``"cross-encoder:BAAI/bge-reranker-v2-m3"`` or a reranker object): the
        vector search returns ``candidates`` rows (default ``max(4k, 40)``), the reranker reads the query with
        each row's content and the ``k`` best come back in its order, each with ``rerank_score`` beside the
        first stage's ``score``. It needs a text query.

        ``exact``: ``True`` scans every row, ``False`` uses the vector index, ``None`` (default) decides by the
        store's policy: exact up to ``EXACT_MAX_ROWS`` (20,000) rows (a few ms there, and exact: HNSW loses
        recall on crowded vectors), the index above, or when ``ef_search`` is given. With a filter the index can
        return fewer than ``k`` rows although more match: the store then answers from an exact search of the
        filtered rows. Python, ``obembed search`` and the server's ``/search`` all rank through here.

        ``mode``: ``"dense"`` (the vector column, above), ``"sparse"`` (the sparse column by inner product: ``query``
        a text embedded by the model's sparse output, or a ``{token id: weight}`` dict; ``score`` is the inner
        product, ``distance`` its negative), ``"fulltext"`` (MATCH ... AGAINST on ``content``, needs
        ``fulltext=True``; ``score`` is the engine's relevance) or ``"hybrid"``: reciprocal rank fusion of the legs
        in ``weights`` (``{"dense": w, "sparse": w, "fulltext": w}``; by default every leg the collection has, each
        weight 1; a leg with weight 0 is not run), ``candidates`` rows from each (default ``max(4k, 40)``);
        ``score`` is the fused RRF score, ``distance`` the dense distance where the dense leg found the row.
        ``vector`` / ``sparse_vector`` give precomputed query vectors to the dense / sparse search (and to the
        hybrid legs, and to a reranked search's first stage): ``query`` is then only the text that the full-text
        leg and the reranker read, and the model is not called.
        """
        self.store._check_open()
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k={k!r} must be an int between 1 and {MAX_K}")
        if mode not in SEARCH_MODES:
            raise InvalidInputError(f"mode={mode!r} is not a search mode; use one of {SEARCH_MODES}")
        if rerank is not None:
            if not isinstance(query, str) or not query.strip():
                raise InvalidInputError("rerank= needs the query text (the reranker reads it with each candidate); "
                                        "pass a non-empty text query")
            reranker = self.store.reranker(rerank)
            n = rerank_candidates(k, candidates, limit=MAX_K)
            first = self.search(query, n, where=where, exact=exact, ef_search=ef_search, mode=mode, weights=weights,
                                candidates=n if mode == "hybrid" else None, vector=vector,
                                sparse_vector=sparse_vector)
            return rerank_hits(query, first, reranker, k)
        if mode == "hybrid":
            return self._hybrid(query, k, where=where, exact=exact, weights=weights, candidates=candidates,
                                vector=vector, sparse_vector=sparse_vector)
        if candidates is not None:
            raise InvalidInputError("candidates= is how many rows a reranker (or each leg of a hybrid search) reads: "
                                    "it applies with rerank= or mode='hybrid'")
        if mode == "sparse":
            return self._sparse_search(query if sparse_vector is None else sparse_vector, k, where=where, exact=exact)
        if mode == "fulltext":
            return self._fulltext_search(query, k, where=where)
        if isinstance(query, Mapping):
            raise InvalidInputError("a {token id: weight} dict is a sparse query: pass mode='sparse'")
        if ef_search is not None and (isinstance(ef_search, bool) or not isinstance(ef_search, int)
                                      or not 1 <= ef_search <= MAX_K):
            raise InvalidInputError(f"ef_search={ef_search!r} must be an int between 1 and {MAX_K}")
        qvec = vector_bytes(self._query_vector(query if vector is None else vector))
        approx = not self.use_exact(exact, ef_search=ef_search)
        sql, params = self.search_sql(k, where=where, exact=not approx, ef_search=ef_search)
        rows, _ = self.store.execute(sql, [qvec, *params], what=f"search {self.name!r}")
        self.store.stats["searches"] += 1
        if approx and len(rows) < k:
            # the index found too few (filtered HNSW at low selectivity, or a small table): exact over the filter
            self.store.stats["exact_fallbacks"] += 1
            sql, params = self.search_sql(k, where=where, exact=True)
            exact_rows, _ = self.store.execute(sql, [qvec, *params], what=f"search {self.name!r}")
            if len(exact_rows) > len(rows):
                log.debug("search %s: index returned %d < k=%d rows, exact fallback gave %d", self.name, len(rows),
                          k, len(exact_rows))
                rows = exact_rows
        if any(r[-1] is None for r in rows):
            rows = self._without_null_distances(k, where, qvec)
        return self._hits(rows)

    def _without_null_distances(self, k: int, where: Where, qvec: bytes) -> list[tuple[Any, ...]]:
        """Rows whose distance is NULL (zero or near-zero vectors stored before obembed refused them) sort first
        and have no rank: search again, exactly, without them, and say so in the log."""
        sql, params = self.search_sql(k, where=where, skip_null=True)
        rows, _ = self.store.execute(sql, [qvec, *params, qvec], what=f"search {self.name!r}")
        nulls, _ = self.store.execute(
            f"SELECT COUNT(*) FROM {self._table} WHERE {self._fn}({schema.quote(schema.VECTOR_COLUMN)}, %s) IS NULL",
            [qvec], what=f"search {self.name!r}")
        self.store.stats["null_distances"] = self.store.stats.get("null_distances", 0) + 1
        log.warning("collection %s: %d stored rows have no %s distance (zero or near-zero vectors, stored before "
                    "obembed refused them); they are left out of search results. Re-embed or delete them: "
                    "they are the rows whose vector is all zeros", self.name, int(nulls[0][0]), self.distance)
        return rows

    def _sparse_query(self, query: Query | SparseQuery) -> str:
        if not self.has_sparse:
            raise self._no_sparse()
        if isinstance(query, str):
            if not query.strip():
                raise InvalidInputError("the search text is empty; pass a non-empty query")
            embed_sparse = getattr(self.model, "embed_sparse", None)
            if embed_sparse is None:
                raise ConfigError(f"the model of collection {self.name!r} ({self.spec}) gives no sparse vectors; pass "
                                  "the query as a {token id: weight} dict, or attach a model with embed_sparse()")
            query = embed_sparse([query], kind="query")[0]
        lit = sparse_literal(query, "sparse query", max_id=schema.SPARSE_MAX_ID)
        if lit == "{}":
            raise InvalidInputError("the sparse query has no token with a weight > 0; it would match nothing")
        return lit

    def _sparse_search(self, query: Query | SparseQuery, k: int, *, where: Where,
                       exact: bool | None) -> list[Hit]:
        lit = self._sparse_query(query)
        approx = not use_exact(exact, has_index=True, rows=self.count)
        wsql, wparams = compile_where(where, self._filter_columns)
        col = schema.quote(schema.SPARSE_COLUMN)

        def run(approximate: bool) -> list[Any]:
            sql = (f"SELECT {self._select_cols()}, inner_product({col}, %s) AS `_ip` FROM {self._table} "
                   f"WHERE {col} IS NOT NULL" + (f" AND ({wsql})" if wsql else "")
                   + f" ORDER BY `_ip` DESC {'APPROXIMATE ' if approximate else ''}LIMIT {int(k)}")
            rows, _ = self.store.execute(sql, [lit, *wparams], what=f"sparse search {self.name!r}")
            return [r for r in rows if r[-1] is not None and float(r[-1]) > 0]

        rows = run(approx)
        self.store.stats["searches"] += 1
        if approx and len(rows) < k:
            exact_rows = run(False)
            if len(exact_rows) > len(rows):
                rows = exact_rows
        hits = self._hits(rows)
        for h, r in zip(hits, rows, strict=True):
            h.score = float(r[-1])
            h.distance = -h.score
        return hits

    def _fulltext_search(self, query: Query | SparseQuery, k: int, *, where: Where) -> list[Hit]:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("a full-text search needs a non-empty text")
        if not self._fulltext_ready():
            raise self._no_fulltext("full-text or hybrid search")
        wsql, wparams = compile_where(where, self._filter_columns)
        sql = (f"SELECT {self._select_cols()}, MATCH(`content`) AGAINST(%s) AS `_ft` FROM {self._table} "
               f"WHERE MATCH(`content`) AGAINST(%s)" + (f" AND ({wsql})" if wsql else "")
               + f" ORDER BY `_ft` DESC LIMIT {int(k)}")
        rows, _ = self.store.execute(sql, [query, query, *wparams], what=f"full-text search {self.name!r}")
        self.store.stats["searches"] += 1
        hits = self._hits(rows)
        for h, r in zip(hits, rows, strict=True):
            h.distance = None
            h.score = float(r[-1])
        return hits

    def _hybrid(self, query: Query | SparseQuery, k: int, *, where: Where, exact: bool | None,
                weights: Mapping[str, float] | None, candidates: int | None, vector: npt.ArrayLike | None,
                sparse_vector: SparseQuery | None) -> list[Hit]:
        w = hybrid_weights(weights, dense=True, sparse=self.has_sparse, fulltext=self._fulltext_ready(),
                           name=self.name)
        if w.get("sparse") and not self.has_sparse:
            raise self._no_sparse()
        if w.get("fulltext") and not self._fulltext_ready():
            raise self._no_fulltext("the fulltext leg (or give it weight 0)")
        text = query if isinstance(query, str) else None
        if text is not None and not text.strip():
            raise InvalidInputError("the search text is empty; pass a non-empty query")
        if candidates is not None and (isinstance(candidates, bool) or not isinstance(candidates, int)
                                       or candidates < 1):
            raise InvalidInputError(f"candidates={candidates!r} must be a positive int")
        n = min(MAX_K, max(k, candidates or max(4 * k, 40)))
        legs: list[tuple[str, list[Hit], float]] = []
        if w.get("dense"):
            dq: Query
            if vector is not None:
                dq = as_vector(vector, self.dimension, "query vector")
            elif text is not None:
                dq = text
            elif isinstance(query, Mapping):
                raise InvalidInputError("hybrid search with a sparse dict needs the query text (or vector=)")
            else:
                dq = query
            legs.append(("dense", self.search(dq, n, where=where, exact=exact), w["dense"]))
        if w.get("sparse"):
            sq: Query | SparseQuery
            if sparse_vector is not None:
                sq = sparse_vector
            elif text is not None:
                sq = text
            elif isinstance(query, Mapping):
                sq = query
            else:
                raise InvalidInputError("the sparse leg of a hybrid search needs the query text or sparse_vector=")
            legs.append(("sparse", self._sparse_search(sq, n, where=where, exact=exact), w["sparse"]))
        if w.get("fulltext"):
            if text is None:
                raise InvalidInputError("the full-text leg of a hybrid search needs the query text")
            legs.append(("fulltext", self._fulltext_search(text, n, where=where), w["fulltext"]))
        by_id: dict[str, Hit] = {}
        for leg, hits, _ in legs:
            for h in hits:
                if h.id not in by_id:
                    if leg != "dense":
                        h.distance = None
                    by_id[h.id] = h
        out = []
        for i, fused in rrf_fuse([([h.id for h in hits], weight) for _, hits, weight in legs], k):
            h = by_id[i]
            h.score = fused
            out.append(h)
        return out

    def hybrid_search(self, text: str, k: int = 10, *, where: Where = None, candidates: int | None = None,
                      vector: npt.ArrayLike | None = None, weights: tuple[float, float] = (1.0, 1.0),
                      exact: bool | None = None, rerank: str | RerankModel | None = None) -> list[Hit]:
        """Full-text (MATCH ... AGAINST) and vector search fused with reciprocal rank fusion (k=60).

        Needs a collection created with ``fulltext=True``. ``candidates`` rows are taken from each side
        (default ``max(4k, 40)``); ``weights`` = (vector, full-text) multiply each side's RRF terms (raise the
        full-text weight for a model that is weak in the corpus language). ``vector`` skips embedding ``text``.
        ``score`` is the fused RRF score; ``distance`` the vector distance when the vector side found the row.
        ``exact``: the vector side's exact-or-index choice, as in :meth:`search`. ``rerank``: each side still
        returns ``candidates`` rows, the best ``candidates`` of the fused list go to the reranker, and its ``k``
        best come back in its order with ``rerank_score`` (``score`` stays the RRF score).
        """
        self.store._check_open()
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("hybrid_search needs a non-empty text")
        if not self._fulltext_ready():
            raise self._no_fulltext("hybrid_search (or use search())")
        wv, wt = weights
        return self.search(text, k, where=where, exact=exact, mode="hybrid", candidates=candidates, vector=vector,
                           weights={"dense": wv, "fulltext": wt, "sparse": 0.0}, rerank=rerank)

    # -------------------------------------------------------------------- index management
    def create_index(self, index: str = "hnsw", *, index_params: Mapping[str, int] | None = None,
                     parallel: int | None = None) -> None:
        """Build the vector index after a bulk load (synchronous: complete when it returns)."""
        if self.has_index:
            raise StoreError(f"collection {self.name!r} already has a {self.metadata['index_type']} index")
        index = index.lower()
        if index not in schema.INDEX_TYPES:
            raise ConfigError(f"index={index!r} is not supported; use one of {schema.INDEX_TYPES}")
        if self.dimension > 4096:
            raise InvalidInputError(f"a vector index needs dimension ≤ 4096 (this one is {self.dimension})")
        params = schema.index_params(index, self.dimension, dict(index_params or {}))
        ddl = schema.vector_index_ddl(self.name, self.distance, index, params)
        if parallel:
            ddl = ddl.replace("CREATE VECTOR INDEX", f"CREATE /*+ parallel({int(parallel)}) */ VECTOR INDEX", 1)
        t0 = time.perf_counter()
        self.store.execute(ddl, what=f"build the vector index of {self.name!r}", fetch=False)
        self.store.execute(
            f"UPDATE {schema.quote(schema.META_TABLE)} SET `index_type` = %s, `index_params` = %s WHERE `name` = %s",
            (index, json.dumps(params), self.name), what="record the index", fetch=False)
        self.metadata["index_type"] = index
        self.metadata["index_params"] = params
        log.info("built %s index on %s in %.1f s", index, self.name, time.perf_counter() - t0)

    def explain(self, k: int = 10, *, where: Where = None, exact: bool = False) -> str:
        """The engine's plan for a search (look for ``VECTOR INDEX SCAN``)."""
        sql, params = self.search_sql(k, where=where, exact=exact)
        probe = np.zeros(self.dimension, dtype="<f4")
        probe[0] = 1.0
        rows, _ = self.store.execute("EXPLAIN " + sql, [vector_bytes(probe), *params], what="explain")
        return "\n".join(str(r[0]) for r in rows)
