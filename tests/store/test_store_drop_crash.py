"""kill -9 a process at random moments while it drops and creates a collection on the shared store; the next
command repairs: the collection is either fully there and writable, or fully gone and can be created again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

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
    assert any(p[1] > 0 for p in points), points  # some kills landed after drop/create cycles had started
