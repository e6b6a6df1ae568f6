"""``obembed models --explain SPEC``: what a run on this machine uses (runtime, precision, threads, budget) and why."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from obembed.cli import main
from obembed.providers._batching import ONNX_TOKEN_BUDGET
from obembed.providers._threads import HELD_AT, MAX_AUTO_THREADS, choose_threads


@pytest.fixture
def cached_env(monkeypatch: pytest.MonkeyPatch, onnx_cache: Path, onnx_fp32) -> Path:
    """OBEMBED_CACHE_DIR pointing at the session's export (made by the onnx_fp32 fixture)."""
    from obembed.settings import get_settings

    monkeypatch.setenv("OBEMBED_CACHE_DIR", str(onnx_cache))
    monkeypatch.delenv("OBEMBED_FAST_START", raising=False)
    monkeypatch.delenv("OBEMBED_THREADS", raising=False)
    get_settings.cache_clear()
    return onnx_cache


def run(*args: str) -> str:
    res = CliRunner().invoke(main, ["models", *args])
    assert res.exit_code == 0, res.output
    return res.output


def test_default_model_explained_line_by_line(cached_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBEMBED_THREADS", "3")
    lines = dict(line.split(":", 1) for line in run("--explain", "st:all-MiniLM-L6-v2").splitlines())
    assert lines["spec"].strip() == "st:all-MiniLM-L6-v2"
    assert lines["runs as"].strip().startswith("onnx:all-MiniLM-L6-v2 (onnx-fp32): the verified fp32 ONNX export")
    assert "stands in for st:all-MiniLM-L6-v2" in lines["runs as"]
    assert lines["precision"].split()[0] == "fp32"
    assert lines["threads"].strip() == "3  (3 thread(s): fixed by OBEMBED_THREADS)"
    assert lines["token budget"].split()[0] == str(ONNX_TOKEN_BUDGET)
    assert lines["max tokens"].split()[0] == "256"


def test_auto_threads_show_the_measurement_they_came_from(cached_env: Path) -> None:
    info = json.loads(run("--explain", "st:all-MiniLM-L6-v2", "--json"))
    t = info["threads"]
    m = t["measured"]
    assert m["usable_cores"] == len(os.sched_getaffinity(0))
    assert m["window_s"] >= 0.1
    assert 1 <= t["value"] <= min(m["usable_cores"], MAX_AUTO_THREADS)
    assert t["value"] == choose_threads(others=m["counted_demand_cores"], cores=m["usable_cores"])
    busy_engine = m["engine_demand_cores"] if m["engine_demand_cores"] >= HELD_AT else 0.0
    assert m["counted_demand_cores"] == pytest.approx(m["others_demand_cores"] + busy_engine, abs=0.002)
    assert t["why"].startswith(f"{t['value']} thread(s): {m['usable_cores']} usable core(s)")


def test_options_are_explained_as_set(cached_env: Path) -> None:
    info = json.loads(run("--explain", "onnx:all-MiniLM-L6-v2?precision=int8", "-o", "token_budget=512",
                          "-o", "threads=1", "--json"))
    assert info["runtime"] == "onnx-int8"
    assert info["precision"]["value"] == "int8"
    assert "separate vector space" in info["precision"]["why"]
    assert info["token_budget"] == {"value": 512, "why": "padded tokens per batch, set by token_budget="}
    assert info["threads"] == {"value": 1, "why": "1 thread(s): fixed by threads option", "measured": None}


def test_torch_path_when_fast_start_is_off(cached_env: Path, monkeypatch: pytest.MonkeyPatch, minilm) -> None:
    from obembed.settings import get_settings

    monkeypatch.setenv("OBEMBED_FAST_START", "0")
    monkeypatch.setenv("OBEMBED_THREADS", "2")
    get_settings.cache_clear()  # OBEMBED_FAST_START is read through Settings
    info = json.loads(run("--explain", "st:all-MiniLM-L6-v2", "--json"))
    assert info["runs_as"] == "st:all-MiniLM-L6-v2"
    assert info["runtime"] == "torch"
    assert "runs_as_why" not in info
    assert info["token_budget"]["value"] == 2048
    assert info["max_input_tokens"]["value"] == minilm.max_input_tokens == 256
    assert info["threads"]["value"] == 2


def test_a_bad_threads_value_is_a_clear_error(cached_env: Path) -> None:
    res = CliRunner().invoke(main, ["models", "--explain", "st:all-MiniLM-L6-v2", "-o", "threads=0"])
    assert res.exit_code != 0
    assert "threads=0 must be at least 1" in res.output
