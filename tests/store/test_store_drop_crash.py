"""kill -9 a process at random moments while it drops and creates a collection on the shared store; the next
command repairs: the collection is either fully there and writable, or fully gone and can be created again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

CHILD = """
import sys
from obembed.store import connect
target, name = sys.argv[1], sys.argv[2]
s = connect(dsn=target) if "://" in target else connect(None, path=target)
while True:
    s.drop_collection(name, missing_ok=True)
    s.create_collection(name, 4, exists_ok=True)
    print("cycle", flush=True)
"""


def _await_dead_client_statements(store, name: str, wait_s: float = 60.0) -> list[str]:
    """Wait until the engine has finished every statement on ``name`` that a killed client left in flight.

    A client killed mid-statement does not stop the engine: its DROP or CREATE TABLE runs to the end afterwards. The
    next command comes after that (a DROP finishing under an open collection is a concurrent drop, not a crash to
    repair; that case gets its own error, tested below). Returns the statements seen in flight, for the report."""
    seen: list[str] = []
    deadline = time.monotonic() + wait_s
    while True:
        rows, _ = store.execute("SELECT INFO FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()")
        running = [str(r[0]) for r in rows if r[0] and name in str(r[0])]
        seen.extend(q[:60] for q in running if q[:60] not in seen)
        if not running:
            return seen
        assert time.monotonic() < deadline, f"the engine still runs a killed client's statements after {wait_s} s: " \
                                            f"{running}"
        time.sleep(0.1)


def test_kill_9_during_drop_and_create_then_next_command_repairs(store, make_collection_name, store_test_dsn):
    rng = random.Random(int(os.environ.get("OBEMBED_TEST_SEED", "0")) or None)
    name = make_collection_name("dropcrash")
    target = store_test_dsn or str(store.path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBEMBED_")}
    points = []
    for i in range(3):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, target, name], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = 0
        if i == 2:  # the last kill lands inside the drop/create cycles (on a slow machine a random delay may not)
            first = proc.stdout.readline() if proc.stdout is not None else ""
            if not first.startswith("cycle"):
                proc.kill()
                proc.wait(timeout=30)
                raise AssertionError(f"the child wrote {first!r} before any cycle: {proc.stderr.read()[-500:]}")
            seen = 1
        delay = rng.uniform(0.5, 5.0) if i < 2 else rng.uniform(0.0, 1.5)
        time.sleep(delay)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        cycles = seen + proc.stdout.read().count("cycle")
        points.append((round(delay, 2), cycles, "killed" if alive else f"exited {proc.returncode}: "
                                                                        f"{proc.stderr.read()[-500:]}"))
        assert alive, points
        in_flight = _await_dead_client_statements(store, name)
        if in_flight:
            points.append(("finished after the kill", in_flight))
        # the next command repairs: either fully there and writable, or gone and creatable
        if store.has_collection(name):
            coll = store.collection(name)
        else:
            coll = store.create_collection(name, 4)
        coll.upsert([{"id": "a", "vector": [1.0, 0.0, 0.0, 0.0]}])
        assert coll.get(["a"])[0]["id"] == "a", points
        store.drop_collection(name)
        assert not store.has_collection(name), points
    print(points)
    # some kills landed after drop/create cycles had started
    assert any(isinstance(p[1], int) and p[1] > 0 for p in points), points


def test_a_collection_dropped_under_an_open_handle_says_so(store, make_collection_name):
    """Another command drops the collection after this one opened it: a write names the lost table and the fix."""
    from obembed.errors import CollectionNotFoundError

    name = make_collection_name("dropped")
    coll = store.create_collection(name, 4)
    coll.upsert([{"id": "a", "vector": [1.0, 0.0, 0.0, 0.0]}])
    store.execute(f"DROP TABLE `{name}`", fetch=False)  # what a killed client's in-flight DROP does
    with pytest.raises(CollectionNotFoundError) as caught:
        coll.upsert([{"id": "b", "vector": [0.0, 1.0, 0.0, 0.0]}])
    text = str(caught.value)
    assert name in text, text
    assert "store.collection(name)" in text, text
    assert "1146" in text, text
    assert not store.has_collection(name)  # the metadata row without a table reads as gone
    again = store.create_collection(name, 4)  # and the name can be created again
    assert again.upsert([{"id": "c", "vector": [0.0, 0.0, 1.0, 0.0]}]) == 1
