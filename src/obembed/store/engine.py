"""The embedded seekdb engine: ``pylibseekdb.open(folder)`` starts it as a child process listening on a unix
socket; the store then talks to it with PyMySQL exactly as to a server."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependencyError, StoreConnectionError

__all__ = ["EmbeddedEngine"]

log = logging.getLogger(__name__)


class EmbeddedEngine:
    """One embedded seekdb runtime opened by this process (``pylibseekdb.open``)."""

    def __init__(self, path: Path) -> None:
        try:
            import pylibseekdb
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise MissingDependencyError("pylibseekdb", "all", "the embedded seekdb store") from exc
        if path.exists() and not path.is_dir():
            raise ConfigError(f"store path {str(path)!r} is a file, not a folder: the embedded store keeps its data in "
                              "a folder. Pass a folder path (a new name), or a DSN such as mysql://user:pass@host:2881/db")
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
