"""One PyMySQL connection to the engine: a lock for threads, one reconnect on a lost link, and the mapping of
driver errors to the obembed error tree (in one place)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import CollectionNotFoundError, StoreConnectionError, StoreError, redact
from . import schema

if TYPE_CHECKING:
    from pymysql.connections import Connection

__all__ = ["Session", "map_error"]

log = logging.getLogger(__name__)

_CONN_LOST = {2006, 2013, 2055}
_LOCK_WAIT = {1205, 6003, 6004, 6005}
"""Lock wait timeout / lock conflict / transaction conflict codes of MySQL and OceanBase."""


def map_error(exc: BaseException, what: str) -> StoreError:
    """Translate a PyMySQL error into the obembed tree (one place)."""
    import pymysql

    code = exc.args[0] if exc.args else None
    msg = str(exc.args[1]) if isinstance(exc, pymysql.err.Error) and len(exc.args) > 1 else str(exc)
    msg = redact(msg)
    if isinstance(exc, pymysql.err.OperationalError) and code in _CONN_LOST:
        return StoreConnectionError(f"{what}: lost the connection to the database ({code}: {msg}); reconnect "
                                    "(the store retries once) or check the server is running")
    if code in _LOCK_WAIT:
        return StoreError(
            f"{what}: another session holds a lock on these rows or this table ({code}: {msg}). Wait for the other "
            "writer (an ingest, a drop) to finish and retry; a lock left by a killed process is released when the "
            "engine rolls its transaction back (within ob_trx_timeout). See docs/reliability.md")
    if code == 4012:
        return StoreError(
            f"{what}: the engine timed out ({code}: {msg}). A large write: raise query_timeout= in connect() or "
            "use smaller batches. A small statement or a DROP: it is most likely waiting for a lock held by another "
            "writer or a killed process; retry when that ends (see docs/reliability.md)")
    if code == 1146:
        return CollectionNotFoundError(
            f"{what}: a table it needs does not exist ({code}: {msg}). If it is a collection's, the collection was "
            "dropped after it was opened (by another process or command, or by a killed one whose DROP the engine "
            "finished): open it again with store.collection(name), or create it")
    return StoreError(f"{what}: the engine refused it ({code}: {msg})")


class Session:
    """One PyMySQL connection with a lock (thread-safe use), one reconnect on a lost link, error mapping."""

    def __init__(self, connect_args: dict[str, Any], database: str, query_timeout: float, label: str,
                 create_database: bool = True) -> None:
        self.connect_args = connect_args
        self.database = database
        self.query_timeout = query_timeout
        self.label = label
        self.create_database = create_database
        self.lock = threading.RLock()
        self.conn: Connection[Any] | None = None
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
            # CREATE only when missing: on an existing database the DDL still waits on the engine's DDL path
            # (measured 34 s on a loaded box attached to a warm engine, where the lookup takes 0.03 s)
            if self.create_database and not cur.execute(
                    "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (self.database,)):
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
                    with self._live.cursor() as cur:
                        n = cur.execute(sql, params)
                        rows = list(cur.fetchall()) if fetch else []
                        return rows, n
                except pymysql.err.OperationalError as exc:
                    if attempt == 0 and exc.args and exc.args[0] in _CONN_LOST:
                        log.warning("%s: connection lost (%s), reconnecting once", self.label, exc.args[0])
                        self._reconnect()
                        if retry:
                            continue
                    raise map_error(exc, what) from exc
                except pymysql.err.Error as exc:
                    raise map_error(exc, what) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    def transaction(self, statements: Iterable[tuple[str, Sequence[Any]]], *, what: str) -> None:
        """Run statements in one transaction: all committed, or none (rolled back) and an error raised."""
        import pymysql

        with self.lock:
            try:
                self._live.begin()
                with self._live.cursor() as cur:
                    for sql, params in statements:
                        cur.execute(sql, params)
                self._live.commit()
            except pymysql.err.Error as exc:
                try:
                    self._live.rollback()
                except pymysql.err.Error:
                    pass
                raise map_error(exc, what) from exc
            except BaseException:
                try:
                    self._live.rollback()
                except pymysql.err.Error:
                    pass
                raise

    @property
    def _live(self) -> Connection[Any]:
        if self.conn is None:
            raise StoreError(f"{self.label}: the connection is closed; open the store again")
        return self.conn

    def _reconnect(self) -> None:
        try:
            if self.conn is not None:
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
