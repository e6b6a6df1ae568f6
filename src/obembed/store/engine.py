"""The embedded seekdb engine: ``pylibseekdb.open(folder)`` starts it as a child process listening on a unix
socket; the store then talks to it with PyMySQL exactly as to a server."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependencyError, StoreConnectionError

__all__ = ["STATE_FILE", "EmbeddedEngine", "engine_status", "keep_warm", "start_warm", "stop_warm"]

STATE_FILE = "obembed-engine.json"
"""In the store folder while a warm engine keeper runs: its pid, idle limit and start time (mtime: last use)."""

log = logging.getLogger(__name__)


class EmbeddedEngine:
    """One embedded seekdb runtime opened by this process (``pylibseekdb.open``)."""

    def __init__(self, path: Path, *, keep_warm_s: float = 0.0) -> None:
        try:
            import pylibseekdb
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise MissingDependencyError("pylibseekdb", "all", "the embedded seekdb store") from exc
        if path.exists() and not path.is_dir():
            raise ConfigError(f"store path {str(path)!r} is a file, not a folder: the embedded store keeps its data in "
                              "a folder. Pass a folder path (a new name), or a DSN such as mysql://user:pass@host:2881/db")
        path.parent.mkdir(parents=True, exist_ok=True)
        _reap_engine_zombies()  # engines this process closed earlier
        if keep_warm_s > 0:
            start_warm(path, keep_warm_s)  # a keeper holds the engine; the open below attaches to it (~50 ms)
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
        _touch(path)
        warm = engine_status(path)
        if warm is not None:  # attached to a warm engine: its CPU is ours, not another process's (thread rule)
            from ..providers._threads import adopt_process

            adopt_process(int(str(warm["pid"])))

    def connect_args(self) -> dict[str, Any]:
        return dict(self.instance.connection_options())

    def close(self) -> None:
        try:
            self.instance.close()
        except Exception as exc:  # pragma: no cover - best effort
            log.warning("closing the embedded seekdb in %s failed: %s", self.path, exc)
        _reap_engine_zombies()
        _touch(self.path)  # a warm engine's idle time counts from the end of the last command


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


# ------------------------------------------------------------------------------------ warm engine
# pylibseekdb.open() on a folder whose engine is running attaches to it (~50 ms) instead of starting one (~2 s
# on a quiet machine). A keeper process (``python -m obembed.store.engine FOLDER IDLE_S``) holds the engine open
# until nothing used the folder for IDLE_S seconds, then closes it. Killing it loses nothing committed: every
# commit is in the engine's log on disk before it returns (tests/store/test_store_processes.py kills writers).


def _state_path(folder: Path) -> Path:
    return folder / STATE_FILE


def _touch(folder: Path) -> None:
    state = _state_path(folder)
    with contextlib.suppress(OSError):
        if state.exists():
            os.utime(state)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return b"obembed.store.engine" in cmd


def engine_status(folder: Path) -> dict[str, object] | None:
    """The warm engine keeper of ``folder``: pid, idle limit, seconds since the last use and left before it stops;
    ``None`` when none runs."""
    state = _state_path(folder)
    try:
        info = json.loads(state.read_text())
        last = state.stat().st_mtime
    except (OSError, ValueError):
        return None
    pid = int(info.get("pid", 0))
    if not pid or not _alive(pid):
        return None
    idle = max(0.0, time.time() - last)
    return {"folder": str(folder), "pid": pid, "idle_limit_s": float(info["idle_s"]), "idle_s": round(idle, 1),
            "stops_in_s": round(max(0.0, float(info["idle_s"]) - idle), 1), "started": info.get("started")}


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "obembed-engine.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def start_warm(folder: Path, idle_s: float, *, timeout: float = 180.0) -> dict[str, object]:
    """Make sure a keeper holds ``folder``'s engine (start one, detached, if none runs); returns its status."""
    if idle_s <= 0:
        raise ConfigError(f"idle time {idle_s} s: give a positive number of seconds to keep the engine warm")
    with _folder_lock(folder):
        status = engine_status(folder)
        if status is not None:
            _touch(folder)
            return status
        log_path = folder / "obembed-engine.log"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "obembed.store.engine", str(folder), str(float(idle_s))],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True, close_fds=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = engine_status(folder)
            if status is not None and status["pid"] == proc.pid:
                return status
            if proc.poll() is not None:
                raise StoreConnectionError(
                    f"the warm engine for {str(folder)!r} exited ({proc.returncode}); see {str(log_path)!r}")
            time.sleep(0.02)
        proc.terminate()
        raise StoreConnectionError(f"the warm engine for {str(folder)!r} did not start in {timeout:.0f} s")


def stop_warm(folder: Path, *, timeout: float = 60.0) -> bool:
    """Stop ``folder``'s keeper (SIGTERM: it closes the engine cleanly); False when none ran."""
    status = engine_status(folder)
    if status is None:
        return False
    pid = int(str(status["pid"]))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def keep_warm(folder: Path, idle_s: float) -> None:
    """The keeper's body: hold the engine open until ``idle_s`` seconds pass without a use, or SIGTERM."""
    import pylibseekdb

    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    instance = pylibseekdb.open(str(folder))
    state = _state_path(folder)
    state.write_text(json.dumps({"pid": os.getpid(), "idle_s": idle_s,
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
    try:
        while not stop:
            try:
                if time.time() - state.stat().st_mtime > idle_s:
                    break
            except OSError:  # the state file was removed: stop
                break
            time.sleep(0.5)
    finally:
        with contextlib.suppress(OSError):
            if json.loads(state.read_text()).get("pid") == os.getpid():
                state.unlink()
        instance.close()
        _reap_engine_zombies()


if __name__ == "__main__":  # the keeper process
    keep_warm(Path(sys.argv[1]), float(sys.argv[2]))
