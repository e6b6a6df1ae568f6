"""OceanBase / seekdb vector store: one SQL code path (PyMySQL) for embedded seekdb, a seekdb server and an
OceanBase cluster in MySQL mode.

* embedded (default): ``pylibseekdb.open(folder)`` starts the engine as a child process listening on a unix
  socket; we talk to it with PyMySQL exactly as to a server.
* DSN: ``mysql://user:pass@host:port/db`` (also ``OBEMBED_DSN``) over TCP.

The store takes vectors; text queries go through a provider that the caller attaches
(``store.collection(name, provider=p)``) or that ``provider_factory`` rebuilds from the collection's metadata.
Engine traps it designs around are listed in docs/storage.md.
"""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import numpy as np

from ..errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    StoreConnectionError,
    StoreError,
    redact,
)
from ..settings import Settings, get_settings
from . import schema
from .base import Hit
from .filters import Where, compile_where

__all__ = ["Collection", "Store", "connect", "parse_dsn", "redact_dsn"]

log = logging.getLogger(__name__)

ProviderFactory = Callable[..., Any]

DEFAULT_DATABASE = "obembed"
DEFAULT_QUERY_TIMEOUT_S = 600.0
MAX_STATEMENT_BYTES = 8 * 1024 * 1024  # well under the engine's 16 MiB max_allowed_packet
MAX_K = 16384
DELETE_BATCH = 1000
"""ids per DELETE statement (and per get() SELECT): bounded IN lists."""
RRF_K = 60
_CONN_LOST = {2006, 2013, 2055}
_BASE_SELECT = ["id", "content", "source", "chunk", "content_hash", "metadata"]


def _obembed_version() -> str:
    try:
        return version("obembed")
    except PackageNotFoundError:  # pragma: no cover
        return "0.0.0"


# ---------------------------------------------------------------------------------------------- connecting
def redact_dsn(dsn: str) -> str:
    """``dsn`` fit for reprs, logs and messages: the netloc rebuilt from its parts as ``user:***@host:port``.

    Built with :func:`urllib.parse.urlsplit` (which splits the userinfo at the *last* ``@``), so OceanBase
    users such as ``user@tenant`` or ``user@tenant#cluster`` and passwords holding ``@`` or ``:`` are handled.
    """
    try:
        parts = urlsplit(_escape_hash(dsn))
        host = parts.hostname or ""
        port = parts.port
        user = parts.username
        has_password = parts.password is not None
    except ValueError:
        return redact(dsn)
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    if user is not None or has_password:
        netloc = f"{user or ''}{':***' if has_password else ''}@{netloc}"
    out = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return redact(out)  # the query too (a password=... option, should anyone add one)


def _escape_hash(dsn: str) -> str:
    """A DSN has no fragment: a ``#`` belongs to the login (OceanBase ``user@tenant#cluster``) or the password."""
    return dsn.replace("#", "%23")


def parse_dsn(dsn: str) -> dict[str, Any]:
    """``mysql://user:pass@host:port/db?charset=...`` → PyMySQL connect arguments (+ ``database``)."""
    parts = urlsplit(_escape_hash(dsn))
    if parts.scheme.lower() not in ("mysql", "mysql+pymysql", "oceanbase", "seekdb"):
        raise ConfigError(
            f"DSN {redact_dsn(dsn)!r}: scheme {parts.scheme!r} is not supported; use mysql://user:pass@host:2881/db"
        )
    if not parts.hostname:
        raise ConfigError(f"DSN {redact_dsn(dsn)!r} has no host; use mysql://user:pass@host:2881/db")
    try:
        port = parts.port or 2881
    except ValueError as exc:
        raise ConfigError(f"DSN {redact_dsn(dsn)!r} has a bad port; use mysql://user:pass@host:2881/db") from exc
    db = unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
    schema.check_identifier(db, "database name in the DSN")
    opts: dict[str, Any] = {
        "host": parts.hostname,
        "port": port,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": db,
    }
    q = parse_qs(parts.query)
    if "connect_timeout" in q:
        opts["connect_timeout"] = float(q["connect_timeout"][0])
    if "unix_socket" in q:  # a seekdb on this machine by its socket: mysql://root@localhost/db?unix_socket=/x.sock
        opts["unix_socket"] = q["unix_socket"][0]
    unknown = set(q) - {"connect_timeout", "unix_socket"}
    if unknown:
        raise ConfigError(f"DSN {redact_dsn(dsn)!r}: unknown option(s) {sorted(unknown)}; known: connect_timeout, "
                          "unix_socket")
    return opts


