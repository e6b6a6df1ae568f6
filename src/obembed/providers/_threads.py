"""How many threads a local model runs: measured from the CPU's idle time, not from the load average.

An OpenMP/ORT thread pool waits for its slowest thread at the end of every operation, so a thread that shares
its core with another busy process slows the whole pool; on an idle core, though, every extra thread is
~1.6x more speed. The rule (docs/performance.md, "Worker layout"):

1. **Measure**: sample ``/proc/stat`` (per CPU, only the CPUs this process may run on) twice over a short window
   (``MIN_WINDOW``, 0.15 s) at first use, and subtract the CPU time of obembed's *own process tree* (this
   process and its children, e.g. the embedded seekdb engine it started) read from ``/proc/<pid>/stat``. What
   is left is what other processes used, in cores. No load average: it still holds the previous command's
   work for a minute after the machine went idle. The engine's share (our tree minus this process) is kept
   apart: the writes an ingest sends it cost a fraction of a core and do not count, but an engine that itself
   takes ``HELD_AT`` or more (a heavy write load beside the model, a compaction) holds a core like any other
   process: measured, 1 thread then ran 1.87x raw where 2 ran 1.40x (docs/performance.md). It counts once busy
   over two re-checks in a row, measured beside our batches: the first window spans what obembed asked of it
   before the first batch (its start, a collection's DDL), and an ingest's own bursts (a memtable dump) are
   over before a thread less would pay off.
2. **Correct for our own share**: while our threads run, a CPU-bound neighbour gets only its fair share (with 2
   threads of ours on 2 cores, one competing process shows as 0.67 cores). When the measured cores were
   saturated, the neighbours' *demand* is estimated from the split: ``others_used x our_threads / our_used``.
3. **Decide**: a core counts as held when the neighbours' demand (plus a busy engine's) on it reaches ``HELD_AT``
   (0.7 core: below that a second thread still wins on average, measured 1.57x idle vs 0.7-0.9x while a core
   is taken); threads = usable cores - held cores, at least 1, at most ``MAX_AUTO_THREADS``.
4. **Adapt**: between batches the advisor re-measures the interval since its previous decision, at most every
   ``RECHECK_INTERVAL`` seconds (two small file reads: cheap), so a long job follows the machine.

5. **Lend a core to obembed's own one-thread work**: :meth:`ThreadAdvisor.lend_core` runs the model one thread
   fewer (at least one) while obembed itself keeps one engine thread busy beside it (the FULLTEXT build of a new
   collection, which the ingest pipeline starts while the model embeds its last slice). The measurement would
   see that work only after two re-checks, and a model thread sharing a core with it stalls the whole pool.

``threads=N`` (provider option) or ``OBEMBED_THREADS=N`` overrides all of it. The ``/proc`` reads go through a
:class:`Probe`, so tests feed synthetic samples.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

__all__ = [
    "HELD_AT",
    "MAX_AUTO_THREADS",
    "MIN_WINDOW",
    "RECHECK_INTERVAL",
    "Decision",
    "Probe",
    "ProcProbe",
    "Sample",
    "ThreadAdvisor",
    "adopt_process",
    "choose_threads",
    "measure",
    "parse_proc_stat",
    "resolve_threads",
    "threads_from_env",
    "usable_cores",
]

log = logging.getLogger(__name__)

MAX_AUTO_THREADS = 8
"""The automatic choice never goes above this (PyTorch scales poorly beyond a few threads per process)."""
HELD_AT = 0.7
"""Other processes' demand (in cores) from which a core counts as held. Below it a second thread wins on average:
idle, 2 threads are ~1.6x one; with a core fully taken, 2 threads run at 0.7-0.9x one thread (spin-waiting)."""
MIN_WINDOW = 0.15
"""Seconds of /proc/stat sampling before the first decision (the time since the advisor was made counts)."""
MAX_AGE = 10.0
"""A window older than this (an idle server's next request) is not trusted: a fresh ``MIN_WINDOW`` is sampled."""
RECHECK_INTERVAL = 2.0
"""Seconds between re-measurements during a long job (each is two small /proc reads)."""
SATURATED_AT = 0.9
"""Fraction of the usable cores busy from which the neighbours may have been starved (step 2 of the rule)."""


# ---------------------------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Sample:
    """One reading: a monotonic clock, per-CPU (busy, total) jiffies, this process's and its tree's jiffies."""

    clock: float
    cpus: Mapping[int, tuple[int, int]]
    own_process: int
    own_tree: int


class Probe(Protocol):
    """Where the advisor reads the machine from (``ProcProbe`` on Linux; tests script their own)."""

    def sample(self) -> Sample | None: ...

    def usable(self) -> frozenset[int]: ...

    def sleep(self, seconds: float) -> None: ...


def parse_proc_stat(text: str) -> dict[int, tuple[int, int]]:
    """``/proc/stat`` text -> ``{cpu: (busy, total)}`` jiffies (idle and iowait are not busy; steal is)."""
    out: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        try:
            cpu = int(name[3:])
            vals = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal (guest is in user)
        except ValueError:
            continue
        if len(vals) < 4:
            continue
        total = sum(vals)
        out[cpu] = (total - vals[3] - (vals[4] if len(vals) > 4 else 0), total)
    return out


def _stat_jiffies(pid: int | str) -> int | None:
    """utime + stime of one process (its own threads; not its children) in jiffies."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2:].split()
    try:
        return int(rest[11]) + int(rest[12])
    except (IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads'); None-safe: [] where the kernel does not say."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                out.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
    return out


_ADOPTED: set[int] = set()


def adopt_process(pid: int) -> None:
    """Count process ``pid`` and its descendants as obembed's own: a warm seekdb engine this process attached to
    runs under a detached keeper (not our child), yet its work is ours (the store calls this when it attaches)."""
    if pid > 0 and pid != os.getpid():
        _ADOPTED.add(pid)


class ProcProbe:
    """Reads ``/proc/stat`` and this process tree's ``/proc/<pid>/stat`` (Linux), adopted processes included."""

    def __init__(self, root: int | None = None) -> None:
        self.root = root or os.getpid()
        self._has_children_files = os.path.exists(f"/proc/{self.root}/task/{self.root}/children")

    def _roots(self) -> list[int]:
        return [p for p in sorted(_ADOPTED) if os.path.exists(f"/proc/{p}")]

    def _descendants(self) -> list[int]:
        """Every process of our tree but the root: children, grandchildren, adopted processes and theirs."""
        adopted = self._roots()
        if self._has_children_files:
            seen: list[int] = list(adopted)
            todo = [self.root, *adopted]
            while todo:
                p = todo.pop()
                kids = _children(p)
                seen.extend(kids)
                todo.extend(kids)
            return seen
        # no children files (kernel without CONFIG_PROC_CHILDREN): one pass over /proc for the parent links
        parents: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat", encoding="ascii", errors="replace") as f:
                    s = f.read()
                ppid = int(s[s.rfind(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(d))
        out, todo = list(adopted), [self.root, *adopted]
        while todo:
            kids = parents.get(todo.pop(), [])
            out.extend(kids)
            todo.extend(kids)
        return out

    def sample(self) -> Sample | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                cpus = parse_proc_stat(f.read())
        except OSError:
            return None
        own = _stat_jiffies(self.root)
        if not cpus or own is None:
            return None
        tree = own + sum(j for j in map(_stat_jiffies, self._descendants()) if j is not None)
        return Sample(time.monotonic(), cpus, own, tree)

    def usable(self) -> frozenset[int]:
        return affinity()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def affinity() -> frozenset[int]:
    """The CPUs this process may run on (``os.sched_getaffinity``; all of them where that is missing)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return frozenset(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; cgroup quotas are not visible here)."""
    return max(1, len(affinity()))


# ---------------------------------------------------------------------------------------------- the rule
@dataclass(frozen=True)
class Decision:
    """One thread decision and what it was based on (shown by ``obembed models --explain``)."""

    threads: int
    source: str  # "auto", "threads option", "OBEMBED_THREADS", "no /proc (default)"
    cores: int = 0
    others_used: float = 0.0  # cores other processes used over the window
    others_demand: float = 0.0  # ... corrected for our own share when the cores were saturated
    own_used: float = 0.0  # cores our process tree used over the window
    window: float = 0.0  # seconds measured
    saturated: bool = False
    engine_used: float = 0.0  # of own_used: our child/adopted processes (the embedded engine), not this process
    engine_demand: float = 0.0  # ... corrected like others_demand
    engine_sustained: bool = True  # the engine was also busy over the previous re-check (see ThreadAdvisor)
    lent: int = 0  # cores lent to obembed's own one-thread engine work (ThreadAdvisor.lend_core), threads less

    @property
    def engine_counted(self) -> float:
        """The engine's demand where it holds a core of its own (``HELD_AT`` or more), sustained, else 0."""
        return self.engine_demand if self.engine_sustained and self.engine_demand >= HELD_AT else 0.0

    @property
    def demand(self) -> float:
        """What the decision counts against our threads: other processes' demand plus a busy engine's."""
        return self.others_demand + self.engine_counted

    @property
    def held(self) -> int:
        """Cores counted as held by other processes (and by our own engine where it is busy)."""
        return held_cores(self.demand)

    def reason(self) -> str:
        if self.source != "auto":
            return f"{self.threads} thread(s): fixed by {self.source}"
        held = self.held
        why = (f"{self.cores} usable core(s); other processes used {self.others_used:.2f} core(s) over the last "
               f"{self.window:.2f} s (obembed's own processes, {self.own_used:.2f} core(s), apart)")
        if self.saturated:
            why += f"; the cores were saturated, so their demand is estimated at {self.others_demand:.2f}"
        if self.engine_counted:
            why += (f"; obembed's engine is busy on its own ({self.engine_demand:.2f} core(s) >= {HELD_AT}), "
                    "so it counts like another process")
        elif self.engine_demand >= HELD_AT:
            why += (f"; obembed's engine used {self.engine_demand:.2f} core(s), not counted: before the first batch "
                    "(its start, DDL) or a burst (a dump); it counts once busy over two re-checks in a row")
        if self.lent:
            why += (f"; {self.lent} core(s) lent to obembed's own engine work beside the model (a new collection's "
                    "FULLTEXT build)")
        return f"{self.threads} thread(s): {why}; {held} core(s) held (demand >= {HELD_AT} core each)"


def held_cores(others: float) -> int:
    """Cores counted as held when other processes' demand is ``others`` cores (each from ``HELD_AT``)."""
    return int(max(0.0, others) + (1.0 - HELD_AT) + 1e-9)


def choose_threads(*, others: float, cores: int) -> int:
    """One thread per core not held by other processes: ``others`` is their demand in cores."""
    held = held_cores(others)
    return max(1, min(cores - held, cores, MAX_AUTO_THREADS))


def measure(a: Sample, b: Sample, cpus: frozenset[int], running: int, *, engine_sustained: bool = True) -> Decision:
    """The decision for the interval ``a -> b`` on ``cpus`` while this process ran ``running`` threads;
    ``engine_sustained=False``: the engine's share of the window is not counted (see ``ThreadAdvisor.decide``)."""
    mine = [c for c in cpus if c in a.cpus and c in b.cpus] or [c for c in b.cpus if c in a.cpus]
    cores = max(1, len(mine))
    busy = sum(b.cpus[c][0] - a.cpus[c][0] for c in mine)
    total = sum(b.cpus[c][1] - a.cpus[c][1] for c in mine)
    span = total / cores  # jiffies per CPU in the window: the wall time as /proc/stat counts it
    if span <= 0:
        return Decision(choose_threads(others=0.0, cores=cores), "auto", cores)
    own_tree = max(0, b.own_tree - a.own_tree)
    own_proc = max(0, b.own_process - a.own_process)
    others = max(0.0, (busy - own_tree) / span)
    own_cores = own_tree / span
    engine = max(0.0, (own_tree - own_proc) / span)
    saturated = busy >= SATURATED_AT * total and own_proc / span >= 0.1

    def corrected(used: float) -> float:
        # every runnable thread got about the same share s: ours own_proc = running*s, theirs used = k*s
        if saturated and used > 0:
            return min(float(cores), used * max(1, running) / (own_proc / span))
        return used

    d = Decision(0, "auto", cores, round(others, 3), round(corrected(others), 3), round(own_cores, 3),
                 round(b.clock - a.clock, 3), saturated, round(engine, 3), round(corrected(engine), 3),
                 engine_sustained)
    return replace(d, threads=choose_threads(others=d.demand, cores=cores))


@dataclass
class ThreadAdvisor:
    """Threads for the next batch: fixed, or the measured rule above. Thread-safe; cheap between re-checks."""

    fixed: int | None = None
    source: str = "auto"
    probe: Probe | None = None
    min_window: float = MIN_WINDOW
    recheck: float = RECHECK_INTERVAL
    last: Decision | None = None
    _snap: Sample | None = field(default=None, repr=False)
    _engine_busy: bool = field(default=False, repr=False)  # the engine held HELD_AT over the last re-check
    _lent: int = field(default=0, repr=False)  # open lend_core() contexts
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.fixed:
            self.last = Decision(self.fixed, self.source)
            return
        if self.probe is None:
            self.probe = ProcProbe()
        self._snap = self.probe.sample()  # the window starts now: model loading overlaps it

    def threads(self) -> int:
        return self.decide().threads

    @contextmanager
    def lend_core(self) -> Iterator[None]:
        """While open, the automatic rule runs one thread fewer (at least one; contexts add up): obembed keeps
        one engine thread busy beside the model. A fixed count (``threads=``, ``OBEMBED_THREADS``) is kept."""
        with self._lock:
            self._lent += 1
        log.debug("threads per process: a core lent to obembed's own engine work (%d lent)", self._lent)
        try:
            yield
        finally:
            with self._lock:
                self._lent -= 1

    def decide(self) -> Decision:
        d = self._decide()
        lent = self._lent
        if not lent or self.fixed or d.threads <= 1:
            return d
        return replace(d, threads=max(1, d.threads - lent), lent=min(lent, d.threads - 1))

    def _decide(self) -> Decision:
        if self.fixed:
            assert self.last is not None
            return self.last
        assert self.probe is not None
        with self._lock:
            now = self.probe.sample()
            if self.last is not None and (now is None or self._snap is None
                                          or now.clock - self._snap.clock < self.recheck):
                return self.last
            if now is None or self._snap is None:  # no /proc: all usable cores (capped)
                cores = max(1, len(self.probe.usable()))
                self.last = Decision(choose_threads(others=0.0, cores=cores), "no /proc (default)", cores)
                return self.last
            running = max(1, self.last.threads - self._lent) if self.last is not None else 1
            first = self.last is None
            if now.clock - self._snap.clock > MAX_AGE:  # a stale window (idle since): measure afresh
                self._snap, running, first, self._engine_busy = now, 1, True, False
            if now.clock - self._snap.clock < self.min_window:
                self.probe.sleep(self.min_window - (now.clock - self._snap.clock))
                now = self.probe.sample() or now
            # the engine counts only when busy over two re-checks in a row, both measured beside our batches: the
            # first window spans what obembed asked of it before the first batch (its start, 3-6 s of work; a
            # collection's DDL), and an ingest's own writes bring bursts (a memtable dump) that are over before
            # a thread less would pay off (measured: reacting to them cost `obembed ingest` 7%). Other
            # processes count at once.
            d = measure(self._snap, now, self.probe.usable(), running, engine_sustained=self._engine_busy)
            self._engine_busy = not first and d.engine_demand >= HELD_AT
            if self.last is None or d.threads != self.last.threads:
                log.debug("threads per process: %s", d.reason())
            self._snap, self.last = now, d
            return d


def threads_from_env() -> int | None:
    """``OBEMBED_THREADS`` (read through :class:`~obembed.settings.Settings`, now) as a positive int, else None
    (``auto``/unset); a value that is not a positive integer or ``auto`` is a ``ConfigError`` naming it."""
    from ..settings import Settings

    return Settings().threads_fixed


def resolve_threads(option: int | str | None, *, probe: Probe | None = None) -> ThreadAdvisor:
    """A provider's ``threads=`` option (int, ``"auto"`` or None) plus ``OBEMBED_THREADS`` -> an advisor."""
    if option is None or (isinstance(option, str) and option.strip().lower() == "auto"):
        env = threads_from_env()
        if env is not None:
            return ThreadAdvisor(fixed=env, source="OBEMBED_THREADS")
        return ThreadAdvisor(probe=probe)
    try:
        n = int(option)
    except (TypeError, ValueError):
        from ..errors import ConfigError

        raise ConfigError(f"threads={option!r} is not a number; use a positive integer or 'auto'") from None
    if n < 1:
        from ..errors import ConfigError

        raise ConfigError(f"threads={n} must be at least 1 (or 'auto')")
    return ThreadAdvisor(fixed=n, source="threads option")
