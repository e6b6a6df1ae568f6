"""kill -9 a migrating process at random moments, rerun: the collection ends exactly as an uninterrupted migration
leaves it (rows, new vectors, old vectors kept for rollback, metadata).

The migrating runs are real subprocesses attached to this session's store (embedded seekdb, or OBEMBED_TEST_DSN).
Both models are served by a real OpenAI-compatible HTTP server on 127.0.0.1 (the providers tests' FakeAPI: every
vector a deterministic function of text and model), slowed a little per request, so the children start fast (no
torch) and the kills land between and inside batches, in the migration and in the swap.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import obembed
from obembed.store.migrate import shadow_table
from obembed.store.rows import parse_vector
from tests.providers.fakeapi import FakeAPI

ROOT = Path(__file__).resolve().parents[2]
NEW = "openai-compatible:text-embedding-3-small"
OLD = "openai-compatible:tiny"
# the child: the same steps a user reruns after a crash (migrate until done, then swap), one line per batch
CHILD = f"""
import sys, obembed
NEW = {NEW!r}
target, name, url = sys.argv[1:4]
store = obembed.connect(target)
coll = store.collection(name)
st = coll.migration
if st is None or st["state"] == "building":
    model = obembed.load(NEW, base_url=url, dimensions=16, retry_initial=0.001, retry_max_wait=0.01)
    coll.migrate(model, batch_size=3, progress=lambda d, n: print("batch", d, n, flush=True))
    print("migrated", flush=True)
if (coll.migration or {{}}).get("state") != "swapped":
    coll.swap_model()
print("swapped", flush=True)
"""


def _fill(store, name: str, url: str) -> Any:
    old = obembed.load(OLD, base_url=url)
    coll = store.create_collection(name, old, columns={"n": "int"})
    texts = [f"row {i}: {w} text for the crash test" for i, w in enumerate(["alpha", "beta", "gamma"] * 10)]
    coll.upsert([{"id": f"r{i:02d}", "content": t, "n": i, "vector": v, "metadata": {"i": i}}
                 for i, (t, v) in enumerate(zip(texts, old.embed_documents(texts), strict=True))])
    return coll


def _dump(store, table: str) -> dict[str, tuple[Any, ...]]:
    rows, _ = store.execute(f"SELECT `id`, `content`, `n`, `metadata`, `embedding` FROM `{table}` ORDER BY `id`")
    return {r[0]: (r[1], r[2], r[3], parse_vector(r[4]).tolist()) for r in rows}


def test_kill_9_while_migrating_then_rerun_equals_an_uninterrupted_migration(store, make_collection_name,
                                                                            store_test_dsn):
    rng = random.Random(int(os.environ.get("OBEMBED_TEST_SEED", "0")) or None)
    target = store_test_dsn or str(store.path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBEMBED_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    with FakeAPI("openai", latency=0.03) as api:
        url = api.url + "/v1"
        ref, crash = make_collection_name("migref"), make_collection_name("migcrash")
        _fill(store, ref, url)
        _fill(store, crash, url)
        # the reference: one uninterrupted migration and swap, in this process
        new = obembed.load(NEW, base_url=url, dimensions=16)
        store.collection(ref).migrate(new, batch_size=3)
        store.collection(ref).swap_model()

        def child() -> subprocess.Popen[str]:
            return subprocess.Popen([sys.executable, "-c", CHILD, target, crash, url], env=env, cwd=str(ROOT),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        points: list[tuple[int, str]] = []
        for _ in range(3):
            proc = child()
            lines: list[str] = []
            want = rng.randint(0, 4)  # kill after this many progress lines, a little into the next step
            assert proc.stdout is not None
            while len(lines) <= want:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line.strip())
            time.sleep(rng.uniform(0.0, 0.1))
            alive = proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert alive or proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            points.append((len(lines), lines[-1] if lines else "(start)"))
        # the rerun that finishes
        proc = child()
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        assert out.strip().endswith("swapped"), out
    assert any(n >= 1 and not last.startswith("swapped") for n, last in points), points  # kills landed mid-way

    a, b = store.collection(ref), store.collection(crash)
    assert (b.dimension, b.spec, b.space) == (a.dimension, a.spec, a.space) == (16, NEW, new.space), points
    assert (b.migration or {}).get("state") == "swapped", points
    assert _dump(store, crash) == _dump(store, ref), points  # rows and new vectors
    assert _dump(store, shadow_table(crash)) == _dump(store, shadow_table(ref)), points  # old vectors kept
    # and the old model's vectors are still the rollback's
    back = b.rollback_model()
    assert (back.dimension, back.spec) == (8, OLD)
    print(points)
