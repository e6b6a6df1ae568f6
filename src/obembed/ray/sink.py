"""``write_collection(ds, collection, dsn=...)``: a Ray Datasink that writes rows into an obembed collection.

* Rows go through :meth:`obembed.store.Collection.upsert`, the store's own batched path: every row checked,
  float32 binary vectors, multi-row ``INSERT ... ON DUPLICATE KEY UPDATE`` statements keyed by the row ids.
  A write task adds no connect and no metadata query: each Ray worker process keeps one connection, and the
  collection's metadata is read once, on the driver, and shipped with the sink. Ids are stable (ingest's
  chunk ids), so a retried or duplicated write task writes the same rows again: the table ends as after one
  clean run.
* The collection is opened (or created) on the driver before any block is written: an existing
  collection's recorded model (dimension and vector space) must match the model the vectors come from.
* A new collection is created without its vector index; the index is built once after the load
  (load-then-index: see benchmarks/RESULTS.md).
* A lost database (restart, failover, network) is retried with exponential backoff for up to ``retry_s``
  seconds per block; every write is an idempotent upsert, so a retry never duplicates anything.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ray.data import Datasink
from ray.data.block import BlockAccessor

from ..errors import ConfigError, InvalidInputError
from ..store.dsn import redact_dsn
from ._db import (
    DEFAULT_RETRY_S,
    connected,
    drop_worker_store,
    dsn_or_settings,
    need_dsn_message,
    retrying,
    worker_collection,
)

__all__ = ["DEFAULT_RETRY_S", "CollectionSink", "WriteStats", "need_dsn_message", "write_collection"]

log = logging.getLogger(__name__)

_BASE_FIELDS = ("id", "content", "source", "chunk", "content_hash", "metadata")


@dataclass
class WriteStats:
    """What a :func:`write_collection` did."""

    collection: str
    rows_written: int = 0
    rows_failed: int = 0
    rows_truncated: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Rows not written because their embedding failed: ``{id, source, chunk, reason}``."""
    retries: int = 0
    """Database operations retried after a lost connection (all write tasks together)."""
    created: bool = False
    index: str | None = None
    load_seconds: float = 0.0
    """From the first block to the last written (wall clock, all tasks)."""
    index_seconds: float = 0.0
    """Building the vector index after the load (new collections)."""
    write_seconds: float = 0.0
    """Time the write tasks spent in the database, summed over tasks."""


