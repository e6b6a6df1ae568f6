"""Token-sorted batching and the worker layout (threads per process) for local models.

Padding is most of the gap between what a CPU could do and what a naive encoder does: a batch costs
``items x longest`` token slots, so short texts batched with long ones pay for the long one's length.
The helpers here sort the *whole input* by true token length (the tokenizer's own count, which the
provider needs anyway for truncation accounting), cut batches by a padded-token budget, and put the
results back in input order.

Threads: an OpenMP/ORT thread pool spin-waits on its slowest thread, so a thread that shares its core
with another busy process slows every batch. :func:`choose_threads` looks at the cores this process may
use (``os.sched_getaffinity``) and at how busy they are, and picks one thread per *free* core.
``threads=N`` (provider option) or ``OBEMBED_THREADS=N`` overrides it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_TOKEN_BUDGET",
    "ONNX_TOKEN_BUDGET",
    "ThreadAdvisor",
    "choose_threads",
    "padded_tokens",
    "plan_batches",
    "run_sorted",
]

log = logging.getLogger(__name__)

DEFAULT_TOKEN_BUDGET = 2048
"""Padded token slots per batch (items x longest): 8 texts of 256 tokens, 32 of 64. Measured on this project's
2-core box (idle, MiniLM, 400 Debian texts, median of 3): st: 76 texts/s at 2048 vs 55 at 8192; smaller batches
stay in cache (benchmarks/RESULTS.md, "token budget")."""
ONNX_TOKEN_BUDGET = 1024
"""The onnx: runtime's default: 87 texts/s at 1024 vs 78 at 2048 and 60 at 8192 (same measurement)."""
DEFAULT_MAX_ITEMS = 256
"""Upper bound on items per batch, whatever their length."""
MAX_AUTO_THREADS = 8
"""The automatic choice never goes above this (PyTorch scales poorly beyond a few threads per process)."""


