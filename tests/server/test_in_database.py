"""In-database models: the real ``obembed serve --register`` (a second process attached to this module's embedded
seekdb folder) answers the engine's ``AI_EMBED``; SQL's vectors equal the Python API's, rows SQL writes are found
by ``obembed search`` and ``Collection.search``, and the faults (wrong key, dimension, server killed) give the
documented errors. One server for the module; the fault that kills it runs last."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serverkit import DOCS, cosine

import obembed
from obembed.errors import ConfigError, DimensionMismatchError, StoreError
from obembed.store.ai_models import check_models

COLL = "indb_docs"
SQL_NAME = f"obembed_{COLL}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBEMBED_")}
    env.update(OBEMBED_FAST_START="off", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _obembed(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from obembed.cli import main; main()", *args], env=_cli_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> Any:
    """(folder, store, collection, server process, url): a collection of DOCS ingested with MiniLM, and the real
    ``obembed serve --register`` on 127.0.0.1 attached to the same embedded folder."""
    folder = tmp_path_factory.mktemp("indb") / "kb"
    store = obembed.connect(path=folder, provider_factory=obembed.load)
    coll = store.create_collection(COLL, minilm)
    vecs = minilm.embed_documents([d[1] for d in DOCS])
    coll.upsert([{"id": i, "vector": v, "content": t} for (i, t, _, _), v in zip(DOCS, vecs, strict=True)])
    port = _free_port()
    log = open(folder.parent / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from obembed.cli import main; main()", "serve", "-m", "st:all-MiniLM-L6-v2",
         "--db", str(folder), "--port", str(port), "--register", "--batch-wait-ms", "5", "--log-level", "warning"],
        env=_cli_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("obembed serve did not start: "
                                   + (folder.parent / "serve.log").read_text()[-3000:]) from None
            time.sleep(0.3)
    try:
        yield folder, store, coll, proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        store.close()


def _sql_vector(store: Any, name: str, text: str) -> np.ndarray:
    rows, _ = store.execute("SELECT AI_EMBED(%s, %s)", (name, text))
    return np.asarray(json.loads(rows[0][0]), np.float32)


def test_serve_register_records_the_collection_model(kb: Any) -> None:
    _, store, coll, _, url = kb
    regs = {r.name: r for r in store.ai_models()}
    assert SQL_NAME in regs, regs
    reg = regs[SQL_NAME]
    assert (reg.collection, reg.dimension, reg.space, reg.status) == (COLL, 384, coll.space, "ok")
    assert reg.url == url + "/v1/embeddings"
    assert reg.kind == "document"
    assert SQL_NAME + "_query" not in regs
    # the engine holds a dedicated random key: not empty, and the server accepts it (only its hash is recorded)
    rows, _ = store.execute("SELECT ACCESS_KEY FROM oceanbase.DBA_OB_AI_MODEL_ENDPOINTS WHERE ENDPOINT_NAME = %s",
                            (reg.endpoint,))
    key = rows[0][0]
    assert key.startswith("obk_")
    assert len(key) > 30
    assert key not in repr(reg)


def test_ai_embed_equals_the_python_api(kb: Any, minilm: Any) -> None:
    store = kb[1]
    for text in ["OceanBase stores vectors", "東京は日本の首都です。"]:
        sql = _sql_vector(store, SQL_NAME, text)
        assert sql.shape == (384,)
        assert cosine(sql, minilm.embed_documents([text])[0]) >= 0.9999
        assert cosine(sql, minilm.embed_query(text)) >= 0.9999


def test_row_inserted_by_sql_is_found_by_search(kb: Any, minilm: Any) -> None:
    folder, store, coll, _, _ = kb
    text = "A lighthouse keeper polishes the great lens every evening."
    store.execute(f"INSERT INTO `{COLL}` (id, content, embedding) VALUES (%s, %s, AI_EMBED(%s, %s))",
                  ("sql1", text, SQL_NAME, text), fetch=False)
    hits = coll.search("lighthouse keeper lens", k=3)
    assert hits[0].id == "sql1"
    stored = coll.get("sql1", include_vectors=True)[0]["vector"]
    assert cosine(stored, minilm.embed_documents([text])[0]) >= 0.9999
    out = _obembed("search", "lighthouse keeper lens", "-c", COLL, "--db", str(folder), "-k", "3", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["hits"][0]["id"] == "sql1"


def test_sql_order_by_ai_embed_gives_the_search_ids(kb: Any) -> None:
    _, store, coll, _, _ = kb
    for query in ["a database with vector search", "animals resting in the sun", "mountains"]:
        rows, _ = store.execute(
            f"SELECT id FROM `{COLL}` ORDER BY cosine_distance(embedding, AI_EMBED(%s, %s)) APPROXIMATE LIMIT 10",
            (SQL_NAME, query))
        assert [r[0] for r in rows] == [h.id for h in coll.search(query, k=10)]


def test_reregistration_is_idempotent(kb: Any, minilm: Any) -> None:
    _, store, _, _, url = kb
    before = {r.name: r.key_sha256 for r in store.ai_models()}
    regs = store.register_model(url + "/v1/embeddings", minilm, collection=COLL)  # the server's default name
    assert [r.name for r in regs] == [SQL_NAME]
    assert regs[0].key is None
    assert {r.name: r.key_sha256 for r in store.ai_models()} == before


def test_dimension_mismatch_is_refused_naming_both(kb: Any, minilm: Any) -> None:
    _, store, _, _, url = kb
    store.create_collection("indb_small", 8)
    try:
        with pytest.raises(DimensionMismatchError, match=r"384-d.*VECTOR\(8\)"):
            store.register_model(url + "/v1/embeddings", minilm, collection="indb_small")
        assert "obembed_indb_small" not in {r.name for r in store.ai_models()}
    finally:
        store.drop_collection("indb_small")


def test_bad_url_is_refused(kb: Any, minilm: Any) -> None:
    with pytest.raises(ConfigError, match="/v1/embeddings"):
        kb[1].register_model("http://127.0.0.1:1/", minilm)


def test_stale_registrations_are_listed_and_dropped(kb: Any, minilm: Any) -> None:
    folder, store, _, _, url = kb
    gone = store.create_collection("indb_gone", minilm)
    assert gone.dimension == 384
    store.register_model(url + "/v1/embeddings", minilm, collection="indb_gone", served_name="all-MiniLM-L6-v2")
    store.drop_collection("indb_gone")
    status = {r.name: r.status for r in store.ai_models()}
    assert status["obembed_indb_gone"].startswith("stale: collection 'indb_gone' no longer exists")
    assert status[SQL_NAME] == "ok"
    out = _obembed("db", "models", "drop", "--stale", "--db", str(folder))
    assert out.returncode == 0, out.stderr
    assert "obembed_indb_gone" in out.stdout
    names = {r.name for r in store.ai_models()}
    assert "obembed_indb_gone" not in names
    assert SQL_NAME in names
    rows, _ = store.execute("SELECT COUNT(*) FROM oceanbase.DBA_OB_AI_MODELS WHERE NAME = 'obembed_indb_gone'")
    assert rows[0][0] == 0


def test_wrong_key_gives_401_through_sql(kb: Any, minilm: Any) -> None:
    _, store, _, _, url = kb
    regs = store.register_model(url + "/v1/embeddings", minilm, name="obembed_wrongkey",
                                served_name="all-MiniLM-L6-v2")
    try:
        assert _sql_vector(store, "obembed_wrongkey", "hello").shape == (384,)  # its own key works
        store.execute("CALL DBMS_AI_SERVICE.ALTER_AI_MODEL_ENDPOINT(%s, %s)",
                      (regs[0].endpoint, json.dumps({"access_key": "obk_not-the-key"})), fetch=False)
        with pytest.raises(StoreError, match="401"):
            _sql_vector(store, "obembed_wrongkey", "hello")
        report = {r["name"]: r for r in check_models(store)}
        assert report["obembed_wrongkey"]["ok"] is False
        assert "401" in report["obembed_wrongkey"]["error"]
        assert report[SQL_NAME]["ok"] is True
        assert report[SQL_NAME]["dimension"] == 384
        # a plain HTTP client without a key is refused too
        req = urllib.request.Request(url + "/v1/embeddings", data=b'{"input": ["x"]}',
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 401
    finally:
        store.drop_ai_models(["obembed_wrongkey"])


def test_killed_server_gives_the_documented_error_and_loses_nothing(kb: Any) -> None:
    folder, store, coll, proc, _ = kb
    before = sorted((r["id"], r["content"]) for b in coll.iter_rows(include_vectors=False) for r in b)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    with pytest.raises(StoreError, match=r"4216.*curl error"):
        store.execute(f"INSERT INTO `{COLL}` (id, content, embedding) VALUES ('sql2', 'x', AI_EMBED(%s, 'x'))",
                      (SQL_NAME,), fetch=False)
    after = sorted((r["id"], r["content"]) for b in coll.iter_rows(include_vectors=False) for r in b)
    assert after == before
    assert ("sql1", "A lighthouse keeper polishes the great lens every evening.") in after
    out = _obembed("db", "models", "check", "--db", str(folder), "--json")
    assert out.returncode == 1
    report = {r["name"]: r for r in json.loads(out.stdout)}
    assert report[SQL_NAME]["ok"] is False
    assert "curl error" in report[SQL_NAME]["error"]
    assert Path(folder).is_dir()