class _Embedded:
    """One embedded seekdb runtime opened by this process (``pylibseekdb.open``)."""

    def __init__(self, path: Path) -> None:
        try:
            import pylibseekdb
        except ImportError as exc:  # pragma: no cover - a hard dependency
            from ..errors import MissingDependencyError

            raise MissingDependencyError("pylibseekdb", "all", "the embedded seekdb store") from exc
        if path.exists() and not path.is_dir():
            raise StoreConnectionError(f"store path {str(path)!r} exists and is not a folder; choose a folder path")
        path.parent.mkdir(parents=True, exist_ok=True)
        _reap_engine_zombies()  # engines this process closed earlier
        t0 = time.perf_counter()
        try:
            self.instance = pylibseekdb.open(str(path))
        except Exception as exc:  # pylibseekdb.SeekdbError and RuntimeError
            raise StoreConnectionError(
                f"the embedded seekdb did not start in {str(path)!r}: {exc}. Check the folder is writable, has "
                "free disk space (the engine reserves ~2 GB of log space) and is not a folder of something else"
            ) from exc
        log.info("embedded seekdb opened in %s (%.1f s)", path, time.perf_counter() - t0)
        self.path = path

    def connect_args(self) -> dict[str, Any]:
        return dict(self.instance.connection_options())

    def close(self) -> None:
        try:
            self.instance.close()
        except Exception as exc:  # pragma: no cover - best effort
            log.warning("closing the embedded seekdb in %s failed: %s", self.path, exc)
        _reap_engine_zombies()


def _reap_engine_zombies() -> None:
    """pylibseekdb does not wait() for the engines it started: reap our own exited ``seekdb`` children (Linux)."""
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:  # pragma: no cover - not Linux
        return
    for d in entries:
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.find("(") + 1:stat.rfind(")")]
        rest = stat[stat.rfind(")") + 2:].split()
        if name == "seekdb" and rest[0] == "Z" and int(rest[1]) == me:
            try:
                os.waitpid(int(d), os.WNOHANG)
            except ChildProcessError:
                pass


def _map_error(exc: BaseException, what: str) -> StoreError:
    """Translate a PyMySQL error into the obembed tree (one place)."""
    import pymysql

    code = exc.args[0] if getattr(exc, "args", None) else None
    msg = str(exc.args[1]) if isinstance(exc, pymysql.err.Error) and len(exc.args) > 1 else str(exc)
    msg = redact(msg)
    if isinstance(exc, pymysql.err.OperationalError) and code in _CONN_LOST:
        return StoreConnectionError(f"{what}: lost the connection to the database ({code}: {msg}); reconnect "
                                    "(the store retries once) or check the server is running")
    if code == 4012:
        return StoreError(f"{what}: the engine timed out ({code}: {msg}); raise query_timeout= in connect() or use "
                          "smaller batches")
    return StoreError(f"{what}: the engine refused it ({code}: {msg})")


