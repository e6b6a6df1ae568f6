"""OceanBase / seekdb vector store: one SQL code path (PyMySQL) for embedded seekdb, a seekdb server and an
OceanBase cluster in MySQL mode.

* embedded (default): a folder; the engine runs as a child process (:mod:`.engine`) on a unix socket.
* DSN: ``mysql://user:pass@host:port/db`` (also ``OBEMBED_DSN``) over TCP (:mod:`.dsn`).

This module holds :class:`Store` (the connection and the catalogue of collections) and :func:`connect`; a
collection's reads, writes and searches are in :mod:`.collection`, the search policy in :mod:`.search`, the
connection and error mapping in :mod:`.session`, row encoding in :mod:`.rows`. Text queries go through a model
that the caller attaches (``store.collection(name, provider=p)``) or that ``provider_factory`` rebuilds from the
collection's metadata. Engine traps it designs around are listed in docs/storage.md.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    StoreError,
)
from ..settings import Settings, get_settings
from . import schema
from .base import ProviderFactory, QueryModel, RerankerFactory, RerankModel
from .collection import DELETE_BATCH, MAX_K, Collection
from .dsn import DEFAULT_DATABASE, is_dsn, parse_dsn, redact_dsn
from .engine import EmbeddedEngine
from .session import Session

__all__ = ["DEFAULT_DATABASE", "DELETE_BATCH", "MAX_K", "Collection", "Store", "connect", "parse_dsn", "redact_dsn"]

log = logging.getLogger(__name__)

DEFAULT_QUERY_TIMEOUT_S = 600.0
CREATE_WAIT_S = 10.0
"""How long create_collection waits for another process's metadata row when it finds the table without one."""


def _obembed_version() -> str:
    try:
        return version("obembed")
    except PackageNotFoundError:  # pragma: no cover
        return "0.0.0"


