"""The warm engine: a keeper holds a folder's engine between commands; ``obembed engine status|stop`` see and stop
it; killing it loses nothing committed."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
from click.testing import CliRunner

from obembed.cli import main
from obembed.store import connect
from obembed.store.engine import STATE_FILE, engine_status, start_warm, stop_warm

pytestmark = pytest.mark.seekdb


def _engines_for(folder) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "seekdb" in cmd and f"--base-dir={folder}" in cmd:
                out.append(int(d))
    return out


def _wait_gone(pid: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z":
            return True
        time.sleep(0.2)
    return False


def test_warm_engine_is_shared_seen_and_stopped(tmp_path, store_test_dsn):
    if store_test_dsn:
        pytest.skip("about the embedded engine's folder (a DSN store has no engine to keep warm)")
    folder = (tmp_path / "kb").resolve()
    runner = CliRunner()
    out = runner.invoke(main, ["engine", "status", "--db", str(folder), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) is None

    out = runner.invoke(main, ["engine", "start", "--db", str(folder), "--idle", "300", "--json"])
    assert out.exit_code == 0, out.output
    status = json.loads(out.output)
    keeper = status["pid"]
    assert status["idle_limit_s"] == 300
    assert (folder / STATE_FILE).exists()
    engines = _engines_for(folder)
    assert len(engines) == 1

    with connect(folder) as s:  # attaches to the kept engine: no second engine for the folder
        assert _engines_for(folder) == engines
        s.create_collection("c", 4).upsert([{"id": f"r{i}", "vector": [1, i, 0, 0]} for i in range(20)])
    assert engine_status(folder)["pid"] == keeper  # closing the store does not stop the engine
    assert _engines_for(folder) == engines
    assert start_warm(folder, 300)["pid"] == keeper  # starting again keeps the running one

    out = runner.invoke(main, ["engine", "stop", "--db", str(folder)])
    assert out.exit_code == 0, out.output
    assert "stopped" in out.output
    assert engine_status(folder) is None
    assert not (folder / STATE_FILE).exists()
    assert _wait_gone(engines[0])
    assert stop_warm(folder) is False
    with connect(folder) as s:  # the data is there after the engine stopped
        assert s.collection("c").count() == 20


def test_killing_the_keeper_loses_nothing_committed(tmp_path, store_test_dsn):
    if store_test_dsn:
        pytest.skip("about the embedded engine's folder (a DSN store has no engine to keep warm)")
    folder = (tmp_path / "kb").resolve()
    keeper = int(start_warm(folder, 300)["pid"])
    with connect(folder) as s:
        coll = s.create_collection("c", 4)
        coll.upsert([{"id": f"r{i}", "vector": np.array([1.0, i, 0, 0])} for i in range(30)])
    os.kill(keeper, signal.SIGKILL)
    assert _wait_gone(keeper)
    assert engine_status(folder) is None  # a dead keeper is not reported as warm
    deadline = time.monotonic() + 60
    while _engines_for(folder) and time.monotonic() < deadline:
        time.sleep(0.5)
    with connect(folder) as s:
        coll = s.collection("c")
        assert coll.count() == 30
        assert [h.id for h in coll.search([1.0, 7.0, 0, 0], 1)] == ["r7"]


def test_idle_keeper_stops_by_itself(tmp_path, store_test_dsn):
    if store_test_dsn:
        pytest.skip("about the embedded engine's folder (a DSN store has no engine to keep warm)")
    folder = (tmp_path / "kb").resolve()
    keeper = int(start_warm(folder, 1)["pid"])
    assert _wait_gone(keeper, timeout=120)
    assert engine_status(folder) is None
    assert not (folder / STATE_FILE).exists()
