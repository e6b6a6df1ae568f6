"""One ranking everywhere: Python (``Collection.search``), ``obembed search --json`` and the server's ``/search``
return the same ids in the same order, on a collection where the exact-or-index policy matters (a narrow HNSW
index over crowded vectors returns another top k than the exact scan)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.seekdb

BASE = [
    "how to install a tiling window manager", "a command line tool to resize images", "read email in a terminal",
    "a fast web server for static files", "play music from the command line", "edit photos with layers",
    "a library for parsing JSON", "backup files to a remote server", "monitor the temperature of the CPU",
    "a spreadsheet program", "compile C code quickly", "a database for time series",
]
QUERIES = ["window manager with tiles", "terminal mail reader", "backup my files remotely", "resize pictures"]
K = 10


@pytest.fixture(scope="module")
def crowded(store, minilm, request):
    """~2,400 rows: each base text's MiniLM vector plus small noise (crowded neighbourhoods), behind an HNSW
    index built narrow (m=5, ef_construction=10, ef_search=10) so that the index misses some of the exact top k."""
    import uuid

    name = f"policy_{uuid.uuid4().hex[:8]}"
    coll = store.create_collection(name, minilm, index="hnsw",
                                   index_params={"m": 5, "ef_construction": 10, "ef_search": K})
    rng = np.random.default_rng(7)
    base = minilm.embed_documents(BASE)
    rows = []
    for b, (text, vec) in enumerate(zip(BASE, base, strict=True)):
        for j in range(200):
            v = vec + rng.normal(0, 0.04, vec.shape).astype(np.float32)
            rows.append({"id": f"r{b:02d}_{j:03d}", "vector": v / np.linalg.norm(v), "content": f"{text} #{j}"})
    coll.upsert(rows)
    yield name
    store.drop_collection(name)


def _ids(hits) -> list[str]:
    return [h.id if hasattr(h, "id") else h["id"] for h in hits]


def test_python_cli_and_server_rank_alike(store, crowded, http, store_test_dsn):
    coll = store.collection(crowded)
    exact = {q: _ids(coll.search(q, K, exact=True)) for q in QUERIES}
    index = {q: _ids(coll.search(q, K, exact=False)) for q in QUERIES}
    # the policy matters here: the index path alone gives another answer for at least one query
    assert any(exact[q] != index[q] for q in QUERIES), "the narrow index found the exact top k everywhere"

    python = {q: _ids(coll.search(q, K)) for q in QUERIES}  # exact=None: the store's policy
    assert python == exact  # 2,400 rows <= EXACT_MAX_ROWS: exact

    env = dict(os.environ, OBEMBED_FAST_START="0")  # the same (torch) MiniLM as the Python side and the server
    env.pop("OBEMBED_DSN", None)
    target = ["--dsn", store_test_dsn] if store_test_dsn else ["--db", str(store.path)]
    # the CLI (a fresh process: ~15 s here) on one query where the policy matters, the server on all
    cli_queries = [q for q in QUERIES if exact[q] != index[q]][:1]
    for q in cli_queries:
        cmd = [sys.executable, "-c", "from obembed.cli import main; main()", "search", q, "-c", crowded]
        out = subprocess.run([*cmd, "-k", str(K), "--json", *target], capture_output=True, text=True, env=env,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert _ids(json.loads(out.stdout)["hits"]) == python[q], q
    for q in QUERIES:
        r = http.post("/search", json={"collection": crowded, "query": q, "k": K})
        assert r.status_code == 200, r.text
        assert _ids(r.json()["hits"]) == python[q], q
