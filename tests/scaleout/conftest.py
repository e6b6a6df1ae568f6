"""Real parts for the Ray tests: one local Ray runtime (2 CPUs) and one seekdb server (the binary shipped in the
pylibseekdb wheel, started by scripts/seekdb-server.sh) per test module, both stopped at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "seekdb-server.sh"


class SeekdbServer:
    """A seekdb server process in ``folder``; ``restart()`` stops it and starts it again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = {**os.environ, "PYTHON": sys.executable, "SEEKDB_WAIT": "180"}
        self.dsn = self._run("start", str(folder)).strip().splitlines()[-1]
        self.port = int((folder / "seekdb.port").read_text())

    def _run(self, *args: str) -> str:
        out = subprocess.run(["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True,
                             timeout=240, check=False)
        if out.returncode:
            raise RuntimeError(f"seekdb-server.sh {' '.join(args)} failed: {out.stderr[-2000:]}")
        return out.stdout

    def stop(self, keep: bool = False) -> None:
        self._run("stop", str(self.folder), *(["--keep"] if keep else []))

    def start_again(self) -> None:
        self._run("start", str(self.folder), str(self.port))

    def pid(self) -> int:
        return int((self.folder / "seekdb.pid").read_text())


@pytest.fixture(scope="module")
def seekdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeekdbServer]:
    server = SeekdbServer(tmp_path_factory.mktemp("seekdb-server") / "data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def block_marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file the embedding actors append their pid to at the start of each block (see ray_runtime)."""
    return tmp_path_factory.mktemp("ray-marks") / "blocks"


@pytest.fixture(scope="module")
def ray_runtime(block_marks: Path) -> Iterator[Any]:
    """One light local Ray for the module, started as obembed starts one (``ensure_ray``): no dashboard, no usage
    stats or metrics, a small object store.
    Its workers inherit OBEMBED_RAY_BLOCK_MARKS (the raylet's environment is the driver's at init)."""
    import ray

    from obembed.ray.embed import BLOCK_MARKS_ENV
    from obembed.ray.ingest import LOCAL_RAY_ENV, ensure_ray

    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_enable_metrics_collection": "0", BLOCK_MARKS_ENV: str(block_marks)}
    saved = {k: os.environ.get(k) for k in [*env, *LOCAL_RAY_ENV]}
    os.environ.update(env)
    for k in LOCAL_RAY_ENV:  # obembed's own defaults are under test, not a value this shell happens to set
        os.environ.pop(k, None)
    for attempt in range(3):  # a raylet on a busy shared machine can miss Ray's own 30 s start-up window
        try:
            ensure_ray(num_cpus=2, configure_logging=False, object_store_memory=100 * 1024 * 1024)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    try:
        yield ray
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def embed_actor_pids() -> list[int]:
    """Pids of this Ray runtime's embedding actors (children of its raylet named after the Embedder)."""
    import ray

    raylet = ray._private.worker._global_node.all_processes["raylet"][0].process.pid
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().decode(errors="replace")
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        if ppid == raylet and "MapBatches(Embedder)" in cmd:
            out.append(int(d))
    return out


def rows_of(store: Any, name: str) -> list[dict[str, Any]]:
    coll = store.collection(name)
    return [r for batch in coll.iter_rows(500, include_vectors=True) for r in batch]


def assert_same_table(store: Any, got: str, want: str) -> None:
    """Row by row: same ids, contents, sources, chunks, hashes, metadata, columns; vectors equal to the
    precision the engine returns them with."""
    a, b = rows_of(store, got), rows_of(store, want)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    assert len(a) == len({r["id"] for r in a})
    skip = {"vector", "created_at", "updated_at"}
    for x, y in zip(a, b, strict=True):
        assert {k: v for k, v in x.items() if k not in skip} == {k: v for k, v in y.items() if k not in skip}
        np.testing.assert_allclose(x["vector"], y["vector"], atol=2e-5)