class CollectionSink(Datasink):  # type: ignore[misc]  # ray is not followed by mypy
    """The Ray Datasink behind :func:`write_collection` (see the module docstring)."""

    def __init__(self, collection: str, dsn: str, *, provider: Any = None, model: str | None = None,
                 vector_column: str = "embedding", content_column: str = "content",
                 error_column: str | None = None, truncated_column: str | None = None,
                 columns: Mapping[str, str] | None = None, fulltext: bool | str = True,
                 index: str | None = "hnsw", index_params: Mapping[str, int] | None = None,
                 database: str | None = None, retry_s: float = DEFAULT_RETRY_S,
                 rows_per_write: int | None = 1024) -> None:
        if not dsn:
            raise ConfigError(need_dsn_message())
        from ..store.dsn import parse_dsn

        parse_dsn(dsn)  # a bad DSN fails here, on the driver, with the store's message
        self.collection = collection
        self._dsn = dsn
        self.database = database
        self._provider = provider
        self.model = model
        self.vector_column = vector_column
        self.content_column = content_column
        self.error_column = error_column
        self.truncated_column = truncated_column
        self.columns = dict(columns or {})
        self.fulltext = fulltext
        self.index = index
        self.index_params = dict(index_params or {})
        self.retry_s = float(retry_s)
        self.rows_per_write = rows_per_write
        self.stats = WriteStats(collection=collection)
        self._t_start = 0.0
        self._build_index = False
        self._meta: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"CollectionSink({self.collection!r}, {redact_dsn(self._dsn)})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_provider"] = None  # write tasks need no model: the driver checked the collection's
        return state

    def get_name(self) -> str:
        return f"obembed:{self.collection}"

    @property
    def min_rows_per_write(self) -> int | None:
        return self.rows_per_write

    # ------------------------------------------------------------ driver side
    def on_write_start(self, schema: Any = None) -> None:
        """Open or create the collection and check its model, before any write task runs."""
        self._t_start = time.perf_counter()
        provider = self._provider
        if provider is None and self.model is not None:
            from .embed import load_bulk_provider

            provider = load_bulk_provider(self.model)  # what the actors load: same space, fast start
        retrying(lambda: self._open_or_create(provider), self.retry_s, self._count_retry)
        if schema is not None and self.vector_column not in getattr(schema, "names", [self.vector_column]):
            raise ConfigError(f"the dataset has no column {self.vector_column!r} (it has {schema.names}); embed "
                              "it first (obembed.ray.embed) or pass vector_column=")

    def _count_retry(self) -> None:
        self.stats.retries += 1

    def _open_or_create(self, provider: Any) -> None:
        with connected(self._dsn, self.database) as store:
            if store.has_collection(self.collection):
                coll = store.collection(self.collection)
                if provider is not None:
                    coll.check_provider(provider)  # DimensionMismatchError: another model's collection
                missing = [c for c in self.columns if c not in coll.columns]
                if missing:
                    raise ConfigError(
                        f"collection {self.collection!r} has no column(s) {missing} (it has: "
                        f"{sorted(coll.columns) or 'none'}); columns are fixed when a collection is created")
                # a run stopped between its load and its index build left no index: build it this time
                self._build_index = bool(self.index) and not coll.has_index
            else:
                if provider is None:
                    raise ConfigError(
                        f"collection {self.collection!r} does not exist; pass model= (the spec the vectors come "
                        "from) so write_collection can create it with the model recorded")
                # no vector index yet: it is built once after the load (on_write_complete)
                coll = store.create_collection(self.collection, provider, columns=self.columns or None,
                                               fulltext=self.fulltext, index=None, exists_ok=True)
                self.stats.created = True
                self._build_index = bool(self.index)
            self.columns = dict(coll.columns)
            if coll.has_sparse:  # resolved here too, so the write tasks need no query for it
                raise ConfigError(
                    f"collection {self.collection!r} has a sparse vector column, and write_collection writes dense "
                    "vectors only (its sparse column would stay empty for these rows); ingest it with "
                    "`obembed ingest --sparse` (the local engine), or write into a collection without a sparse column")
            self._meta = dict(coll.metadata)  # what every write task builds its collection from

    def on_write_complete(self, write_result: Any) -> None:
        for r in write_result.write_returns:
            self.stats.rows_written += r["written"]
            self.stats.rows_truncated += r["truncated"]
            self.stats.retries += r["retries"]
            self.stats.write_seconds += r["seconds"]
            self.stats.rows_failed += len(r["failed"])
            self.stats.failures.extend(r["failed"])
        self.stats.load_seconds = time.perf_counter() - self._t_start
        if self._build_index and self.index:
            t0 = time.perf_counter()
            retrying(self._create_index, self.retry_s, self._count_retry)
            self.stats.index = self.index
            self.stats.index_seconds = time.perf_counter() - t0

    def _create_index(self) -> None:
        with connected(self._dsn, self.database) as store:
            coll = store.collection(self.collection)
            if not coll.has_index:  # a retry after the build went through: done
                coll.create_index(self.index or "hnsw", index_params=self.index_params or None)

    # ------------------------------------------------------------ write tasks
    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
        """One write task: the rows of its blocks upserted by id. A row that cannot be stored (no vector, a
        vector of another size or with NaN/inf, a bad value) is returned as a failure; the others are written."""
        t0 = time.perf_counter()
        retries = [0]

        def count() -> None:
            retries[0] += 1

        meta = self._meta
        if meta is None:  # a sink used without on_write_start (a task run by hand): read the metadata once
            retrying(lambda: self._open_or_create(None), self.retry_s, count)
            meta = self._meta
        assert meta is not None
        dimension, columns = int(meta["dimension"]), dict(meta.get("columns") or {})
        rows: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        truncated = 0
        for block in blocks:
            batch = BlockAccessor.for_block(block).to_numpy()
            if isinstance(batch, np.ndarray):
                raise ConfigError("write_collection needs a dataset of named columns (id, embedding, ...)")
            r, f, t = self._rows(batch, dimension, columns)
            rows.extend(r)
            failed.extend(f)
            truncated += t
        while rows:
            try:
                retrying(lambda: self._upsert(rows, meta), self.retry_s, count)
                break
            except InvalidInputError as exc:  # the store checks every row before any SQL: nothing written
                i = exc.index
                if i is None or not 0 <= i < len(rows):
                    raise
                bad = rows.pop(i)
                failed.append(_failure(bad, str(exc)))
        return {"written": len(rows), "failed": failed, "truncated": truncated, "retries": retries[0],
                "seconds": time.perf_counter() - t0}

    def _rows(self, batch: Mapping[str, Any], dimension: int, columns: Mapping[str, str],
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        if self.vector_column not in batch:
            raise ConfigError(f"the dataset has no column {self.vector_column!r} (it has {sorted(batch)}); "
                              "embed it first (obembed.ray.embed) or pass vector_column=")
        if "id" not in batch:
            raise ConfigError(f"the dataset has no 'id' column (it has {sorted(batch)}); rows are upserted by "
                              "id, so give every row a stable id (obembed.ingest.chunk_id)")
        ids = batch["id"]
        n = len(ids)
        matrix, why_vec = _vector_problems(batch[self.vector_column], n, dimension)
        errors = batch.get(self.error_column) if self.error_column else None
        trunc = batch.get(self.truncated_column) if self.truncated_column else None
        wanted = [c for c in (*_BASE_FIELDS[1:], *columns) if c != "content" and c in batch]
        fields = [("content", batch[self.content_column])] if self.content_column in batch else []
        fields += [(c, batch[c]) for c in wanted]
        columns_py = [(name, values.tolist() if isinstance(values, np.ndarray) else list(values))
                      for name, values in fields]
        id_list = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
        rows: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        n_trunc = 0
        for i in range(n):
            row: dict[str, Any] = {"id": id_list[i]}
            for name, values in columns_py:
                row[name] = values[i]
            if errors is not None and errors[i]:
                failed.append(_failure(row, str(errors[i])))
                continue
            why = why_vec.get(i)
            if why is None:
                why = _metadata_problem(row)
            if why is not None:
                failed.append(_failure(row, why))
                continue
            row["vector"] = matrix[i] if matrix is not None else np.asarray(batch[self.vector_column][i],
                                                                               dtype=np.float32)
            if trunc is not None and bool(trunc[i]):
                n_trunc += 1
            rows.append(row)
        return rows, failed, n_trunc

    def _upsert(self, rows: list[dict[str, Any]], meta: Mapping[str, Any]) -> None:
        try:
            worker_collection(self._dsn, self.database, meta).upsert(rows)
        except InvalidInputError:  # bad input, not a bad link: keep the connection
            raise
        except BaseException:
            drop_worker_store(self._dsn, self.database)
            raise


def _failure(row: Mapping[str, Any], reason: str) -> dict[str, Any]:
    return {"id": row.get("id"), "source": row.get("source"), "chunk": row.get("chunk"), "reason": reason}


def _vector_problems(vectors: Any, n: int, dimension: int) -> tuple[np.ndarray | None, dict[int, str]]:
    """The block's vectors as one float32 ``(n, dimension)`` matrix when they stack (a tensor column: one numpy
    pass checks them all), and why each unusable row cannot be stored (row index -> reason)."""
    if isinstance(vectors, np.ndarray) and vectors.ndim == 2 and vectors.dtype.kind == "f":
        if vectors.shape[1] != dimension:
            wrong = f"the vector has shape ({vectors.shape[1]},), the collection holds {dimension}-d vectors"
            return None, dict.fromkeys(range(n), wrong)
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
        return matrix, dict.fromkeys(bad.tolist(), "the vector contains NaN or inf")
    problems: dict[int, str] = {}
    for i in range(n):
        why = _vector_problem(vectors[i], dimension)
        if why is not None:
            problems[i] = why
    return None, problems


def _vector_problem(v: Any, dimension: int) -> str | None:
    """Why ``v`` cannot be stored in a ``dimension``-d collection (None: it can)."""
    if v is None:
        return "no vector"
    try:
        arr = np.asarray(v, dtype=np.float32)
    except (TypeError, ValueError):
        return "the vector is not numeric"
    if arr.shape != (dimension,):
        return f"the vector has shape {arr.shape}, the collection holds {dimension}-d vectors"
    if not np.isfinite(arr).all():
        return "the vector contains NaN or inf"
    return None


def _metadata_problem(row: dict[str, Any]) -> str | None:
    """Metadata arrives as JSON text (or a dict): parsed in place; a reason when it is not a JSON object."""
    meta = row.get("metadata")
    if isinstance(meta, bytes):
        meta = meta.decode("utf-8", "replace")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta) if meta else None
        except ValueError as exc:
            return f"'metadata' is not JSON ({exc})"
    if meta is not None and not isinstance(meta, Mapping):
        return f"'metadata' must be a JSON object, got {type(meta).__name__}"
    row["metadata"] = meta
    return None


