"""The five machine states of issue 19, shared by benchmarks/encode.py and benchmarks/ingest.py.

    a  idle: nothing started by the benchmark (other engineers' jobs may still run: their CPU is recorded)
    b  after-heavy: one busy process per core ran for ``heavy_seconds`` and ended just before the measured path
       starts (within 10 s): the 1-minute load average still says "busy", the CPU is idle
    c  engine-writing: obembed's own embedded seekdb engine (a child process of this one) is writing: a thread
       upserts ingest-like rows (384-d vectors + text, 200 per statement) into a fresh collection meanwhile
    d  competitor-per-core: one real CPU-bound process per usable core (not our children: started detached)
    e  one-competitor: one CPU-bound process pinned to one of our cores (``os.sched_setaffinity``, as
       ``taskset -c`` does). On an N-core machine that leaves N-1 free cores; this 2-core box can't have
       more cores than two, so here it is "1 of 2 cores taken". On a bigger machine, ``--cores 0-3``
       restricts the whole benchmark (and its baseline) to those CPUs, which emulates a 4-core machine.

Competitors are started through ``sh -c '... &'`` so they are *not* in this process tree (the thread rule,
rightly, does not count its own children), and stopped by their pid.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATES = ("a", "b", "c", "d", "e")
LABELS = {
    "a": "(a) idle",
    "b": "(b) <10 s after a heavy command",
    "c": "(c) own engine writing",
    "d": "(d) 1 competitor per core",
    "e": "(e) 1 competitor pinned to 1 core",
}


def parse_cores(spec: str | None) -> set[int] | None:
    """``0-3,6`` -> {0, 1, 2, 3, 6}."""
    if not spec:
        return None
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def start_burner(cpu: int | None = None) -> int:
    """A detached CPU-bound Python process (optionally pinned to ``cpu``); returns its pid."""
    pin = f"import os; os.sched_setaffinity(0, {{{cpu}}}); " if cpu is not None else ""
    code = f"{pin}any(iter(int, 1))"  # an endless loop that allocates nothing
    sh = f"'{sys.executable}' -c '{code}' </dev/null >/dev/null 2>&1 & echo $!"
    out = subprocess.run(["sh", "-c", sh], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def stop(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    pids.clear()


class EngineWriter:
    """A thread writing ingest-like rows into obembed's embedded seekdb (the engine is our child process)."""

    def __init__(self) -> None:
        import numpy as np

        import obembed

        self.tmp = tempfile.TemporaryDirectory(prefix="obembed-bench-writer-")
        self.store = obembed.connect(path=Path(self.tmp.name) / "db")
        self.coll = self.store.create_collection(f"w{os.getpid()}", 384, fulltext=True)
        self.np = np
        self.rows = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        rng = self.np.random.default_rng(0)
        words = "package library tool data file system network python debian utility".split()
        while not self._stop.is_set():
            vecs = rng.standard_normal((200, 384)).astype("float32")
            vecs /= self.np.linalg.norm(vecs, axis=1, keepdims=True)
            rows = [{"id": f"r{self.rows + i}", "vector": v,
                     "content": " ".join(random.choices(words, k=40))} for i, v in enumerate(vecs)]
            self.coll.upsert(rows)
            self.rows += len(rows)

    def __enter__(self) -> EngineWriter:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-engine-writer", daemon=True)
        self._thread.start()
        time.sleep(1.0)  # the engine is busy before the measurement starts
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.store.close()
        self.tmp.cleanup()


class States:
    """``with states.enter(s) as info:`` puts the machine in state ``s`` for the block; ``info`` says how."""

    def __init__(self, *, heavy_seconds: float = 15.0, cores: set[int] | None = None) -> None:
        # a SIGTERM (timeout, kill) unwinds like Ctrl-C, so the competitors this benchmark started are stopped
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
        if cores:
            os.sched_setaffinity(0, cores)
        self.cores = sorted(os.sched_getaffinity(0))
        self.heavy_seconds = heavy_seconds
        self._writer: EngineWriter | None = None

    @contextlib.contextmanager
    def enter(self, state: str) -> Iterator[dict[str, Any]]:
        info: dict[str, Any] = {"state": state}
        pids: list[int] = []
        try:
            if state == "b":
                pids.extend(start_burner(c) for c in self.cores)
                time.sleep(self.heavy_seconds)
                stop(pids)
                ended = time.monotonic()
                time.sleep(0.5)  # the burners are gone
                info["load1"] = round(os.getloadavg()[0], 2)
                info["ended_s_ago"] = round(time.monotonic() - ended, 1)
                yield info
            elif state == "c":
                if self._writer is None:
                    self._writer = EngineWriter()
                with self._writer as w:
                    r0 = w.rows
                    t0 = time.monotonic()
                    yield info
                    info["rows_per_s"] = round((w.rows - r0) / (time.monotonic() - t0))
            elif state in ("d", "e"):
                if state == "d":
                    pids.extend(start_burner() for _ in self.cores)
                else:
                    pids.append(start_burner(self.cores[-1]))
                time.sleep(1.0)  # the competitors are running
                info["competitors"] = len(pids)
                yield info
            else:
                yield info
        finally:
            stop(pids)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
