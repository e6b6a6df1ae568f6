"""The embedded engine across processes: kill -9 durability, a second process on the same folder, close/reopen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import obembed
from obembed.errors import StoreError
from obembed.store import connect

pytestmark = pytest.mark.seekdb

WRITER = textwrap.dedent("""
    import sys, numpy as np
    from obembed.store import connect
    target, name = sys.argv[1], sys.argv[2]
    store = connect(target) if target.startswith("mysql://") else connect(path=target)
    coll = store.create_collection(name, 8)
    coll.upsert([{"id": f"c{i}", "vector": np.full(8, i + 1.0)} for i in range(50)])
    print("COMMITTED", flush=True)
    # a second batch inside an open transaction that never commits
    conn = store._session.conn
    conn.begin()
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO `{name}` (id, embedding) VALUES (%s, %s)",
                    ("uncommitted", np.ones(8, "<f4").tobytes()))
    print("UNCOMMITTED", flush=True)
    sys.stdin.read()  # wait to be killed
""")

READER = textwrap.dedent("""
    import sys, numpy as np
    from obembed.store import connect
    store = connect(path=sys.argv[1])
    coll = store.collection("shared")
    print("COUNT", coll.count(), flush=True)
    coll.upsert([{"id": "from-child", "vector": np.ones(8)}])
    print("WROTE", flush=True)
    store.close()
""")


def _run_until(proc: subprocess.Popen, marker: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child exited before {marker!r}: {proc.stderr.read()[-2000:]}")
        if line.strip() == marker:
            return
    raise AssertionError(f"no {marker!r} within {timeout} s")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OBEMBED_DSN", None)
    return env


def test_committed_batch_survives_kill_9(tmp_path, store, store_test_dsn, collection_name):
    """kill -9 of a writer: its committed batch is there, its open transaction is not (embedded: after reopening
    the folder, whose engine died with the writer; DSN: on the server)."""
    folder = tmp_path / "db"
    target = store_test_dsn or str(folder)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, target, collection_name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        _run_until(proc, "COMMITTED")
        _run_until(proc, "UNCOMMITTED")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    def check(s) -> None:
        coll = s.collection(collection_name)
        assert coll.count() == 50
        assert coll.get(["uncommitted"]) == []
        assert coll.search(np.full(8, 3.0), k=1, where={"id": "c2"})[0].id == "c2"

    if store_test_dsn:
        check(store)
        return
    with connect(path=folder) as again:
        check(again)


def test_second_process_on_the_same_folder(tmp_path, store_test_dsn):
    """Another process opening a folder that this process has open attaches to the same engine."""
    if store_test_dsn:
        pytest.skip("about the embedded engine's folder")
    folder = tmp_path / "db"
    with connect(path=folder) as mine:
        coll = mine.create_collection("shared", 8)
        coll.upsert([{"id": f"p{i}", "vector": np.full(8, i + 1.0)} for i in range(7)])
        out = subprocess.run([sys.executable, "-c", READER, str(folder)], capture_output=True, text=True,
                             timeout=180, env=_env())
        assert out.returncode == 0, out.stderr[-2000:]
        assert "COUNT 7" in out.stdout
        assert "WROTE" in out.stdout
        # the child's write is visible here, and our engine outlived the child
        assert coll.count() == 8
        assert coll.get(["from-child"])[0]["id"] == "from-child"


def test_close_and_reopen_in_process(tmp_path, store_test_dsn):
    if store_test_dsn:
        pytest.skip("about the embedded engine's folder")
    folder = tmp_path / "db"
    with connect(path=folder) as s1:
        s1.create_collection("kept", 4).upsert([{"id": "a", "vector": [1, 2, 3, 4]}])
    with obembed.connect(path=folder) as s2:  # the top-level API: the same store, models rebuilt by obembed.load
        assert s2.provider_factory is obembed.load
        assert s2.collection("kept").count() == 1
        assert repr(s2).startswith("Store(embedded:")
        assert len(_engines_for(folder)) == 1
    with pytest.raises(StoreError, match="closed"):
        s2.list_collections()
    # close() released the last handle: the engine for this folder stops (bounded wait)
    deadline = time.monotonic() + 30
    while _engines_for(folder) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _engines_for(folder) == []


def _engines_for(folder) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in out if "seekdb" in line and f"--base-dir={folder}" in line]