class _Session:
    """One PyMySQL connection with a lock (thread-safe use), one reconnect on a lost link, error mapping."""

    def __init__(self, connect_args: dict[str, Any], database: str, query_timeout: float, label: str,
                 create_database: bool = True) -> None:
        self.connect_args = connect_args
        self.database = database
        self.query_timeout = query_timeout
        self.label = label
        self.create_database = create_database
        self.lock = threading.RLock()
        self.conn: Any = None
        self._open()

    def _open(self) -> None:
        import pymysql

        args = dict(self.connect_args)
        args.setdefault("connect_timeout", 10)
        # a client-side bound too: an engine that stops answering must not hang a search forever
        args.setdefault("read_timeout", self.query_timeout + 60)
        args.setdefault("write_timeout", self.query_timeout + 60)
        try:
            conn = pymysql.connect(**args, autocommit=True, charset="utf8mb4")
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args else None
            detail = redact(str(exc.args[1]) if len(exc.args) > 1 else str(exc), args.get("password"))
            if code == 1045:
                raise StoreConnectionError(
                    f"{self.label}: the database refused the login ({code}: {detail}); check the user and password "
                    "in the DSN (mysql://USER:PASSWORD@host:port/db; OceanBase users look like user@tenant)"
                ) from None
            raise StoreConnectionError(
                f"{self.label}: cannot connect ({code}: {detail}); check the host and port, that the server is "
                "running and reachable, or leave the DSN unset to use the embedded seekdb"
            ) from None
        except pymysql.err.Error as exc:
            raise StoreConnectionError(f"{self.label}: cannot connect: {redact(str(exc), args.get('password'))}") \
                from None
        cur = conn.cursor()
        us = int(self.query_timeout * 1_000_000)
        for stmt in (f"SET SESSION ob_query_timeout = {us}", f"SET SESSION ob_trx_timeout = {us}",
                     "SET SESSION time_zone = '+00:00'"):
            try:
                cur.execute(stmt)
            except pymysql.err.Error as exc:  # not OceanBase? keep going, say so
                log.warning("%s: %s failed: %s", self.label, stmt, exc)
        db = schema.quote(self.database)
        try:
            if self.create_database:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
            cur.execute(f"USE {db}")
        except pymysql.err.Error as exc:
            conn.close()
            raise StoreConnectionError(
                f"{self.label}: cannot use database {self.database!r} ({exc}); create it or grant access to it"
            ) from exc
        cur.close()
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None, *, what: str = "query",
                fetch: bool = True, retry: bool = True) -> tuple[list[tuple[Any, ...]], int]:
        """Run one statement (autocommit); returns (rows, rowcount). Reconnects once on a lost connection and
        runs it again, unless ``retry=False`` (DDL: it may have been applied before the link broke)."""
        import pymysql

        with self.lock:
            for attempt in (0, 1):
                try:
                    with self.conn.cursor() as cur:
                        n = cur.execute(sql, params)
                        rows = list(cur.fetchall()) if fetch else []
                        return rows, n
                except pymysql.err.OperationalError as exc:
                    if attempt == 0 and exc.args and exc.args[0] in _CONN_LOST:
                        log.warning("%s: connection lost (%s), reconnecting once", self.label, exc.args[0])
                        self._reconnect()
                        if retry:
                            continue
                    raise _map_error(exc, what) from exc
                except pymysql.err.Error as exc:
                    raise _map_error(exc, what) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    def transaction(self, statements: Iterable[tuple[str, Sequence[Any]]], *, what: str) -> None:
        """Run statements in one transaction: all committed, or none (rolled back) and an error raised."""
        import pymysql

        with self.lock:
            try:
                self.conn.begin()
                with self.conn.cursor() as cur:
                    for sql, params in statements:
                        cur.execute(sql, params)
                self.conn.commit()
            except pymysql.err.Error as exc:
                try:
                    self.conn.rollback()
                except pymysql.err.Error:
                    pass
                raise _map_error(exc, what) from exc
            except BaseException:
                try:
                    self.conn.rollback()
                except pymysql.err.Error:
                    pass
                raise

    def _reconnect(self) -> None:
        try:
            self.conn.close()
        except Exception:  # already broken
            pass
        self._open()

    def close(self) -> None:
        with self.lock:
            if self.conn is not None:
                try:
                    self.conn.close()
                except Exception:  # best effort on shutdown
                    pass
                self.conn = None


# ---------------------------------------------------------------------------------------------- vectors
def _as_vector(v: Any, dimension: int, what: str) -> np.ndarray:
    try:
        arr = np.asarray(v, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what}: the vector is not numeric ({exc}); pass a list or array of floats") \
            from None
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and arr.shape[0] == 1 else arr
    if arr.ndim != 1:
        raise InvalidInputError(f"{what}: expected one vector of {dimension} floats, got shape {arr.shape}")
    if arr.shape[0] != dimension:
        raise DimensionMismatchError(
            f"{what}: the vector has {arr.shape[0]} dimensions, the collection holds {dimension}-d vectors; "
            "embed with the collection's model (see its metadata) or create another collection"
        )
    if not np.isfinite(arr).all():
        raise InvalidInputError(
            f"{what}: the vector contains NaN or inf (the engine would store it and it would poison searches); "
            "fix or drop the item"
        )
    return arr


