"""The thread rule (obembed.providers._threads), fed synthetic /proc/stat samples through its probe seam.

A small simulated machine produces the samples: per-CPU busy/total jiffies, this process's and its tree's
CPU time. Each scenario of issue 19 asserts the thread count the rule picks; nothing here measures time.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from obembed.errors import ConfigError
from obembed.providers._batching import run_sorted
from obembed.providers._threads import (
    HELD_AT,
    MAX_AUTO_THREADS,
    ProcProbe,
    Sample,
    ThreadAdvisor,
    choose_threads,
    parse_proc_stat,
    resolve_threads,
)

HZ = 100


class Machine:
    """A simulated box: ``run()`` advances the clock with given loads and the probe reads the counters."""

    def __init__(self, cores: int = 2, usable: set[int] | None = None) -> None:
        self.clock = 1000.0
        self.cpus = {c: [0, 0] for c in range(cores)}
        self.own = self.tree = 0
        self._usable = frozenset(usable if usable is not None else range(cores))
        self.background: dict[str, object] = {"others": 0.0, "child": 0.0, "pinned": {}}
        self.samples = 0

    def run(self, seconds: float, *, others: float | None = None, own: float = 0.0, child: float | None = None,
            pinned: dict[int, float] | None = None) -> None:
        """``others``/``own``/``child`` in cores, spread evenly over the usable CPUs; ``pinned``: {cpu: share}."""
        others = float(self.background["others"]) if others is None else others  # type: ignore[arg-type]
        child = float(self.background["child"]) if child is None else child  # type: ignore[arg-type]
        pinned = dict(self.background["pinned"]) if pinned is None else pinned  # type: ignore[call-overload]
        j = seconds * HZ
        spread = (others + own + child) / len(self._usable)
        for c, v in self.cpus.items():
            share = (spread if c in self._usable else 0.0) + pinned.get(c, 0.0)
            v[0] += round(j * min(1.0, share))
            v[1] += round(j)
        self.own += round(j * own)
        self.tree += round(j * (own + child))
        self.clock += seconds

    # the Probe protocol
    def sample(self) -> Sample:
        self.samples += 1
        return Sample(self.clock, {c: (v[0], v[1]) for c, v in self.cpus.items()}, self.own, self.tree)

    def usable(self) -> frozenset[int]:
        return self._usable

    def sleep(self, seconds: float) -> None:  # we are idle while sampling: only the background runs
        self.run(seconds)


def advisor_on(m: Machine) -> ThreadAdvisor:
    return ThreadAdvisor(probe=m)


# ---------------------------------------------------------------------------------------------- the five states
def test_a_idle_machine_uses_every_core() -> None:
    m = Machine(2)
    assert advisor_on(m).threads() == 2


def test_b_right_after_another_heavy_command_the_past_does_not_count() -> None:
    m = Machine(2)
    m.run(90, others=2.0)  # a minute and a half of someone else's work: the load average would say ~1.8
    a = advisor_on(m)  # the machine went quiet when the command started
    assert a.threads() == 2
    assert a.last is not None
    assert a.last.others_used == 0.0


def test_c_our_own_engine_taking_writes_at_the_models_pace_is_not_another_process() -> None:
    m = Machine(2)
    m.background["child"] = 0.3  # the embedded seekdb engine obembed started, storing what an ingest sends it
    a = advisor_on(m)
    m.run(0.5, own=0.4)  # our own ingest threads while the model loads
    d = a.decide()
    assert d.threads == 2
    assert d.others_used == pytest.approx(0.0, abs=0.05)  # the simulated counters round to whole jiffies
    assert d.engine_used == pytest.approx(0.3, abs=0.05)
    assert d.engine_counted == 0.0
    assert d.own_used > 0.5
    assert "engine is busy" not in d.reason()


@pytest.mark.parametrize("engine", [HELD_AT + 0.05, 0.9, 1.5])
def test_c_our_own_engine_busy_on_its_own_holds_a_core(engine: float) -> None:
    """A heavy write load beside the model: the engine takes a core, so 2 threads would spin-wait on it
    (measured: 1 thread ran 1.87x raw where 2 ran 1.40x). Counted once it is busy over two re-checks in a row,
    both measured beside our batches."""
    m = Machine(2)
    m.background["child"] = engine
    a = advisor_on(m)
    assert a.threads() == 2  # before the first batch: what the engine did so far was obembed's own set-up
    own = 2.0 - engine if engine < 1.5 else 1.0
    m.run(3.0, own=own)
    d = a.decide()
    assert d.threads == 2  # busy over one re-check: it may be a burst
    assert d.engine_demand >= HELD_AT
    assert "not counted" in d.reason()
    m.run(3.0, own=own)
    d = a.decide()
    assert d.others_used == pytest.approx(0.0, abs=0.1)  # still not "another process" ...
    assert d.engine_counted >= HELD_AT  # ... but a busy one, for two re-checks in a row
    assert d.threads == 1
    assert "engine is busy on its own" in d.reason()


@pytest.mark.parametrize("seconds", [0.5, 4.0])
def test_c_the_engines_start_and_bursts_do_not_cost_a_thread(seconds: float) -> None:
    """``obembed ingest``: the engine starts, the provider is built, the collection is created (seconds of
    engine work) before the first batch; during the ingest its own writes bring bursts (a memtable dump). Each is
    over before a thread less would pay off (measured: reacting to them cost the ingest 7%)."""
    m = Machine(2)
    a = advisor_on(m)
    m.run(seconds, own=0.5, child=1.2)  # the model loads while the engine runs the DDL
    d = a.decide()
    assert d.engine_demand >= HELD_AT
    assert not d.engine_sustained
    assert d.threads == 2
    assert "before the first batch" in d.reason()
    m.run(3.0, own=1.8, child=0.15)  # the ingest: writes at the model's pace
    assert a.threads() == 2
    m.run(3.0, own=1.2, child=0.8)  # a dump takes a core beside our batches, for one re-check
    assert a.threads() == 2
    m.run(3.0, own=1.8, child=0.2)
    assert a.threads() == 2
    m.run(3.0, own=1.2, child=0.8)  # busy again, but not twice in a row
    assert a.threads() == 2


def test_c_a_light_engine_is_not_added_to_a_light_neighbour() -> None:
    m = Machine(2)
    m.background.update(others=HELD_AT - 0.2, child=HELD_AT - 0.2)  # neither holds a core
    assert advisor_on(m).threads() == 2


def test_c_the_engine_is_followed_during_a_long_job() -> None:
    m = Machine(2)
    a = advisor_on(m)
    assert a.threads() == 2
    m.run(3.0, own=1.2, child=0.8)  # a heavy writer starts beside our 2 threads: the cores are saturated
    d = a.decide()
    assert d.saturated
    assert d.engine_demand > d.engine_used  # squeezed by our threads, it wants more than it got
    assert d.threads == 2  # once may be a burst
    m.run(3.0, own=1.2, child=0.8)
    assert a.threads() == 1  # twice in a row: a core is the engine's
    m.run(3.0, own=0.9, child=1.1)  # one thread now: the engine has its core
    assert a.threads() == 1
    m.run(3.0, own=1.0, child=0.2)  # the writes stopped
    assert a.threads() == 2


def test_c_after_an_idle_spell_the_engine_starts_over() -> None:
    m = Machine(2)
    a = advisor_on(m)
    assert a.threads() == 2
    for _ in range(2):
        m.run(3.0, own=1.2, child=0.8)
        a.decide()
    assert a.threads() == 1
    m.run(3600, child=0.0)  # an idle server, then a request while the engine is busy once more
    m.background["child"] = 1.0
    assert a.threads() == 2  # a fresh window: not "busy twice in a row" yet


def test_d_one_competing_process_per_core_leaves_one_thread() -> None:
    m = Machine(2)
    m.background["others"] = 2.0
    assert advisor_on(m).threads() == 1


@pytest.mark.parametrize(("cores", "want"), [(2, 1), (4, 3), (8, 7), (16, MAX_AUTO_THREADS)])
def test_e_one_competitor_costs_one_core_on_any_machine(cores: int, want: int) -> None:
    m = Machine(cores)
    m.background["others"] = 1.0
    assert advisor_on(m).threads() == want


def test_e_a_competitor_pinned_outside_our_cpus_is_not_ours_to_avoid() -> None:
    m = Machine(4, usable={0, 1})  # taskset -c 0,1 obembed ...
    m.background["pinned"] = {3: 1.0}  # taskset -c 3 other-job
    assert advisor_on(m).threads() == 2
    m2 = Machine(4, usable={0, 1})
    m2.background["pinned"] = {1: 1.0}  # pinned onto one of our two CPUs
    assert advisor_on(m2).threads() == 1


# ---------------------------------------------------------------------------------------------- the details
def test_a_light_neighbour_below_the_threshold_leaves_both_cores() -> None:
    m = Machine(2)
    m.background["others"] = HELD_AT - 0.2  # a bursty job: a second thread still wins on average
    assert advisor_on(m).threads() == 2
    m.background["others"] = HELD_AT + 0.1
    assert advisor_on(m).threads() == 1


def test_adapts_during_a_long_job_and_corrects_for_its_own_share() -> None:
    m = Machine(2)
    a = advisor_on(m)
    assert a.threads() == 2
    # a CPU-bound competitor starts: with our 2 threads on 2 cores it gets only 2/3 of a core
    m.run(3.0, others=2 / 3, own=4 / 3)
    d = a.decide()
    assert d.saturated
    assert d.others_used == pytest.approx(0.667, abs=0.01)
    assert d.others_demand == pytest.approx(1.0, abs=0.02)
    assert d.threads == 1
    m.run(3.0, others=1.0, own=1.0)  # one thread now: the competitor gets its core
    assert a.threads() == 1
    m.run(3.0, others=0.0, own=1.0)  # the competitor ended
    assert a.threads() == 2


def test_between_rechecks_the_decision_is_reused_without_sleeping() -> None:
    m = Machine(2)
    a = advisor_on(m)
    assert a.threads() == 2
    clock = m.clock
    m.background["others"] = 2.0
    m.run(0.5, own=2.0)  # less than the re-check interval later
    assert a.threads() == 2
    assert m.clock == clock + 0.5  # no sampling window was slept


def test_a_stale_window_is_measured_afresh() -> None:
    m = Machine(2)
    m.background["others"] = 2.0
    a = advisor_on(m)  # made while the machine was busy (e.g. a server that started an hour ago)
    m.run(3600)
    m.background["others"] = 0.0
    assert a.threads() == 2  # the first request only looks at the last moments


def test_without_proc_every_usable_core_is_used() -> None:
    class NoProc(Machine):
        def sample(self) -> Sample | None:  # type: ignore[override]
            return None

    assert ThreadAdvisor(probe=NoProc(4)).decide().source == "no /proc (default)"
    assert ThreadAdvisor(probe=NoProc(4)).threads() == 4
    assert ThreadAdvisor(probe=NoProc(32)).threads() == MAX_AUTO_THREADS


@pytest.mark.parametrize(("others", "cores", "want"), [
    (0.0, 2, 2), (0.5, 2, 2), (0.7, 2, 1), (1.0, 2, 1), (5.0, 2, 1), (0.0, 1, 1), (0.0, 16, 8), (3.0, 16, 8),
    (10.0, 16, 6),
])
def test_one_thread_per_free_core(others: float, cores: int, want: int) -> None:
    assert choose_threads(others=others, cores=cores) == want


def test_overrides_beat_the_measurement(monkeypatch: pytest.MonkeyPatch) -> None:
    m = Machine(2)
    m.background["others"] = 2.0
    monkeypatch.delenv("OBEMBED_THREADS", raising=False)
    assert resolve_threads(None, probe=m).threads() == 1
    assert resolve_threads(3, probe=m).threads() == 3
    assert resolve_threads(3).decide().source == "threads option"
    monkeypatch.setenv("OBEMBED_THREADS", "2")
    assert resolve_threads(None, probe=m).threads() == 2
    assert resolve_threads("auto", probe=m).decide().source == "OBEMBED_THREADS"
    assert resolve_threads(1, probe=m).threads() == 1  # the option beats the environment
    assert "fixed by OBEMBED_THREADS" in resolve_threads(None).decide().reason()
    monkeypatch.setenv("OBEMBED_THREADS", "many")
    with pytest.raises(ConfigError, match="OBEMBED_THREADS"):
        resolve_threads(None)
    monkeypatch.setenv("OBEMBED_THREADS", "0")
    with pytest.raises(ConfigError, match="at least 1"):
        resolve_threads(None)
    with pytest.raises(ConfigError, match="threads=0"):
        resolve_threads(0)
    with pytest.raises(ConfigError, match="positive integer"):
        resolve_threads("lots")


def test_the_reason_names_what_was_measured() -> None:
    m = Machine(2)
    m.background["others"] = 1.0
    text = advisor_on(m).decide().reason()
    assert text.startswith("1 thread(s)")
    assert "2 usable core(s)" in text
    assert "1 core(s) held" in text


def test_run_sorted_checks_the_threads_before_every_batch() -> None:
    calls: list[int] = []
    run_sorted([10] * 50, lambda idx: np.zeros((len(idx), 2)), token_budget=100,
               before_batch=lambda: calls.append(1))
    assert len(calls) == 5


# ---------------------------------------------------------------------------------------------- the real /proc
def test_parse_proc_stat_per_cpu_busy_and_total() -> None:
    text = ("cpu  35 3 6 550 7 0 2 1 0 0\n"
            "cpu0 10 1 2 300 5 0 1 1 0 0\n"
            "cpu1 25 2 4 250 2 0 1 0 4 0\n"
            "intr 12345 1 2\nctxt 99\n")
    assert parse_proc_stat(text) == {0: (15, 320), 1: (32, 284)}


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads Linux /proc")
def test_proc_probe_counts_a_child_process_as_our_own() -> None:
    burn = ("import time, sys\n"
            "while time.process_time() < 0.4: pass\n"
            "print('done', flush=True)\n"
            "sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "done"
        s = ProcProbe().sample()
        assert s is not None
        assert s.cpus
        assert s.own_tree - s.own_process >= 0.3 * os.sysconf("SC_CLK_TCK")  # the child's 0.4 CPU-s
        assert set(ProcProbe().usable()) == set(os.sched_getaffinity(0))
    finally:
        child.kill()
        child.wait()
    d = ThreadAdvisor().decide()
    assert d.source == "auto"
    assert d.window >= 0.1
    assert 1 <= d.threads <= min(len(os.sched_getaffinity(0)), MAX_AUTO_THREADS)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads Linux /proc")
def test_an_adopted_process_outside_our_tree_counts_as_ours(tmp_path) -> None:
    """A warm engine's keeper is detached (not our child); once adopted, its CPU is obembed's own."""
    import signal

    from obembed.providers import _threads

    done = tmp_path / "done"
    code = ("import time, pathlib\n"
            "while time.process_time() < 0.4: pass\n"
            f"pathlib.Path({str(done)!r}).write_text('x')\n"
            "time.sleep(60)\n")
    script = tmp_path / "burn.py"
    script.write_text(code)
    out = subprocess.run(["sh", "-c", f"'{sys.executable}' '{script}' </dev/null >/dev/null 2>&1 & echo $!"],
                         capture_output=True, text=True, check=True)
    pid = int(out.stdout.strip())
    try:
        for _ in range(600):
            if done.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert done.exists()
        before = ProcProbe().sample()
        _threads.adopt_process(pid)
        after = ProcProbe().sample()
        assert before is not None
        assert after is not None
        tick = os.sysconf("SC_CLK_TCK")
        assert (after.own_tree - after.own_process) - (before.own_tree - before.own_process) >= 0.3 * tick
    finally:
        _threads._ADOPTED.discard(pid)
        os.kill(pid, signal.SIGTERM)


# ---------------------------------------------------------------------------------------------- hf: follows the rule
class CountingAdvisor(ThreadAdvisor):
    """The real advisor on a simulated machine; a competitor starts after the ``busy_after``-th consultation."""

    def __init__(self, machine: Machine, busy_after: int) -> None:
        super().__init__(probe=machine)
        self.machine, self.busy_after, self.calls = machine, busy_after, 0

    def threads(self) -> int:
        self.calls += 1
        if self.calls == self.busy_after:
            self.machine.run(3.0, others=2 / 3, own=4 / 3)  # past the re-check interval: one core now taken
        return super().threads()


def test_hf_provider_follows_the_thread_rule_between_batches(texts) -> None:
    """``hf:`` (raw transformers) runs torch on the rule's thread count like ``st:``/``onnx:``: measured at the
    start, re-checked before every batch, so a competitor that starts mid-job takes a thread away; the vectors
    stay those of the default run."""
    import torch

    import obembed
    from obembed.providers._batching import plan_batches

    before = torch.get_num_threads()
    try:
        hf = obembed.load("hf:all-MiniLM-L6-v2", runtime="torch", device="cpu", token_budget=128)
        m = Machine(2)
        advisor = CountingAdvisor(m, busy_after=3)
        hf.__dict__["_thread_advisor"] = advisor  # the seam benchmarks/encode.py uses too
        docs = texts[:6]
        lengths = [min(c, hf.max_input_tokens or 512) for c in hf.count_tokens(docs)]
        n_batches = len(plan_batches(lengths, token_budget=128, max_items=hf.batch_size * 4))
        assert n_batches >= 3
        torch.set_num_threads(1)
        first = hf.embed_documents(docs[:1])  # idle machine: both cores
        assert torch.get_num_threads() == 2
        advisor.calls = 0
        vecs = hf.embed_documents(docs)
        assert advisor.calls == n_batches + 1  # once at the start, then before every batch
        assert torch.get_num_threads() == 1  # the competitor holds a core now
        assert advisor.last is not None
        assert advisor.last.threads == 1

        np.testing.assert_allclose(first[0], vecs[0], atol=1e-5)  # the thread count never changes the vectors

        one = obembed.load("hf:all-MiniLM-L6-v2?threads=1", runtime="torch", device="cpu")
        assert one.info()["options"]["threads"] == 1
        one.apply_threads()  # what embed_many does first (no model load needed for it)
        assert torch.get_num_threads() == 1  # the option beats the measurement
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="threads=0"):
        obembed.load("hf:all-MiniLM-L6-v2?threads=0", runtime="torch", device="cpu").apply_threads()


# ---------------------------------------------------------------------------------------------- lent cores
def test_a_core_lent_to_obembeds_own_engine_work_is_one_thread_fewer() -> None:
    """The ingest pipeline builds a new collection's FULLTEXT index (one engine thread) beside the model's last
    slice: the model runs one thread fewer meanwhile (at least one), and the count comes back afterwards."""
    m = Machine(2)
    a = advisor_on(m)
    assert a.threads() == 2
    with a.lend_core():
        d = a.decide()
        assert (d.threads, d.lent) == (1, 1)
        assert "lent to obembed's own engine work" in d.reason()
        with a.lend_core():  # never below one thread
            assert a.threads() == 1
        assert a.threads() == 1
    d = a.decide()
    assert (d.threads, d.lent) == (2, 0)
    assert "lent" not in d.reason()

    four = advisor_on(Machine(4))
    with four.lend_core(), four.lend_core():
        assert four.threads() == 2
    assert four.threads() == 4


def test_a_fixed_thread_count_is_kept_while_a_core_is_lent() -> None:
    a = ThreadAdvisor(fixed=2, source="OBEMBED_THREADS")
    with a.lend_core():
        assert a.threads() == 2
        assert a.decide().lent == 0


def test_a_lent_core_is_given_back_when_the_work_fails() -> None:
    a = advisor_on(Machine(2))
    with pytest.raises(RuntimeError), a.lend_core():
        raise RuntimeError("the build failed")
    assert a.threads() == 2