def write_collection(
    ds: Any,
    collection: str,
    *,
    dsn: str | None = None,
    model: Any = None,
    vector_column: str = "embedding",
    content_column: str = "content",
    error_column: str | None = None,
    truncated_column: str | None = None,
    columns: Mapping[str, str] | None = None,
    fulltext: bool | str = True,
    index: str | None = "hnsw",
    index_params: Mapping[str, int] | None = None,
    database: str | None = None,
    retry_s: float = DEFAULT_RETRY_S,
    concurrency: int | None = None,
    num_cpus: float = 0.5,
    rows_per_write: int | None = 1024,
) -> WriteStats:
    """Write ``ds`` into ``collection`` of the database at ``dsn`` (default ``OBEMBED_DSN``); returns stats.

    ``ds`` has an ``id`` column (stable: upserts are keyed by it), the vectors in ``vector_column`` and any of
    ``content`` (``content_column``), ``source``, ``chunk``, ``content_hash``, ``metadata`` (dict or JSON text)
    and the collection's scalar columns. ``model``: the spec or provider the vectors come from; checked
    against an existing collection's model before any block is written, recorded when the collection is
    created (then required). ``index`` is built once after the load when the collection has none (a new
    collection, or a run stopped before its index build); ``None`` leaves the index as it is.
    ``error_column``: rows with a non-empty value there are not written but returned in ``WriteStats.failures``.
    ``rows_per_write``: rows Ray gathers for one write task (each task upserts them in 1000-row transactions).
    """
    from . import _require_ray
    from .embed import model_of

    _require_ray()
    dsn = dsn_or_settings(dsn)
    if model is None:
        model = model_of(ds)
    provider = model if model is not None and not isinstance(model, str) else None
    spec = model if isinstance(model, str) else None
    sink = CollectionSink(collection, dsn, provider=provider, model=spec, vector_column=vector_column,
                         content_column=content_column, error_column=error_column,
                         truncated_column=truncated_column, columns=columns, fulltext=fulltext, index=index,
                         index_params=index_params, database=database, retry_s=retry_s,
                          rows_per_write=rows_per_write)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": num_cpus}, concurrency=concurrency)
    stats: WriteStats = sink.stats
    return stats