_SCALARS = (str, int, float, decimal.Decimal, datetime.date, datetime.time, datetime.timedelta)


def _scalar_value(v: Any, ctype: str, what: str, index: int) -> Any:
    """A declared column's value, checked: one scalar (or None). Containers and arbitrary objects are refused
    before they reach the driver (PyMySQL < 1.1.1 built SQL from dict keys: CVE-2024-36039); a ``json``
    column takes a dict/list (serialised here); bytes only go into binary/varbinary columns."""
    if v is None:
        return None
    if ctype == "json":
        if isinstance(v, str):  # JSON text, as before
            return v
        try:
            return json.dumps(v, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{what}: the value is not JSON-serialisable ({exc})", index=index) from None
    if isinstance(v, bytes | bytearray | memoryview):
        if ctype.startswith(("binary", "varbinary")):
            return bytes(v)
        raise InvalidInputError(f"{what}: got bytes; pass a str (decode it) or declare the column varbinary(n)",
                                index=index)
    if not isinstance(v, _SCALARS):  # bool is an int
        raise InvalidInputError(
            f"{what}: got a {type(v).__name__}, not a single value; pass a str, number, bool, date or None "
            "(put structured data into 'metadata', or declare the column as json)", index=index)
    if isinstance(v, float) and not math.isfinite(v):
        raise InvalidInputError(f"{what} is {v}; use a finite number or None", index=index)
    return v


def _parse_vector(text: Any) -> np.ndarray:
    if isinstance(text, bytes | bytearray):
        text = text.decode()
    s = str(text).strip()
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    if not s:
        return np.zeros(0, dtype=np.float32)
    return np.array(s.split(","), dtype=np.float32)


def _score(distance: str, d: float) -> float:
    if distance == "cosine":
        return 1.0 - d
    if distance == "ip":
        return -d
    return 1.0 / (1.0 + d)


# ---------------------------------------------------------------------------------------------- store
class Store:
    """A connection to embedded seekdb, a seekdb server or OceanBase; a factory of :class:`Collection`."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        provider_factory: ProviderFactory | None = None,
        database: str | None = None,
        query_timeout: float = DEFAULT_QUERY_TIMEOUT_S,
    ) -> None:
        self.settings = settings or get_settings()
        self.provider_factory = provider_factory
        self._embedded: _Embedded | None = None
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
            self._embedded = _Embedded(self.path)
            args = self._embedded.connect_args()
            db = database or DEFAULT_DATABASE
            self.mode = "embedded"
            label = f"embedded seekdb in {str(self.path)!r}"
        schema.check_identifier(db, "database name")
        self.database = db
        try:
            self._session = _Session(args, db, query_timeout, label)
        except BaseException:
            if self._embedded is not None:
                self._embedded.close()
            raise
        try:
            self._session.execute(schema.meta_table_ddl(), what="create the metadata table", fetch=False)
            self.engine_version = str(self._session.execute("SELECT version()")[0][0][0])
        except BaseException:  # do not leak the connection or the embedded engine of a half-opened store
            self._session.close()
            if self._embedded is not None:
                self._embedded.close()
            raise
        self._providers: dict[tuple[str, str], Any] = {}
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
        provider_or_dim: Any,
        *,
        columns: Mapping[str, str] | None = None,
        index: str | None = "hnsw",
        index_params: Mapping[str, int] | None = None,
        fulltext: bool | str = False,
        distance: str | None = None,
        exists_ok: bool = False,
    ) -> Collection:
        """Create a collection (one table + one metadata row) and return it.

        ``provider_or_dim``: a provider (its ``info()`` and ``space`` are recorded) or an int dimension.
        ``index``: ``hnsw`` (default), ``hnsw_sq``, ``hnsw_bq``, ``ivf_flat``, ``ivf_pq`` or ``None`` (load first,
        then :meth:`Collection.create_index`). ``fulltext``: True (ngram parser, good for Japanese/Chinese) or a
        parser name (``ik``, ``space`` ...). ``distance``: ``cosine`` / ``l2`` / ``ip``; by default the provider's
        (cosine for unit vectors, l2 otherwise), cosine for a bare dimension.
        """
        self._check_open()
        schema.check_collection_name(name)
        provider = None
        if isinstance(provider_or_dim, bool) or provider_or_dim is None:
            raise InvalidInputError("provider_or_dim must be a provider or a positive int dimension")
        if isinstance(provider_or_dim, int | np.integer):
            dimension = int(provider_or_dim)
            info: dict[str, Any] | None = None
        else:
            provider = provider_or_dim
            dimension = int(provider.dimension)
            info = dict(provider.info())
            info.setdefault("space", getattr(provider, "space", None))
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
                self._drop_orphan_table(name)
            ddl = schema.collection_ddl(name, dimension, dist, columns=cols, index=index, index_params=params,
                                        fulltext=parser)
            # no automatic re-run after a lost link: the table may exist already; calling again cleans it up
            self.execute(ddl, what=f"create collection {name!r}", fetch=False, retry=False)
            try:
                self.execute(
                    f"INSERT INTO {schema.quote(schema.META_TABLE)} (`name`, `dimension`, `distance`, `spec`, `space`, "
                    "`provider`, `columns`, `index_type`, `index_params`, `fulltext_parser`, `obembed_version`, "
                    "`engine_version`, `schema_version`) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (name, dimension, dist, (info or {}).get("spec"), (info or {}).get("space"),
                     json.dumps(info, ensure_ascii=False, default=str) if info else None,
                     json.dumps(cols), index, json.dumps(params), parser, _obembed_version(),
                     self.engine_version, schema.SCHEMA_VERSION),
                    what=f"record collection {name!r}", fetch=False)
            except BaseException:
                self.execute(f"DROP TABLE IF EXISTS {schema.quote(name)}", fetch=False)
                raise
            log.info("created collection %s (%d-d, %s, index=%s, fulltext=%s)", name, dimension, dist, index, parser)
            meta = self._meta_row(name)
            assert meta is not None
            return Collection(self, meta, provider=provider)

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

    def collection(self, name: str, provider: Any = None) -> Collection:
        """Open an existing collection; a given provider is checked against the recorded model and dimension."""
        self._check_open()
        schema.check_collection_name(name)
        meta = self._meta_row(name)
        if meta is None:
            # no store repr (a DSN) in the message: servers pass it on to clients; they map this error themselves
            known = [c["name"] for c in self._list_meta()]
            raise CollectionNotFoundError(
                f"no collection named {name!r} in database {self.database!r}; known: {', '.join(known) or 'none'} "
                "(create it with store.create_collection or `obembed ingest`)")
        return Collection(self, meta, provider=provider)

    def get_or_create_collection(self, name: str, provider_or_dim: Any, **kwargs: Any) -> Collection:
        """:meth:`create_collection` with ``exists_ok=True``."""
        return self.create_collection(name, provider_or_dim, exists_ok=True, **kwargs)

    def has_collection(self, name: str) -> bool:
        schema.check_collection_name(name)
        return self._meta_row(name) is not None

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

    def drop_collection(self, name: str, *, missing_ok: bool = False) -> None:
        """Drop a collection's table and metadata row."""
        self._check_open()
        schema.check_collection_name(name)
        with self._session.lock:
            if self._meta_row(name) is None:
                if missing_ok:
                    return
                raise CollectionNotFoundError(f"no collection named {name!r} to drop")
            self.execute(f"DROP TABLE IF EXISTS {schema.quote(name)}", what=f"drop collection {name!r}", fetch=False)
            self.execute(f"DELETE FROM {schema.quote(schema.META_TABLE)} WHERE `name` = %s", (name,), fetch=False,
                         what=f"drop collection {name!r}")


# ---------------------------------------------------------------------------------------------- collection
class Collection:
    """One table of vectors beside scalar data; from :meth:`Store.create_collection` / :meth:`Store.collection`."""

    def __init__(self, store: Store, meta: dict[str, Any], provider: Any = None) -> None:
        self.store = store
        self.metadata: dict[str, Any] = meta
        self.name: str = meta["name"]
        self.dimension: int = int(meta["dimension"])
        self.distance: str = meta["distance"]
        self.columns: dict[str, str] = dict(meta.get("columns") or {})
        self._provider: Any = None
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

    def check_provider(self, provider: Any) -> None:
        """Refuse a provider whose vector space or dimension differs from the collection's."""
        dim = int(provider.dimension)
        pspace = getattr(provider, "space", None)
        pspec = getattr(provider, "spec", repr(provider))
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

    def attach(self, provider: Any) -> Collection:
        """Use ``provider`` for text queries (checked against the metadata); returns self."""
        self.check_provider(provider)
        self._provider = provider
        return self

    @property
    def provider(self) -> Any:
        """The provider for text queries: the attached one, else rebuilt from the metadata by provider_factory."""
        if self._provider is None:
            factory = self.store.provider_factory
            if not self.spec:
                raise ConfigError(
                    f"collection {self.name!r} was created from a bare dimension and has no model recorded; "
                    "search it with a vector, or open it with store.collection(name, provider=...)")
            if factory is None:
                raise ConfigError(
                    f"searching collection {self.name!r} with text needs its model {self.spec}: open the store with "
                    "obembed.connect() (which can rebuild providers), or pass provider= to store.collection()")
            options = dict((self.metadata.get("provider") or {}).get("options") or {})
            key = (self.spec, json.dumps(options, sort_keys=True, default=str))
            cache = self.store._providers
            with self.store._provider_lock:
                provider = cache.get(key)
                if provider is None:  # build each model once per store, not once per Collection object
                    provider = factory(self.spec, **options)
                    cache[key] = provider
            self.attach(provider)
        return self._provider

    # -------------------------------------------------------------------- writing
    def _row_values(self, i: int, row: Any, seen: set[str], *, vector: bool = True) -> tuple[list[Any], bytes]:
        """Check one row; return its column values (without the vector) and its float32 vector bytes
        (``b""`` with ``vector=False``, when the caller checked all vectors at once)."""
        if not isinstance(row, Mapping):
            raise InvalidInputError(f"row {i} is a {type(row).__name__}, not a dict with 'id' and 'vector'", index=i)
        rid = row.get("id")
        if not isinstance(rid, str) or not rid or len(rid) > 512:
            raise InvalidInputError(f"row {i}: 'id' must be a non-empty string of at most 512 characters, got "
                                    f"{rid!r:.80}", index=i)
        if rid in seen:
            raise InvalidInputError(f"row {i}: id {rid!r} appears twice in this batch; ids must be unique "
                                    "(merge the rows or make the ids distinct)", index=i)
        seen.add(rid)
        unknown = set(row) - self._writable
        if unknown:
            raise InvalidInputError(
                f"row {i} (id {rid!r}): unknown field(s) {sorted(unknown)}; known: {sorted(self._writable)} "
                "(put free-form fields into 'metadata', or declare columns at create_collection)", index=i)
        if "vector" not in row or row["vector"] is None:
            raise InvalidInputError(f"row {i} (id {rid!r}) has no 'vector'; embed its content first", index=i)
        vec = _as_vector(row["vector"], self.dimension, f"row {i} (id {rid!r})") if vector else None
        content = row.get("content")
        if content is not None and not isinstance(content, str):
            raise InvalidInputError(f"row {i} (id {rid!r}): 'content' must be a string or None", index=i)
        source = row.get("source")
        if source is not None and not isinstance(source, str):
            source = str(source)
        chunk = row.get("chunk")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int | np.integer)):
            raise InvalidInputError(f"row {i} (id {rid!r}): 'chunk' must be an int or None", index=i)
        meta = row.get("metadata")
        if meta is not None:
            if not isinstance(meta, Mapping):
                raise InvalidInputError(f"row {i} (id {rid!r}): 'metadata' must be a dict or None", index=i)
            try:
                meta = json.dumps(meta, ensure_ascii=False, allow_nan=False, default=str)
            except ValueError as exc:
                raise InvalidInputError(f"row {i} (id {rid!r}): 'metadata' is not JSON-serialisable ({exc})",
                                        index=i) from None
        values: list[Any] = [rid, content, source, None if chunk is None else int(chunk), row.get("content_hash")]
        for c, ctype in self.columns.items():
            v = row.get(c)
            if isinstance(v, np.generic):
                v = v.item()
            v = _scalar_value(v, ctype, f"row {i} (id {rid!r}): column {c!r} ({ctype})", i)
            values.append(v)
        values.append(meta)
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
            if arr is not None and arr.ndim == 2 and arr.shape[1] == self.dimension and np.isfinite(arr).all():
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
        return {"id", "vector", "content", "source", "chunk", "content_hash", "metadata", *self.columns}

    def _insert_sql(self, n: int) -> str:
        cols = ["id", "content", "source", "chunk", "content_hash", *self.columns, "metadata", schema.VECTOR_COLUMN]
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
        prepared = self._prepare(rows)
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
        if ids is None:
            if not wsql:
                raise InvalidInputError("delete(where={}) would delete every row; use drop_collection() for that")
            _, n = self.store.execute(f"DELETE FROM {self._table} WHERE ({wsql})", wparams,
                                      what=f"delete from {self.name!r}", fetch=False)
            return int(n)
        id_list = [ids] if isinstance(ids, str) else list(ids)
        total = 0
        # bounded IN lists (like get()): one statement per DELETE_BATCH ids, each committed on its own
        for start in range(0, len(id_list), DELETE_BATCH):
            part = id_list[start:start + DELETE_BATCH]
            sql = f"DELETE FROM {self._table} WHERE `id` IN ({', '.join(['%s'] * len(part))})"
            if wsql:
                sql += f" AND ({wsql})"
            _, n = self.store.execute(sql, [*part, *wparams], what=f"delete from {self.name!r}", fetch=False)
            total += int(n)
        return total

    # -------------------------------------------------------------------- reading
    def _select_cols(self, include_vectors: bool = False) -> str:
        cols = [*_BASE_SELECT, *self.columns, "created_at", "updated_at"]
        if include_vectors:
            cols.append(schema.VECTOR_COLUMN)
        return ", ".join(schema.quote(c) for c in cols)

    def _row_dict(self, r: Sequence[Any], include_vectors: bool) -> dict[str, Any]:
        names = [*_BASE_SELECT, *self.columns, "created_at", "updated_at"]
        d = dict(zip(names, r[: len(names)], strict=True))
        d["metadata"] = json.loads(d["metadata"]) if d["metadata"] else {}
        if include_vectors:
            d["vector"] = _parse_vector(r[len(names)])
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
            for r in rows:
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
            rows, _ = self.store.execute(f"SELECT `id`, `content_hash` FROM {self._table} WHERE `source` = %s",
                                         (source,), what="read hashes")
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
    def _query_vector(self, query: Any) -> np.ndarray:
        if isinstance(query, str):
            if not query.strip():
                raise InvalidInputError("the search text is empty; pass a non-empty query")
            vec = self.provider.embed_query(query)
            return _as_vector(vec, self.dimension, "query")
        return _as_vector(query, self.dimension, "query vector")

    @property
    def has_index(self) -> bool:
        return bool(self.metadata.get("index_type"))

    def search_sql(self, k: int, *, where: Where = None, exact: bool = False,
                   ef_search: int | None = None) -> tuple[str, list[Any]]:
        """The SELECT a search runs (the query vector is the first parameter); useful with EXPLAIN."""
        wsql, wparams = compile_where(where, self._filter_columns)
        sql = (f"SELECT {self._select_cols()}, {self._fn}({schema.quote(schema.VECTOR_COLUMN)}, %s) AS `_distance` "
               f"FROM {self._table}" + (f" WHERE {wsql}" if wsql else "") + " ORDER BY `_distance`")
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
        n = len(_BASE_SELECT)
        for r in rows:
            d = float(r[-1])
            cols = dict(zip(self.columns, r[n:n + len(self.columns)], strict=True))
            hits.append(Hit(id=r[0], content=r[1], source=r[2], chunk=r[3], distance=d,
                            score=_score(self.distance, d), metadata=json.loads(r[5]) if r[5] else {}, columns=cols))
        return hits

    def search(self, query: Any, k: int = 10, *, where: Where = None, exact: bool = False,
               ef_search: int | None = None) -> list[Hit]:
        """The ``k`` nearest rows to a vector or a text (embedded with the collection's model).

        Approximate (vector index) by default; ``exact=True`` scans. With a filter the index can return fewer
        than ``k`` rows although more match: the store then answers from an exact search of the filtered rows.
        """
        self.store._check_open()
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k={k!r} must be an int between 1 and {MAX_K}")
        if ef_search is not None and (isinstance(ef_search, bool) or not isinstance(ef_search, int)
                                      or not 1 <= ef_search <= MAX_K):
            raise InvalidInputError(f"ef_search={ef_search!r} must be an int between 1 and {MAX_K}")
        qvec = np.ascontiguousarray(self._query_vector(query), dtype="<f4").tobytes()
        approx = not exact and self.has_index
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
        return self._hits(rows)

    def hybrid_search(self, text: str, k: int = 10, *, where: Where = None, candidates: int | None = None,
                      vector: Any = None, weights: tuple[float, float] = (1.0, 1.0)) -> list[Hit]:
        """Full-text (MATCH ... AGAINST) and vector search fused with reciprocal rank fusion (k=60).

        Needs a collection created with ``fulltext=True``. ``candidates`` rows are taken from each side
        (default ``max(4k, 40)``); ``weights`` = (vector, full-text) multiply each side's RRF terms (raise the
        full-text weight for a model that is weak in the corpus language). ``vector`` skips embedding ``text``.
        ``score`` is the fused RRF score; ``distance`` the vector distance when the vector side found the row.
        """
        self.store._check_open()
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("hybrid_search needs a non-empty text")
        if not self.metadata.get("fulltext"):
            raise ConfigError(f"collection {self.name!r} has no FULLTEXT index; create it with fulltext=True to use "
                              "hybrid_search (or use search())")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k={k!r} must be an int between 1 and {MAX_K}")
        n = min(MAX_K, candidates or max(4 * k, 40))
        vec_hits = self.search(text if vector is None else vector, n, where=where)
        wsql, wparams = compile_where(where, self._filter_columns)
        sql = (f"SELECT {self._select_cols()}, MATCH(`content`) AGAINST(%s) AS `_ft` FROM {self._table} "
               f"WHERE MATCH(`content`) AGAINST(%s)" + (f" AND ({wsql})" if wsql else "")
               + f" ORDER BY `_ft` DESC LIMIT {int(n)}")
        rows, _ = self.store.execute(sql, [text, text, *wparams], what=f"full-text search {self.name!r}")
        text_hits = self._hits(rows)
        fused: dict[str, float] = {}
        by_id: dict[str, Hit] = {}
        wv, wt = (float(w) for w in weights)
        for rank, h in enumerate(vec_hits):
            fused[h.id] = fused.get(h.id, 0.0) + wv / (RRF_K + rank + 1)
            by_id[h.id] = h
        for rank, h in enumerate(text_hits):
            fused[h.id] = fused.get(h.id, 0.0) + wt / (RRF_K + rank + 1)
            if h.id not in by_id:
                h.distance = None
                by_id[h.id] = h
        order = sorted(fused, key=lambda i: -fused[i])[:k]
        out = []
        for i in order:
            h = by_id[i]
            h.score = fused[i]
            out.append(h)
        return out

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
        rows, _ = self.store.execute("EXPLAIN " + sql, [probe.tobytes(), *params], what="explain")
        return "\n".join(str(r[0]) for r in rows)


def connect(
    dsn: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    provider_factory: ProviderFactory | None = None,
    database: str | None = None,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT_S,
) -> Store:
    """Open the store: a DSN (argument, else ``OBEMBED_DSN`` unless ``path`` is given) or embedded seekdb in
    ``path`` (default ``settings.db_path``, ``./obembed.db``)."""
    return Store(dsn, path=path, settings=settings, provider_factory=provider_factory, database=database,
                 query_timeout=query_timeout)