class Store:
    """A connection to embedded seekdb, a seekdb server or OceanBase; a factory of :class:`Collection`."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        provider_factory: ProviderFactory | None = None,
        fallback_factory: ProviderFactory | None = None,
        database: str | None = None,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT_S,
        reranker_factory: RerankerFactory | None = None,
        create: bool = True,
    ) -> None:
        self.settings = settings or get_settings()
        self.provider_factory = provider_factory
        self.fallback_factory = fallback_factory
        self.reranker_factory = reranker_factory
        self._rerankers: dict[str, RerankModel] = {}
        self._embedded: EmbeddedEngine | None = None
        self._closed = False
        if dsn is None and self.settings.dsn is not None and path is None:
            dsn = self.settings.dsn.get_secret_value()
        self.dsn_redacted: str | None = redact_dsn(dsn) if dsn else None
        if dsn:
            args = parse_dsn(dsn)
            db = database or args.pop("database")
            args.pop("database", None)
            self.mode = "dsn"
            self.path: Path | None = None
            where = args.get("unix_socket") or "{}:{}".format(args["host"], args["port"])
            label = f"seekdb/OceanBase at {where}"
        else:
            self.path = Path(path if path is not None else self.settings.db_path).expanduser().resolve()
            if not create and not self.path.is_dir():
                raise ConfigError(
                    f"no store at {str(self.path)!r} (nothing was created there); check the path (--db), or create "
                    "the store by ingesting into it")
            self._embedded = EmbeddedEngine(self.path, keep_warm_s=self.settings.engine_idle)
            args = self._embedded.connect_args()
            db = database or DEFAULT_DATABASE
            self.mode = "embedded"
            label = f"embedded seekdb in {str(self.path)!r}"
        schema.check_identifier(db, "database name")
        self.database = db
        try:
            self._session = Session(args, db, query_timeout, label)
        except BaseException:
            if self._embedded is not None:
                self._embedded.close()
            raise
        try:
            schema.ensure_table(self._session, schema.META_TABLE, schema.meta_table_ddl(), "the metadata table")
            self.engine_version = str(self._session.execute("SELECT version()")[0][0][0])
        except BaseException:  # do not leak the connection or the embedded engine of a half-opened store
            self._session.close()
            if self._embedded is not None:
                self._embedded.close()
            raise
        self._providers: dict[tuple[str, str], QueryModel] = {}
        self._provider_lock = threading.Lock()
        self.stats: dict[str, int] = {"searches": 0, "exact_fallbacks": 0}
        """Counters: approximate searches run, and how often a short approximate result fell back to exact."""
        log.info("store open: %s, engine %s", label, self.engine_version)

    # -------------------------------------------------------------------- plumbing
    def execute(self, sql: str, params: Sequence[Any] | None = None, *, what: str = "query",
                fetch: bool = True, retry: bool = True) -> tuple[list[tuple[Any, ...]], int]:
        """Run raw SQL (parameters bound by PyMySQL); for diagnostics and advanced use. ``retry=False``: do not
        run it again after a lost connection (for statements that must not run twice)."""
        self._check_open()
        return self._session.execute(sql, params, what=what, fetch=fetch, retry=retry)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed; open a new one with obembed.connect()")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.dsn_redacted if self.mode == "dsn" else str(self.path)
        return f"Store({self.mode}: {where}, database={self.database!r})"

    def close(self) -> None:
        """Close the connection (and this process's handle on the embedded engine)."""
        if self._closed:
            return
        self._closed = True
        self._session.close()
        if self._embedded is not None:
            self._embedded.close()

    # -------------------------------------------------------------------- collections
    def _meta_row(self, name: str) -> dict[str, Any] | None:
        keys = ["name", "dimension", "distance", "spec", "space", "provider", "columns", "index_type",
                "index_params", "fulltext_parser", "obembed_version", "engine_version", "schema_version",
                "created_at", "updated_at"]
        rows, _ = self.execute(
            f"SELECT {', '.join(schema.quote(k) for k in keys)} FROM {schema.quote(schema.META_TABLE)} "
            "WHERE `name` = %s", (name,), what=f"read metadata of collection {name!r}")
        if not rows:
            return None
        keys[keys.index("fulltext_parser")] = "fulltext"
        meta = dict(zip(keys, rows[0], strict=True))
        parser = meta["fulltext"]
        meta["fulltext_pending"] = None
        if isinstance(parser, str) and parser.startswith(schema.FULLTEXT_PENDING):  # built after the first load
            meta["fulltext"], meta["fulltext_pending"] = None, parser[len(schema.FULLTEXT_PENDING):]
        for k in ("provider", "columns", "index_params"):
            meta[k] = json.loads(meta[k]) if meta[k] else ({} if k != "provider" else None)
        return meta

    def _table_exists(self, name: str) -> bool:
        rows, _ = self.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (self.database, name), what="look up a table")
        return bool(rows[0][0])

    def create_collection(
        self,
        name: str,
        provider_or_dim: QueryModel | int,
        *,
        columns: Mapping[str, str] | None = None,
        index: str | None = "hnsw",
        index_params: Mapping[str, int] | None = None,
        fulltext: bool | str = False,
        distance: str | None = None,
        exists_ok: bool = False,
        sparse: bool = False,
        defer_fulltext: bool = False,
    ) -> Collection:
        """Create a collection (one table + one metadata row) and return it.

        ``provider_or_dim``: a provider (its ``info()`` and ``space`` are recorded) or an int dimension.
        ``index``: ``hnsw`` (default), ``hnsw_sq``, ``hnsw_bq``, ``ivf_flat``, ``ivf_pq`` or ``None`` (load first,
        then :meth:`Collection.create_index`). ``fulltext``: True (ngram parser, good for Japanese/Chinese) or a
        parser name (``ik``, ``space`` ...). ``distance``: ``cosine`` / ``l2`` / ``ip``; by default the provider's
        (cosine for unit vectors, l2 otherwise), cosine for a bare dimension. ``sparse``: add a sparse vector column
        (``SPARSEVECTOR``, rows' ``sparse`` field ``{token id: weight}``) with its index (vsag ``sindi``, inner
        product), for ``search(mode="sparse")`` and three-way hybrid search. ``defer_fulltext``: create the table
        without its FULLTEXT index and record it as pending; :meth:`Collection.create_fulltext_index` builds it
        after the first load (what ``obembed ingest`` does for a new collection: a build over loaded rows costs the
        engine a fraction of keeping the index row by row).
        """
        self._check_open()
        schema.check_collection_name(name)
        provider: QueryModel | None = None
        if isinstance(provider_or_dim, bool) or provider_or_dim is None:
            raise InvalidInputError("provider_or_dim must be a provider or a positive int dimension")
        if isinstance(provider_or_dim, int | np.integer):
            dimension = int(provider_or_dim)
            info: dict[str, Any] | None = None
        else:
            provider = provider_or_dim
            dimension = int(provider.dimension)
            info = dict(provider.info())
            info.setdefault("space", provider.space)
        if not 1 <= dimension <= 16000:
            raise InvalidInputError(f"dimension {dimension} is out of range; the engine stores 1..16000 dimensions")
        dist = distance or (info or {}).get("distance") or "cosine"
        if dist not in schema.DISTANCE_FUNCTIONS:
            raise InvalidInputError(f"distance={dist!r} is not supported; use 'cosine', 'l2' or 'ip'")
        if index is not None:
            index = index.lower()
            if index not in schema.INDEX_TYPES:
                raise ConfigError(f"index={index!r} is not supported; use one of {schema.INDEX_TYPES} or None")
            if dimension > 4096:
                raise InvalidInputError(
                    f"a vector index needs dimension ≤ 4096 (this one is {dimension}); pass index=None for exact "
                    "search only, or reduce the dimension (e.g. the provider's dimensions= option)")
        params = schema.index_params(index, dimension, dict(index_params or {})) if index else {}
        cols = schema.check_columns(dict(columns or {}))
        parser: str | None = None
        if fulltext:
            parser = "ngram" if fulltext is True else str(fulltext).lower()
            if parser not in schema.FULLTEXT_PARSERS:
                raise ConfigError(f"fulltext={fulltext!r}: parser not supported; use True or one of "
                                  f"{schema.FULLTEXT_PARSERS}")
        with self._session.lock:
            existing = self._meta_row(name)
            if existing is not None and not self._table_exists(name):
                log.warning("collection %s has a metadata row but no table (a drop_collection was interrupted): "
                            "finishing the drop before creating it", name)
                self._forget(name)
                existing = None
            if existing is not None:
                if not exists_ok:
                    raise CollectionExistsError(
                        f"collection {name!r} exists already; open it with store.collection({name!r}), pass "
                        "exists_ok=True, or drop it first")
                coll = Collection(self, existing, provider=None)
                if provider is not None:
                    coll.attach(provider)
                elif coll.dimension != dimension:
                    raise DimensionMismatchError(
                        f"collection {name!r} exists with {coll.dimension}-d vectors, asked for {dimension}-d; "
                        "use another name or drop it first")
                return coll
            if self._table_exists(name):
                # another process between its CREATE TABLE and its metadata row, or a create killed there
                existing = self._await_meta_row(name)
                if existing is not None:
                    return self.create_collection(name, provider_or_dim, columns=columns, index=index,
                                                  index_params=index_params, fulltext=fulltext, distance=distance,
                                                  exists_ok=exists_ok, sparse=sparse, defer_fulltext=defer_fulltext)
                self._drop_orphan_table(name)
            deferred = bool(parser) and defer_fulltext
            ddl = schema.collection_ddl(name, dimension, dist, columns=cols, index=index, index_params=params,
                                        fulltext=None if deferred else parser, sparse=bool(sparse),
                                        fulltext_seed=parser if deferred else None)
            # no automatic re-run after a lost link: the table may exist already; calling again cleans it up
            try:
                self.execute(ddl, what=f"create collection {name!r}", fetch=False, retry=False)
            except StoreError as exc:
                if sparse and any(w in str(exc).lower() for w in ("sparsevector", "sindi", "syntax", "not supported")):
                    raise ConfigError(
                        f"collection {name!r}: this engine ({self.engine_version}) cannot hold sparse vectors "
                        f"({exc}); sparse=True needs {schema.SPARSE_VERSION_NEEDED}. Create the collection "
                        "without sparse=True, or upgrade the engine") from exc
                if "1050" not in str(exc):  # not "table already exists": a real failure
                    raise
                # another process created it between our look and our CREATE: attach to it (same model) once it
                # has recorded it. No row within the wait: a create killed in flight, whose CREATE TABLE the
                # engine finished after our look; an empty table is that orphan (dropped, then created here),
                # a table with rows is refused by _drop_orphan_table
                if self._await_meta_row(name) is not None:
                    return self.create_collection(name, provider_or_dim, columns=columns, index=index,
                                                  index_params=index_params, fulltext=fulltext, distance=distance,
                                                  exists_ok=exists_ok, sparse=sparse, defer_fulltext=defer_fulltext)
                self._drop_orphan_table(name)
                self.execute(ddl, what=f"create collection {name!r}", fetch=False, retry=False)
            try:
                self.execute(
                    f"INSERT INTO {schema.quote(schema.META_TABLE)} (`name`, `dimension`, `distance`, `spec`, `space`, "
                    "`provider`, `columns`, `index_type`, `index_params`, `fulltext_parser`, `obembed_version`, "
                    "`engine_version`, `schema_version`) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (name, dimension, dist, (info or {}).get("spec"), (info or {}).get("space"),
                     json.dumps(info, ensure_ascii=False, default=str) if info else None,
                     json.dumps(cols), index, json.dumps(params),
                     f"{schema.FULLTEXT_PENDING}{parser}" if deferred else parser, _obembed_version(),
                     self.engine_version, schema.SCHEMA_VERSION),
                    what=f"record collection {name!r}", fetch=False)
            except BaseException:
                self.execute(f"DROP TABLE IF EXISTS {schema.quote(name)}", fetch=False)
                raise
            log.info("created collection %s (%d-d, %s, index=%s, fulltext=%s, sparse=%s)", name, dimension, dist,
                     index, parser, bool(sparse))
            meta = self._meta_row(name)
            assert meta is not None
            return Collection(self, meta, provider=provider)

    def _await_meta_row(self, name: str, wait_s: float | None = None) -> dict[str, Any] | None:
        """The metadata row of ``name`` once it appears (another process creating the collection writes it right
        after its CREATE TABLE), or None after ``wait_s`` (default ``CREATE_WAIT_S``, read at the call: a create
        that was killed in between)."""
        deadline = time.monotonic() + (CREATE_WAIT_S if wait_s is None else wait_s)
        while True:
            meta = self._meta_row(name)
            if meta is not None or time.monotonic() >= deadline:
                return meta
            time.sleep(0.2)

    def _drop_orphan_table(self, name: str) -> None:
        """A table ``name`` exists without a metadata row: drop it if it is empty (a create_collection killed
        between its CREATE TABLE and its metadata INSERT leaves one), refuse it otherwise (someone else's table).

        DDL is not retried after a lost connection here: the caller sees the error and can simply call again.
        """
        try:
            n = int(self.execute(f"SELECT COUNT(*) FROM {schema.quote(name)}", what=f"inspect table {name!r}")[0][0][0])
        except StoreError as exc:
            raise CollectionExistsError(
                f"a table named {name!r} exists in database {self.database!r} but is not an obembed collection "
                f"(it cannot be read: {exc}); choose another collection name") from exc
        if n:
            raise CollectionExistsError(
                f"a table named {name!r} exists in database {self.database!r} with {n} rows but is not an obembed "
                "collection (no metadata row); choose another collection name, or drop that table yourself")
        log.warning("table %s exists without a metadata row and is empty (an interrupted create_collection?): "
                    "dropping and recreating it", name)
        self.execute(f"DROP TABLE {schema.quote(name)}", what=f"drop the empty orphan table {name!r}", fetch=False)

    def collection(self, name: str, provider: QueryModel | None = None) -> Collection:
        """Open an existing collection; a given provider is checked against the recorded model and dimension."""
        self._check_open()
        schema.check_collection_name(name)
        meta = self._meta_row(name)
        if meta is not None and not self._table_exists(name):
            log.warning("collection %s has a metadata row but no table (a drop_collection was interrupted): "
                        "finishing the drop", name)
            with self._session.lock:
                self._forget(name)
            meta = None
        if meta is None:
            # no store repr (a DSN) in the message: servers pass it on to clients; they map this error themselves
            known = [c["name"] for c in self._list_meta()]
            raise CollectionNotFoundError(
                f"no collection named {name!r} in database {self.database!r}; known: {', '.join(known) or 'none'} "
                "(create it with store.create_collection or `obembed ingest`)")
        return Collection(self, meta, provider=provider)

    def reranker(self, rerank: str | RerankModel) -> RerankModel:
        """The reranker for ``search(rerank=...)``: the object itself, or a spec built once per store by
        ``reranker_factory`` (``obembed.connect`` passes ``obembed.load_reranker``)."""
        if isinstance(rerank, str):
            with self._provider_lock:
                cached = self._rerankers.get(rerank)
                if cached is None:
                    if self.reranker_factory is None:
                        raise ConfigError(
                            f"rerank={rerank!r} is a spec, and this store has no reranker_factory to build it: open "
                            "the store with obembed.connect(), or pass a reranker object "
                            "(obembed.load_reranker(spec))")
                    cached = self._rerankers[rerank] = self.reranker_factory(rerank)
            return cached
        if isinstance(rerank, RerankModel):
            return rerank
        raise ConfigError(f"rerank= takes a spec string or a reranker (an object with .spec and .rerank(query, "
                          f"documents, top_n)), not a {type(rerank).__name__}")

    def get_or_create_collection(self, name: str, provider_or_dim: QueryModel | int, **kwargs: Any) -> Collection:
        """:meth:`create_collection` with ``exists_ok=True``."""
        return self.create_collection(name, provider_or_dim, exists_ok=True, **kwargs)

    def has_collection(self, name: str) -> bool:
        schema.check_collection_name(name)
        return self._meta_row(name) is not None and self._table_exists(name)

    def _list_meta(self) -> list[dict[str, Any]]:
        rows, _ = self.execute(
            "SELECT `name`, `dimension`, `distance`, `spec`, `index_type`, `fulltext_parser`, `created_at` "
            f"FROM {schema.quote(schema.META_TABLE)} ORDER BY `name`", what="list collections")
        keys = ["name", "dimension", "distance", "spec", "index", "fulltext", "created"]
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def list_collections(self) -> list[dict[str, Any]]:
        """One dict per collection: name, dimension, distance, spec, index, fulltext, count, created."""
        out = self._list_meta()
        for c in out:
            try:
                c["count"] = int(self.execute(f"SELECT COUNT(*) FROM {schema.quote(c['name'])}")[0][0][0])
            except StoreError:
                c["count"] = None
        return out

    # -------------------------------------------------------------------- in-database models
    def register_model(self, url: str, model: Any = None, *, collection: str | None = None,
                       served_name: str | None = None, name: str | None = None) -> list[Any]:
        """Register a served model as the engine's AI model(s), so SQL's ``AI_EMBED('<name>', text)`` calls the
        obembed server at ``url`` (``http://HOST:PORT/v1/embeddings``). ``model``: a provider or spec (default:
        the collection's recorded model); ``served_name``: the name the server serves it under (default its
        spec). Returns :class:`~obembed.store.ai_models.Registration` objects (``key`` set on new ones).
        See :mod:`obembed.store.ai_models` for the names and docs/in-database.md for the SQL."""
        from . import ai_models

        self._check_open()
        if model is None:
            if collection is None:
                raise ConfigError("register_model needs model= (a provider or spec) or collection= (its model)")
            provider: Any = self.collection(collection).model
        elif isinstance(model, str):
            import obembed

            provider = obembed.load(model)
        else:
            provider = model
        return ai_models.register_model(self, url, provider, collection=collection, served_name=served_name,
                                        name=name)

    def register_reranker(self, url: str, reranker: Any, *, served_name: str | None = None,
                          name: str | None = None) -> list[Any]:
        """Register a served reranker (``obembed serve --rerank-model SPEC``) as the engine's rerank model, so SQL's
        ``AI_RERANK('<name>', query, documents)`` calls the obembed server at ``url`` (``http://HOST:PORT/v1/rerank``).
        ``reranker``: a reranker object or spec; ``served_name``: the name the server reports for it (default its
        model's last path part). Returns the one :class:`~obembed.store.ai_models.Registration`."""
        from . import ai_models

        self._check_open()
        if isinstance(reranker, str):
            import obembed

            reranker = obembed.load_reranker(reranker)
        return ai_models.register_reranker(self, url, reranker, served_name=served_name, name=name)

    def ai_models(self) -> list[Any]:
        """The in-database model registrations, each with ``status`` "ok" or "stale: <why>"."""
        from . import ai_models

        self._check_open()
        return ai_models.list_models(self)

    def drop_ai_models(self, names: Sequence[str] = (), *, stale: bool = False, all_: bool = False) -> list[str]:
        """Drop registrations by name, the stale ones, or all; returns the names dropped."""
        from . import ai_models

        self._check_open()
        return ai_models.drop_models(self, names, stale=stale, all_=all_)

    def drop_collection(self, name: str, *, missing_ok: bool = False) -> None:
        """Drop a collection's table and metadata row."""
        self._check_open()
        schema.check_collection_name(name)
        with self._session.lock:
            if self._meta_row(name) is None:
                if missing_ok:
                    return
                raise CollectionNotFoundError(f"no collection named {name!r} to drop")
            # crash-consistent order: the table goes first, the metadata row last. A kill after the DROP leaves a
            # metadata row without a table, which every later command repairs (this drop again, create_collection
            # of the name, opening it); the reverse order would leave a full table nobody owns.
            from .migrate import drop_migration

            drop_migration(self, name)  # a model migration's shadow table and state row, first (they are extras)
            self.execute(f"DROP TABLE IF EXISTS {schema.quote(name)}", what=f"drop collection {name!r}", fetch=False,
                         retry=False)
            self._forget(name)

    def _forget(self, name: str) -> None:
        self.execute(f"DELETE FROM {schema.quote(schema.META_TABLE)} WHERE `name` = %s", (name,), fetch=False,
                     what=f"drop collection {name!r}")


