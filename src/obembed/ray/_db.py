"""The database side shared by :mod:`obembed.ray.sink` and :mod:`obembed.ray.ingest`: one DSN rule, one
connect shape, one retry rule, one per-process cache of open collections for the write tasks.

* :func:`dsn_or_settings`: the DSN given, else ``OBEMBED_DSN``, else a :class:`ConfigError` saying how to get one.
* :func:`connected`: a store for a driver-side step (opened, closed after it).
* :func:`retrying`: a step retried with exponential backoff while the database is lost or restarting.
* :func:`worker_collection`: the collection a write task writes into, built from the metadata the driver read,
  on one connection per (worker process, DSN, database): a task costs no connect and no metadata query.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import ConfigError, StoreConnectionError, StoreError

__all__ = ["DEFAULT_RETRY_S", "MAX_BACKOFF_S", "connected", "drop_worker_store", "dsn_or_settings", "need_dsn_message",
           "retrying", "transient", "worker_collection"]

log = logging.getLogger("obembed.ray")

T = TypeVar("T")

DEFAULT_RETRY_S = 180.0
"""How long one step keeps retrying a lost database (a seekdb server restarts in ~25 s)."""
MAX_BACKOFF_S = 8.0

# write tasks reuse Ray's worker processes: one open store per (DSN, database) in each, and the collections
# built on it from the driver's metadata (keyed by name and the metadata's identity)
_STORES: dict[tuple[str, str | None], Any] = {}
_COLLECTIONS: dict[tuple[str, str | None, str], tuple[int, dict[str, Any], Any]] = {}
_LOCK = threading.Lock()


def need_dsn_message() -> str:
    """Why --engine ray needs a database server, and how to start one on this machine."""
    import os

    try:
        import pylibseekdb

        binary = os.path.join(os.path.dirname(pylibseekdb.__file__), "seekdb")
    except ImportError:  # pragma: no cover - a hard dependency
        binary = "<site-packages>/pylibseekdb/seekdb"
    return (
        "the Ray engine needs a seekdb server or OceanBase (a DSN): its workers write from many processes and "
        "machines, and an embedded seekdb folder belongs to one process. Pass --dsn mysql://user:pass@host:2881/db "
        "(or set OBEMBED_DSN). On one machine, start the seekdb server that ships in the pylibseekdb wheel: "
        f"{binary} --base-dir=/path/to/seekdb-data --nodaemon --port 2881 & "
        "then use --dsn mysql://root@127.0.0.1:2881/obembed (see docs/scale-out.md)"
    )


def dsn_or_settings(dsn: str | None) -> str:
    """``dsn``, else the configured ``OBEMBED_DSN``; neither: a :class:`ConfigError` that says how to get one."""
    if dsn is None:
        from ..settings import get_settings

        secret = get_settings().dsn
        dsn = secret.get_secret_value() if secret is not None else None
    if not dsn:
        raise ConfigError(need_dsn_message())
    return dsn


@contextmanager
def connected(dsn: str, database: str | None) -> Iterator[Any]:
    """An open store for one driver-side step, closed after it."""
    import obembed

    store = obembed.connect(dsn, database=database)
    try:
        yield store
    finally:
        store.close()


def transient(exc: BaseException) -> bool:
    """A lost or restarting database: worth retrying (never bad input, never a refused statement)."""
    if isinstance(exc, StoreConnectionError):
        return True
    if not isinstance(exc, StoreError):
        return False
    import pymysql

    cause = exc.__cause__
    if isinstance(cause, pymysql.err.OperationalError | pymysql.err.InterfaceError):
        return True
    # the engine up but not serving yet after a restart (e.g. 4012 timeout, 4038/-4038 not master)
    code = cause.args[0] if isinstance(cause, pymysql.err.Error) and cause.args else None
    return code in (4012, 4038, -4038, 4009, 5627)


def retrying(fn: Callable[[], T], retry_s: float, on_retry: Callable[[], None] | None = None) -> T:
    """``fn()`` until it succeeds; a transient database error (:func:`transient`) is retried with exponential
    backoff (0.5 s doubling to 8 s) for up to ``retry_s`` seconds; anything else is raised at once.
    ``on_retry`` is called before each retry (to count them)."""
    deadline = time.monotonic() + retry_s
    delay = 0.5
    while True:
        try:
            return fn()
        except Exception as exc:
            if not transient(exc) or time.monotonic() + delay > deadline:
                raise
            if on_retry is not None:
                on_retry()
            log.warning("obembed ray: database unavailable (%s); retrying in %.1f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)


def worker_collection(dsn: str, database: str | None, meta: Mapping[str, Any]) -> Any:
    """The :class:`~obembed.store.Collection` described by ``meta`` (read by the driver) on this process's
    connection to ``dsn``: connected once per process, no metadata query per task."""
    from ..store.collection import Collection

    key = (dsn, database, str(meta["name"]))
    with _LOCK:
        store = _STORES.get((dsn, database))
        if store is None:
            import obembed

            store = obembed.connect(dsn, database=database)
            _STORES[(dsn, database)] = store
        cached = _COLLECTIONS.get(key)
        if cached is not None and cached[0] == id(store) and cached[1] == meta:
            return cached[2]
        coll = Collection(store, dict(meta))
        _COLLECTIONS[key] = (id(store), dict(meta), coll)
        return coll


def drop_worker_store(dsn: str, database: str | None) -> None:
    """Forget this process's connection to ``dsn`` (after a lost link: the next task connects again)."""
    with _LOCK:
        store = _STORES.pop((dsn, database), None)
        for key in [k for k in _COLLECTIONS if k[:2] == (dsn, database)]:
            del _COLLECTIONS[key]
    if store is not None:
        try:
            store.close()
        except Exception:  # a broken link: nothing to save
            pass
