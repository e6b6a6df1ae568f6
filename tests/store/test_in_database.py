"""In-database models: the real ``obembed serve --register`` (a second process on this session's store: the
embedded seekdb folder, or the seekdb server of OBEMBED_TEST_DSN in the DSN pass) answers the engine's ``AI_EMBED``
and ``AI_RERANK``. SQL's vectors equal the Python API's (document and query prompts), SQL's rerank equals the
Python reranker's, rows SQL writes are found by ``obembed search`` and ``Collection.search``, a dropped
registration's key is refused by the running server, bad names and URLs are refused with nothing changed, and the
faults (wrong key, dimension, server killed) give the documented errors.

One server for the module (MiniLM, MiniLM with a query prompt, a tiny cross-encoder); the fault that kills it runs
last."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import obembed
from obembed.errors import ConfigError, DimensionMismatchError, StoreError, redact
from obembed.providers.rerank import load_reranker
from obembed.store.ai_models import NAME_MAX, check_models, check_url, server_urls
from tests.server.serverkit import DOCS, cosine

pytestmark = pytest.mark.seekdb

RUN = uuid.uuid4().hex[:6]  # a DSN database outlives the run: names of this run only
COLL = f"indb_docs_{RUN}"
COLLQ = f"indb_prompted_{RUN}"
SQL_NAME = f"obembed_{COLL}"
SQL_Q = f"obembed_{COLLQ}"
QUERY_PROMPT = "query: "
QUERIES = ["a database with vector search", "animals resting in the sun", "mountains"]


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


def _prompted_minilm(folder: Path, minilm_path: Path) -> Path:
    """The bundled MiniLM with a saved query prompt (``query: ``): its files linked, its prompts file written."""
    folder.mkdir(parents=True)
    for f in minilm_path.iterdir():
        if f.name != "config_sentence_transformers.json":
            (folder / f.name).symlink_to(f)
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": QUERY_PROMPT, "document": ""}, "default_prompt_name": None,
         "similarity_fn_name": "cosine"}))
    return folder


@dataclass
class KB:
    store: Any
    target: list[str]  # --db FOLDER or --dsn DSN, for the CLI
    coll: Any
    collq: Any
    prompted: Any  # the prompted provider, in this process
    reranker: Any  # the cross-encoder, in this process
    reranker_spec: str
    rerank_name: str  # its registration's SQL name
    proc: subprocess.Popen[bytes]
    url: str


@pytest.fixture(scope="module")
def kb(store: Any, store_test_dsn: str | None, minilm: Any, minilm_path: Path, builders: Any,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[KB]:
    """Two collections of DOCS (MiniLM; MiniLM with a query prompt) in the session store, and the real
    ``obembed serve --register`` on 127.0.0.1 serving both models and a tiny cross-encoder on the same store."""
    tmp = tmp_path_factory.mktemp("indb")
    prompted_dir = _prompted_minilm(tmp / "minilm-q", minilm_path)
    ce_dir = builders.build_cross_encoder(tmp / "minilm-ce", minilm_path)
    prompted = obembed.load(f"st:{prompted_dir}", runtime="torch", device="cpu")
    assert prompted.query_prefix == QUERY_PROMPT
    reranker = load_reranker(f"cross-encoder:{ce_dir}").load()
    texts = [d[1] for d in DOCS]
    coll = store.create_collection(COLL, minilm)
    coll.upsert([{"id": i, "vector": v, "content": t}
                 for (i, t, _, _), v in zip(DOCS, minilm.embed_documents(texts), strict=True)])
    collq = store.create_collection(COLLQ, prompted)
    collq.upsert([{"id": i, "vector": v, "content": t}
                  for (i, t, _, _), v in zip(DOCS, prompted.embed_documents(texts), strict=True)])
    target = ["--dsn", store_test_dsn] if store_test_dsn else ["--db", str(store.path)]
    port = _free_port()
    log_path = tmp / "serve.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from obembed.cli import main; main()", "serve", "-m", "st:all-MiniLM-L6-v2",
         "-m", f"st:{prompted_dir}", "--rerank-model", f"cross-encoder:{ce_dir}", *target, "--port", str(port),
         "--collection", COLL, "--collection", COLLQ, "--register", "--batch-wait-ms", "5", "--log-level", "warning"],
        env=_cli_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # three models to load; a loaded 2-core machine took 300 s
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("obembed serve did not start: " + log_path.read_text()[-3000:]) from None
            time.sleep(0.3)
    try:
        yield KB(store, target, coll, collq, prompted, reranker, f"cross-encoder:{ce_dir}", "obembed_minilm_ce", proc,
                 url)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        mine = [r.name for r in store.ai_models() if RUN in r.name or r.name == "obembed_minilm_ce"]
        if mine:
            store.drop_ai_models(mine)
        store.drop_collection(COLL, missing_ok=True)
        store.drop_collection(COLLQ, missing_ok=True)


def _sql_vector(store: Any, name: str, text: str) -> np.ndarray:
    rows, _ = store.execute("SELECT AI_EMBED(%s, %s)", (name, text))
    return np.asarray(json.loads(rows[0][0]), np.float32)


def _engine_state(store: Any) -> tuple[Any, ...]:
    """Everything a registration could change: obembed's records (with key hashes), the engine's models and
    endpoints (with URLs)."""
    regs = sorted((r.name, r.kind, r.collection, r.url, r.key_sha256, r.status) for r in store.ai_models())
    models = sorted(store.execute("SELECT NAME, MODEL_NAME FROM oceanbase.DBA_OB_AI_MODELS")[0])
    eps = sorted(store.execute("SELECT ENDPOINT_NAME, AI_MODEL_NAME, URL FROM oceanbase.DBA_OB_AI_MODEL_ENDPOINTS")[0])
    return regs, models, eps


# ---------------------------------------------------------------------------------------------- registration
def test_serve_register_records_the_collection_models_and_the_reranker(kb: KB) -> None:
    regs = {r.name: r for r in kb.store.ai_models()}
    reg = regs[SQL_NAME]
    assert (reg.collection, reg.dimension, reg.space, reg.status) == (COLL, 384, kb.coll.space, "ok")
    assert reg.url == kb.url + "/v1/embeddings"
    assert reg.kind == "document"
    assert SQL_NAME + "_query" not in regs  # MiniLM has no prompts: one name
    # the prompted model: both names, same collection, document then query
    assert (regs[SQL_Q].kind, regs[SQL_Q + "_query"].kind) == ("document", "query")
    assert regs[SQL_Q + "_query"].collection == COLLQ
    assert regs[SQL_Q + "_query"].status == "ok"
    rr = regs[kb.rerank_name]
    assert (rr.kind, rr.url, rr.status, rr.model_name) == ("rerank", kb.url + "/v1/rerank", "ok", "minilm-ce")
    # the engine holds a dedicated random key: not empty, and the server accepts it (only its hash is recorded)
    rows, _ = kb.store.execute("SELECT ACCESS_KEY FROM oceanbase.DBA_OB_AI_MODEL_ENDPOINTS WHERE ENDPOINT_NAME = %s",
                               (reg.endpoint,))
    key = rows[0][0]
    assert key.startswith("obk_")
    assert len(key) > 30
    assert key not in repr(reg)


def test_ai_embed_equals_the_python_api(kb: KB, minilm: Any) -> None:
    for text in ["OceanBase stores vectors", "東京は日本の首都です。"]:
        sql = _sql_vector(kb.store, SQL_NAME, text)
        assert sql.shape == (384,)
        assert cosine(sql, minilm.embed_documents([text])[0]) >= 0.9999
        assert cosine(sql, minilm.embed_query(text)) >= 0.9999


def test_query_prompt_name_gives_the_query_vector(kb: KB) -> None:
    for text in ["which mountain is the highest", "東京"]:
        doc_sql = _sql_vector(kb.store, SQL_Q, text)
        query_sql = _sql_vector(kb.store, SQL_Q + "_query", text)
        assert cosine(doc_sql, kb.prompted.embed_documents([text])[0]) >= 0.9999
        assert cosine(query_sql, kb.prompted.embed_query(text)) >= 0.9999
        assert cosine(query_sql, doc_sql) < 0.999  # the prompt changes the vector: the two names differ
    for query in QUERIES:
        rows, _ = kb.store.execute(
            f"SELECT id FROM `{COLLQ}` ORDER BY cosine_distance(embedding, AI_EMBED(%s, %s)) APPROXIMATE LIMIT 5",
            (SQL_Q + "_query", query))
        assert [r[0] for r in rows] == [h.id for h in kb.collq.search(query, k=5)]


def test_row_inserted_by_sql_is_found_by_search(kb: KB, minilm: Any) -> None:
    text = "A lighthouse keeper polishes the great lens every evening."
    kb.store.execute(f"INSERT INTO `{COLL}` (id, content, embedding) VALUES (%s, %s, AI_EMBED(%s, %s))",
                     ("sql1", text, SQL_NAME, text), fetch=False)
    hits = kb.coll.search("lighthouse keeper lens", k=3)
    assert hits[0].id == "sql1"
    stored = kb.coll.get("sql1", include_vectors=True)[0]["vector"]
    assert cosine(stored, minilm.embed_documents([text])[0]) >= 0.9999
    out = _obembed("search", "lighthouse keeper lens", "-c", COLL, *kb.target, "-k", "3", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["hits"][0]["id"] == "sql1"


def test_sql_order_by_ai_embed_gives_the_search_ids(kb: KB) -> None:
    for query in QUERIES:
        rows, _ = kb.store.execute(
            f"SELECT id FROM `{COLL}` ORDER BY cosine_distance(embedding, AI_EMBED(%s, %s)) APPROXIMATE LIMIT 10",
            (SQL_NAME, query))
        assert [r[0] for r in rows] == [h.id for h in kb.coll.search(query, k=10)]


def test_ai_rerank_equals_the_python_reranker(kb: KB) -> None:
    query = "which mountain is the highest"
    docs = [d[1] for d in DOCS]
    rows, _ = kb.store.execute("SELECT AI_RERANK(%s, %s, %s)", (kb.rerank_name, query, json.dumps(docs)))
    got = json.loads(rows[0][0])
    want = kb.reranker.rerank(query, docs)
    assert [g["index"] for g in got] == [h.index for h in want]
    assert [g["relevance_score"] for g in got] == pytest.approx([h.score for h in want], abs=1e-4)
    # the recipe: search in SQL, rerank the hits in SQL (document_key: the engine returns the rows' objects)
    rows, _ = kb.store.execute(
        "SELECT AI_RERANK(%s, %s, JSON_ARRAYAGG(JSON_OBJECT('id', id, 'content', content)), 'content') FROM "
        f"(SELECT id, content FROM `{COLL}` ORDER BY cosine_distance(embedding, AI_EMBED(%s, %s)) "
        "APPROXIMATE LIMIT 4) hits", (kb.rerank_name, query, SQL_NAME, query))
    got = json.loads(rows[0][0])
    hits = kb.coll.search(query, k=4)
    want = kb.reranker.rerank(query, [h.content for h in hits])
    assert [g["id"] for g in got] == [hits[h.index].id for h in want]
    assert [g["_model_score"] for g in got] == pytest.approx([h.score for h in want], abs=1e-4)


def test_reregistration_is_idempotent(kb: KB, minilm: Any) -> None:
    before = {r.name: r.key_sha256 for r in kb.store.ai_models()}
    regs = kb.store.register_model(kb.url + "/v1/embeddings", minilm, collection=COLL)  # the server's default name
    assert [r.name for r in regs] == [SQL_NAME]
    assert regs[0].key is None
    regs = kb.store.register_reranker(kb.url + "/v1/rerank", kb.reranker)
    assert [(r.name, r.key) for r in regs] == [(kb.rerank_name, None)]
    # the CLI, another process, with the server's bare URL: the same registration, unchanged
    out = _obembed("db", "models", "register", "--url", kb.url, "--rerank-model", kb.reranker_spec, *kb.target,
                   "--json")
    assert out.returncode == 0, out.stderr
    assert [(r["name"], r["kind"], r["url"], r["new"]) for r in json.loads(out.stdout)] == \
        [(kb.rerank_name, "rerank", kb.url + "/v1/rerank", False)]
    assert {r.name: r.key_sha256 for r in kb.store.ai_models()} == before


def test_dimension_mismatch_is_refused_naming_both(kb: KB, minilm: Any) -> None:
    small = f"indb_small_{RUN}"
    kb.store.create_collection(small, 8)
    try:
        before = _engine_state(kb.store)
        with pytest.raises(DimensionMismatchError, match=r"384-d.*VECTOR\(8\)"):
            kb.store.register_model(kb.url + "/v1/embeddings", minilm, collection=small)
        assert _engine_state(kb.store) == before
    finally:
        kb.store.drop_collection(small)


def test_a_name_held_elsewhere_is_refused_and_kept(kb: KB, minilm: Any) -> None:
    before = _engine_state(kb.store)
    # held by another collection's registration
    with pytest.raises(ConfigError, match=rf"{SQL_NAME}.*registered for collection '{COLL}'.*drop"):
        kb.store.register_model(kb.url + "/v1/embeddings", kb.prompted, collection=COLLQ, name=SQL_NAME)
    # held by the reranker
    with pytest.raises(ConfigError, match=rf"{kb.rerank_name}.*registered for model"):
        kb.store.register_model(kb.url + "/v1/embeddings", minilm, name=kb.rerank_name)
    assert _engine_state(kb.store) == before
    # an AI model obembed did not make (the user's own): refused, not replaced
    theirs = f"their_model_{RUN}"
    kb.store.execute("CALL DBMS_AI_SERVICE.CREATE_AI_MODEL(%s, %s)",
                     (theirs, json.dumps({"type": "dense_embedding", "model_name": "cloud-model"})), fetch=False)
    try:
        before = _engine_state(kb.store)
        with pytest.raises(ConfigError, match=rf"already has an AI model named '{theirs}'.*obembed did not"):
            kb.store.register_model(kb.url + "/v1/embeddings", minilm, name=theirs)
        assert _engine_state(kb.store) == before
    finally:
        kb.store.execute("CALL DBMS_AI_SERVICE.DROP_AI_MODEL(%s)", (theirs,), fetch=False)


# ---------------------------------------------------------------------------------------------- bad input
_GOOD_NAME = r"[a-z][a-z0-9_]{0," + str(NAME_MAX - 1) + "}"
_bad_names = st.one_of(
    st.text(max_size=70).filter(lambda s: not re.fullmatch(_GOOD_NAME, s)),
    st.text("abcxyz019_", min_size=NAME_MAX, max_size=NAME_MAX + 12).map(lambda s: "o" + s),  # too long
    st.sampled_from(["Docs", "1abc", "_abc", "a-b", "a b", "abc\n", "abc;drop", "ab`c", "docs\x00", "ünï"]),
)
_base = st.sampled_from(["http://127.0.0.1:8000", "https://obembed.example:8443", "http://[::1]:9000",
                         "http://10.0.0.7"])
_bad_urls = st.one_of(
    st.text(max_size=60).filter(lambda s: not s.startswith(("http://", "https://"))),  # no http(s) URL at all
    st.builds(lambda scheme, rest: scheme + "://127.0.0.1:8000" + rest,
              st.sampled_from(["ftp", "file", "ws", "javascript", "gopher"]), st.just("/v1/embeddings")),
    st.builds(lambda b, p: b + p, _base, st.text("abcv1/_-.", max_size=30).filter(
        lambda p: not p.rstrip("/").endswith("/v1/embeddings"))),  # not the embeddings endpoint
    st.builds(lambda b, c, i: (b + "/v1/embeddings")[:i] + c + (b + "/v1/embeddings")[i:], _base,
              st.sampled_from([" ", "\t", "\n", "\x00", "\x7f", '"', "<", "\\", "{", "é", "東", "\u2028"]),
              st.integers(0, 40)),  # a character a URL cannot hold
    st.builds(lambda b, s: b + "/v1/embeddings" + s, _base, st.sampled_from(["?a=1", "#frag", "?", "#"])),
    st.builds(lambda p: f"http://127.0.0.1:{p}/v1/embeddings", st.sampled_from(["0", "99999", "abc", "-1", "8o"])),
    st.just("http:///v1/embeddings"),  # no host
    st.builds(lambda n: "http://127.0.0.1:8000/" + "a" * n + "/v1/embeddings", st.integers(1010, 1100)),
)


@given(name=_bad_names)
def test_bad_names_are_refused_naming_them(store: Any, minilm: Any, name: str) -> None:
    before = _engine_state(store)
    with pytest.raises(ConfigError) as err:
        store.register_model("http://127.0.0.1:8000/v1/embeddings", minilm, name=name)
    msg = str(err.value)
    assert f"AI model name {repr(redact(name))[:60]}" in msg
    assert "lower-case letters" in msg
    assert _engine_state(store) == before


@given(url=_bad_urls, rerank=st.booleans())
def test_bad_urls_are_refused_naming_them(store: Any, minilm: Any, url: str, rerank: bool) -> None:
    before = _engine_state(store)
    shown = url.replace("/v1/embeddings", "/v1/rerank") if rerank else url
    register = (lambda: store.register_reranker(shown, "cross-encoder:unused/model", name="obembed_prop_rr")) \
        if rerank else (lambda: store.register_model(url, minilm, name="obembed_prop"))
    with pytest.raises(ConfigError) as err:
        register()
    msg = str(err.value)
    assert f"registration URL {repr(redact(shown))[:60]}" in msg
    assert "/v1/rerank" in msg if rerank else "/v1/embeddings" in msg  # the fix names the endpoint
    assert _engine_state(store) == before


@given(scheme=st.sampled_from(["http", "https"]),
       host=st.sampled_from(["127.0.0.1", "localhost", "[::1]", "obembed.internal", "10.1.2.3"]),
       port=st.one_of(st.none(), st.integers(1, 65535)),
       prefix=st.lists(st.text("abcxyz019-_.~%", min_size=1, max_size=8), max_size=2).map(
           lambda parts: "".join("/" + p for p in parts)),
       slash=st.booleans())
def test_good_urls_are_accepted_as_given(scheme: str, host: str, port: int | None, prefix: str, slash: bool) -> None:
    base = f"{scheme}://{host}{'' if port is None else f':{port}'}{prefix}"
    for path in ("/v1/embeddings", "/v1/rerank"):
        assert check_url(base + path + ("/" if slash else ""), path) == base + path  # only a trailing / goes
    assert server_urls(base) == server_urls(base + "/v1/embeddings") == server_urls(base + "/v1/rerank/") == \
        (base + "/v1/embeddings", base + "/v1/rerank")


@given(password=st.text("abcdefXYZ0123456789!$*+", min_size=6, max_size=20))
def test_a_url_with_credentials_is_refused_without_showing_them(store: Any, minilm: Any, password: str) -> None:
    before = _engine_state(store)
    with pytest.raises(ConfigError, match="no user or password") as err:
        store.register_model(f"http://admin:{password}@127.0.0.1:8000/v1/embeddings", minilm, name="obembed_prop")
    assert password not in str(err.value)
    assert _engine_state(store) == before


# ---------------------------------------------------------------------------------------------- keys and faults
def test_stale_registrations_are_listed_and_dropped(kb: KB, minilm: Any) -> None:
    gone_coll = f"indb_gone_{RUN}"
    gone = kb.store.create_collection(gone_coll, minilm)
    assert gone.dimension == 384
    kb.store.register_model(kb.url + "/v1/embeddings", minilm, collection=gone_coll,
                            served_name="all-MiniLM-L6-v2")
    kb.store.drop_collection(gone_coll)
    status = {r.name: r.status for r in kb.store.ai_models()}
    assert status[f"obembed_{gone_coll}"].startswith(f"stale: collection '{gone_coll}' no longer exists")
    assert status[SQL_NAME] == "ok"
    out = _obembed("db", "models", "drop", f"obembed_{gone_coll}", *kb.target)
    assert out.returncode == 0, out.stderr
    assert f"obembed_{gone_coll}" in out.stdout
    names = {r.name for r in kb.store.ai_models()}
    assert f"obembed_{gone_coll}" not in names
    assert SQL_NAME in names
    rows, _ = kb.store.execute("SELECT COUNT(*) FROM oceanbase.DBA_OB_AI_MODELS WHERE NAME = %s",
                               (f"obembed_{gone_coll}",))
    assert rows[0][0] == 0


def _post(url: str, key: str | None) -> int:
    """POST /v1/embeddings with ``key`` (None: no Authorization header); the HTTP status."""
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    req = urllib.request.Request(url + "/v1/embeddings", data=b'{"input": ["x"], "model": "all-MiniLM-L6-v2"}',
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_a_dropped_registrations_key_is_refused_by_the_running_server(kb: KB, minilm: Any) -> None:
    name = f"obembed_revoke_{RUN}"
    regs = kb.store.register_model(kb.url + "/v1/embeddings", minilm, name=name, served_name="all-MiniLM-L6-v2")
    key = regs[0].key
    assert key is not None
    assert _sql_vector(kb.store, name, "hello").shape == (384,)  # a key registered while the server runs: at once
    assert _post(kb.url, key) == 200
    assert kb.store.drop_ai_models([name]) == [name]  # this process; the server is another one
    assert _post(kb.url, key) == 401  # at once
    # the registrations left are still served
    assert _sql_vector(kb.store, SQL_NAME, "hello").shape == (384,)


def test_wrong_key_gives_401_through_sql(kb: KB, minilm: Any) -> None:
    name = f"obembed_wrongkey_{RUN}"
    regs = kb.store.register_model(kb.url + "/v1/embeddings", minilm, name=name, served_name="all-MiniLM-L6-v2")
    try:
        assert _sql_vector(kb.store, name, "hello").shape == (384,)  # its own key works
        kb.store.execute("CALL DBMS_AI_SERVICE.ALTER_AI_MODEL_ENDPOINT(%s, %s)",
                         (regs[0].endpoint, json.dumps({"access_key": "obk_not-the-key"})), fetch=False)
        with pytest.raises(StoreError, match="401"):
            _sql_vector(kb.store, name, "hello")
        report = {r["name"]: r for r in check_models(kb.store)}
        assert report[name]["ok"] is False
        assert "401" in report[name]["error"]
        assert report[SQL_NAME]["ok"] is True
        assert report[SQL_NAME]["dimension"] == 384
        assert report[SQL_Q + "_query"]["ok"] is True
        assert (report[kb.rerank_name]["ok"], report[kb.rerank_name]["scored"]) == (True, 2)
        assert _post(kb.url, None) == 401  # a plain HTTP client without a key is refused too
    finally:
        kb.store.drop_ai_models([name])


def test_killed_server_gives_the_documented_error_and_loses_nothing(kb: KB) -> None:
    before = sorted((r["id"], r["content"]) for b in kb.coll.iter_rows(include_vectors=False) for r in b)
    kb.proc.send_signal(signal.SIGKILL)
    kb.proc.wait(30)
    with pytest.raises(StoreError, match=r"4216.*curl error"):
        kb.store.execute(f"INSERT INTO `{COLL}` (id, content, embedding) VALUES ('sql2', 'x', AI_EMBED(%s, 'x'))",
                         (SQL_NAME,), fetch=False)
    after = sorted((r["id"], r["content"]) for b in kb.coll.iter_rows(include_vectors=False) for r in b)
    assert after == before
    assert ("sql1", "A lighthouse keeper polishes the great lens every evening.") in after
    out = _obembed("db", "models", "check", *kb.target, "--json")
    assert out.returncode == 1
    report = {r["name"]: r for r in json.loads(out.stdout)}
    for name in (SQL_NAME, SQL_Q + "_query", kb.rerank_name):
        assert report[name]["ok"] is False
        assert "curl error" in report[name]["error"]
