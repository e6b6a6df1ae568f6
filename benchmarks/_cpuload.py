"""CPU accounting shared by the benchmarks: the machine is shared, so every figure is printed beside the CPU
time *other* processes used meanwhile (/proc/stat's busy time minus this process tree's, children such as the
embedded seekdb engine or a benchmarked server included)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

__all__ = ["Load", "busy_seconds", "quiet_engine", "settle", "tree_seconds"]

TICK = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores, idle and iowait excluded)."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return (sum(vals[:8]) - idle) / TICK


def tree_seconds(root: int) -> float:
    """CPU seconds (user + system) of process ``root`` and all its live descendants."""
    procs: dict[int, tuple[int, float]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        procs[int(d)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK)
    total, todo, seen = 0.0, [root], set()
    while todo:
        p = todo.pop()
        if p in seen or p not in procs:
            continue
        seen.add(p)
        total += procs[p][1]
        todo.extend(c for c, (pp, _) in procs.items() if pp == p)
    return total


class Load:
    """``with Load() as l:`` -> ``l.wall`` s, ``l.ours`` / ``l.others`` CPU-s, ``l.others_cores`` during the block."""

    def __enter__(self) -> Load:
        self.t0, self.b0, self.o0 = time.perf_counter(), busy_seconds(), tree_seconds(os.getpid())
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.ours = tree_seconds(os.getpid()) - self.o0
        self.others = max(0.0, busy_seconds() - self.b0 - self.ours)

    @property
    def others_cores(self) -> float:
        return self.others / max(self.wall, 1e-9)

    def describe(self) -> str:
        return (f"wall {self.wall:.2f} s, ours {self.ours:.2f} CPU-s, others {self.others:.2f} CPU-s "
                f"({self.others_cores:.2f} cores busy elsewhere)")


def settle(quiet_cores: float = 0.15, window_s: float = 1.0, max_s: float = 60.0) -> float:
    """Wait until the machine is quiet: less than ``quiet_cores`` busy over a ``window_s`` window (at most
    ``max_s``). A database engine goes on working after a write or a drop (merges, purges of dropped tables):
    a write measured right after another one pays for it at random. Returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_s:
        b0 = busy_seconds()
        time.sleep(window_s)
        if (busy_seconds() - b0) / window_s < quiet_cores:
            break
    return time.perf_counter() - t0


def cpu_line() -> str:
    """The CPU model, logical CPUs and SIMD flags (avx*, amx*, *vnni*): printed beside every figure."""
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("?", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = sorted(f for f in flags if f.startswith(("avx", "amx")) or "vnni" in f)
    return f"{model}; {os.cpu_count()} logical CPUs; {' '.join(simd) or 'no avx'}"


def quiet_engine(store: Any) -> None:
    """Start a write measurement from the same engine state: the memtable frozen and dumped (``ALTER SYSTEM MINOR
    FREEZE``), then the machine quiet. Without it every second 2,000-row write pays for dumping the one before it
    (measured: the writes alternate ~3.6 s and ~8 s, whichever path they belong to)."""
    try:
        store.execute("ALTER SYSTEM MINOR FREEZE", (), what="freeze the memtable", fetch=False)
    except Exception as exc:  # OceanBase without the privilege: the machine-quiet wait still applies
        print(f"(minor freeze refused: {exc})", flush=True)
    time.sleep(1.0)
    settle(quiet_cores=0.3)