def connect(
    target: str | os.PathLike[str] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    dsn: str | None = None,
    settings: Settings | None = None,
    provider_factory: ProviderFactory | None = None,
    fallback_factory: ProviderFactory | None = None,
    database: str | None = None,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT_S,
    reranker_factory: RerankerFactory | None = None,
    create: bool = True,
) -> Store:
    """Open the store. ``target``: a folder path (embedded seekdb there) or a DSN (a string with ``://``,
    ``mysql://user:pass@host:2881/db``); or say which with ``path=`` / ``dsn=`` (a DSN wins when both are
    given). With none of them: ``OBEMBED_DSN`` if set, else embedded seekdb in ``settings.db_path``
    (``./obembed.db``).

    ``provider_factory(spec, **options)`` rebuilds a collection's model for text queries (``obembed.connect``
    passes ``obembed.load``); ``fallback_factory`` is used when that model turns out another vector space;
    ``reranker_factory(spec)`` builds the reranker a ``search(rerank="SPEC")`` names (``obembed.load_reranker``).
    """
    if target is not None:
        if path is not None or dsn is not None:
            raise ConfigError("connect() got a target and path=/dsn= too; pass one of them")
        text = os.fspath(target)
        if isinstance(text, str) and is_dsn(text):
            dsn = text
        else:
            path = text
    if path is not None and not dsn:
        folder = Path(path).expanduser()
        if folder.exists() and not folder.is_dir():
            raise ConfigError(
                f"store path {str(folder)!r} is a file, not a folder: the embedded store keeps its data in a "
                f"folder. Pass a folder path (e.g. {str(folder.parent / (folder.stem + '_store'))!r}), or a DSN "
                "such as mysql://user:pass@host:2881/db")
    return Store(dsn, path=path, settings=settings, provider_factory=provider_factory,
                 fallback_factory=fallback_factory, database=database, query_timeout=query_timeout,
                 reranker_factory=reranker_factory, create=create)