def plan_batches(
    lengths: Sequence[int],
    *,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into batches, longest first, each within the padded-token budget.

    Every index appears exactly once. Items are sorted by length (descending, stable), so a batch's
    padded size is ``len(batch) * lengths[batch[0]]``; a batch is closed before it would exceed
    ``token_budget`` or ``max_items`` (a single item longer than the budget forms its own batch).
    Longest first puts the memory peak at the start, where a failure costs least.
    """
    budget = max(1, int(token_budget))
    max_items = max(1, int(max_items))
    order = sorted(range(len(lengths)), key=lambda i: -int(lengths[i]))
    batches: list[list[int]] = []
    start = 0
    while start < len(order):
        longest = max(1, int(lengths[order[start]]))
        size = max(1, min(budget // longest, max_items))
        batches.append(order[start : start + size])
        start += size
    return batches


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Token slots the batches really compute (items x longest, summed): the work after padding."""
    return sum(len(b) * max(int(lengths[i]) for i in b) for b in batches if b)


def run_sorted(
    lengths: Sequence[int],
    embed: Callable[[list[int]], np.ndarray],
    *,
    dimension: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> np.ndarray:
    """Embed every item through ``embed(indices) -> (len(indices), d)`` in token-sorted batches.

    Returns a float32 ``(n, d)`` array in input order (row ``i`` is item ``i``).
    """
    n = len(lengths)
    if n == 0:
        return np.zeros((0, dimension or 0), dtype=np.float32)
    out: np.ndarray | None = None
    for idx in plan_batches(lengths, token_budget=token_budget, max_items=max_items):
        vecs = np.asarray(embed(idx), dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(idx):
            raise ValueError(f"batch of {len(idx)} items gave an array of shape {vecs.shape}")
        if out is None:
            out = np.empty((n, vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
    assert out is not None
    return out


# ---------------------------------------------------------------------------------------------- threads
def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; cgroup quotas are not visible here)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _read_proc_stat() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    vals = [float(x) for x in fields[:8]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)  # idle + iowait
    total = sum(vals)
    return total - idle, total


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _jiffy() -> float:
    try:
        return 1.0 / os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return 0.01


def others_load_now() -> float:
    """Busy cores used by other processes, estimated by the 1-minute load average.

    Used for the first decision, before there is a /proc/stat interval to measure; it may include this
    process's own recent work (model loading), which errs towards fewer threads.
    """
    try:
        load1 = os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0
    return max(0.0, load1)


@dataclass
class ThreadAdvisor:
    """Picks threads per process from free cores; re-measures other processes' load between jobs.

    The first call uses the load average; later calls use the /proc/stat busy time of the interval
    since the previous call *minus this process's own CPU time*, i.e. what other processes used.
    """

    fixed: int | None = None
    min_interval: float = 2.0
    _snap: tuple[float, float, float, float] | None = None  # (wall, busy jiffies, total jiffies, own cpu s)
    _last: int | None = None

    def threads(self) -> int:
        if self.fixed:
            return self.fixed
        now = time.monotonic()
        stat = _read_proc_stat()
        own = _own_cpu_seconds()
        cores = usable_cores()
        if self._snap is not None and self._last is not None and now - self._snap[0] < self.min_interval:
            return self._last
        if self._snap is None or stat is None:
            others = others_load_now()
        else:
            wall0, busy0, total0, own0 = self._snap
            if stat[1] - total0 <= 0:
                return self._last or choose_threads(others=others_load_now(), cores=cores)
            ncpu = os.cpu_count() or cores
            busy_cores = (stat[0] - busy0) / (stat[1] - total0) * ncpu
            others = max(0.0, busy_cores - (own - own0) / max(now - wall0, 1e-6))
        if stat is not None:
            self._snap = (now, stat[0], stat[1], own)
        n = choose_threads(others=others, cores=cores)
        if n != self._last:
            log.debug("threads per process: %d (usable cores %d, other processes ~%.1f cores)", n, cores, others)
        self._last = n
        return n


def threads_from_env() -> int | None:
    """``OBEMBED_THREADS`` as a positive int, else None (``auto``/unset)."""
    raw = os.environ.get("OBEMBED_THREADS", "").strip().lower()
    if not raw or raw == "auto":
        return None
    try:
        n = int(raw)
    except ValueError:
        from ..errors import ConfigError

        raise ConfigError(f"OBEMBED_THREADS={raw!r} is not a number; use a positive integer or 'auto'") from None
    if n < 1:
        from ..errors import ConfigError

        raise ConfigError(f"OBEMBED_THREADS={n} must be at least 1 (or 'auto')")
    return n


def choose_threads(*, others: float | None = None, cores: int | None = None) -> int:
    """One thread per core not held by another process (at least 1, at most 8).

    ``others`` is the number of cores other processes keep busy (load average by default). A core that is
    more than ~40% busy counts as held: measured on a 2-core box, with another process on one core
    1 thread beat 2 by 1.14-1.4x (the pool spin-waits on the thread that shares a core).
    """
    cores = cores or usable_cores()
    others = others_load_now() if others is None else others
    free = cores - int(others + 0.6)
    return max(1, min(free, cores, MAX_AUTO_THREADS))


def resolve_threads(option: int | str | None) -> ThreadAdvisor:
    """A provider's ``threads=`` option (int, ``"auto"`` or None) plus ``OBEMBED_THREADS`` -> an advisor."""
    if option is None or (isinstance(option, str) and option.strip().lower() == "auto"):
        return ThreadAdvisor(fixed=threads_from_env())
    try:
        n = int(option)
    except (TypeError, ValueError):
        from ..errors import ConfigError

        raise ConfigError(f"threads={option!r} is not a number; use a positive integer or 'auto'") from None
    if n < 1:
        from ..errors import ConfigError

        raise ConfigError(f"threads={n} must be at least 1 (or 'auto')")
    return ThreadAdvisor(fixed=n)
