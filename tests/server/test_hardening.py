"""Hostile HTTP input (issue 20): lone surrogates, control characters, wrong types, deep nesting and foreign
``Host`` headers get a 4xx with a JSON error naming the item, never a 500; a correct request still gets its answer.

The property tests send raw JSON (``json.dumps`` writes a lone surrogate as the escape ``\\ud800``, as a hostile
client would) to the real server (uvicorn, real MiniLM, the session's embedded seekdb). Example counts come from
the hypothesis profile (tests/conftest.py): bounded here, OBEMBED_HYPOTHESIS_PROFILE=thorough for a deeper run.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from serverkit import run_server

SURROGATE = "a\ud800b"

# any Unicode code point, lone surrogates, NUL and control characters included
ANY_CHAR = st.characters(exclude_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def _post(http: httpx.Client, path: str, body: Any) -> httpx.Response:
    raw = json.dumps(body, ensure_ascii=True)  # surrogates travel as \\udXXX escapes
    return http.post(path, content=raw.encode("ascii"), headers={"content-type": "application/json"})


def _message(path: str, r: httpx.Response) -> str:
    """The error message of a 4xx answer (Ollama's form under /api/, OpenAI's elsewhere)."""
    body = r.json()
    msg = body["error"] if path.startswith("/api/") else body["error"]["message"]
    assert isinstance(msg, str)
    assert msg
    return msg


def _check_answer(path: str, body: Any, r: httpx.Response) -> None:
    """The invariant: never 5xx; a 4xx is JSON naming what is wrong; a surrogate anywhere is a 400 saying so."""
    assert r.status_code < 500, f"{path} {body!r:.300} -> {r.status_code}: {r.text[:300]}"
    if _has_surrogate(body):
        assert r.status_code == 400, f"{path} {body!r:.300} -> {r.status_code}"
        msg = _message(path, r)
        assert "lone surrogate" in msg or "nested more than" in msg, msg
        return
    if r.status_code >= 400:
        _message(path, r)
        return
    data = r.json()
    if path == "/v1/embeddings":
        n = 1 if isinstance(body.get("input"), str) else len(body["input"])
        assert len(data["data"]) == n
        dim = body.get("dimensions") or 384  # a valid `dimensions` (1..384) cuts the vectors
        assert all(len(d["embedding"]) == dim for d in data["data"])
    elif path == "/api/embed":
        assert all(len(v) == 384 for v in data["embeddings"])
    elif path == "/search":
        assert data["collection"] == body["collection"]
        assert len(data["hits"]) <= body.get("k", 10)


# ----------------------------------------------------------------------------------------- regressions
@pytest.mark.parametrize(("path", "body", "where"), [
    ("/v1/embeddings", {"input": SURROGATE}, "input contains"),
    ("/v1/embeddings", {"input": ["fine", SURROGATE]}, "input[1] contains"),
    ("/api/embed", {"model": "minilm", "input": ["fine", "ok", SURROGATE]}, "input[2] contains"),
    ("/api/embeddings", {"model": "minilm", "prompt": SURROGATE}, "prompt contains"),
    ("/search", {"collection": "c", "query": SURROGATE}, "query contains"),
    ("/search", {"collection": "c", "query": "ok", "filter": {"lang": SURROGATE}}, "filter.lang contains"),
    ("/search", {"collection": "c", "query": "ok", "filter": f"lang = '{SURROGATE}'"}, "filter contains"),
])
def test_a_lone_surrogate_is_a_400_naming_the_item(http, docs_collection, path, body, where):
    if body.get("collection") == "c":
        body = {**body, "collection": docs_collection}
    r = _post(http, path, body)
    assert r.status_code == 400, r.text
    msg = _message(path, r)
    assert where in msg
    assert "lone surrogate" in msg
    assert "\\ud800" in msg


def test_nul_and_control_characters_are_text(http, docs_collection):
    r = _post(http, "/v1/embeddings", {"input": ["a\x00b", "tab\there\x1b[0m"]})
    assert r.status_code == 200
    assert len(r.json()["data"]) == 2
    r = _post(http, "/search", {"collection": docs_collection, "query": "cat\x00", "filter": {"lang": "\x00"}})
    assert r.status_code == 200
    assert r.json()["hits"] == []


def test_deep_nesting_is_a_400(http, docs_collection):
    deep: Any = "x"
    for _ in range(60):
        deep = {"and": [deep]}
    r = _post(http, "/search", {"collection": docs_collection, "query": "q", "filter": deep})
    assert r.status_code == 400
    assert "nested more than" in _message("/search", r)


# ----------------------------------------------------------------------------------------- properties
ROUTES = ["/v1/embeddings", "/api/embed", "/api/embeddings", "/search"]


@st.composite
def bodies(draw: st.DrawFn, collection: str) -> tuple[str, Any]:
    """A route and a body: the right keys with values of any type (strings of any code points), or any JSON."""
    path = draw(st.sampled_from(ROUTES))
    texts = st.one_of(ANY_TEXT, st.lists(ANY_TEXT, max_size=4), JSON_VALUE,
                      st.integers(0, 3000).map(lambda n: "word " * n))  # up to 15,000 characters: over max_chars
    if path == "/v1/embeddings":
        body = {"input": draw(texts)}
        if draw(st.booleans()):
            body["dimensions"] = draw(st.one_of(st.integers(-3, 400), JSON_VALUE))
        if draw(st.booleans()):
            body["input_type"] = draw(st.one_of(st.sampled_from(["query", "document"]), JSON_VALUE))
    elif path == "/api/embed":
        body = {"model": draw(st.one_of(st.just("minilm"), JSON_VALUE)), "input": draw(texts)}
        if draw(st.booleans()):
            body["truncate"] = draw(st.one_of(st.booleans(), JSON_VALUE))
    elif path == "/api/embeddings":
        body = {"model": "minilm", "prompt": draw(st.one_of(ANY_TEXT, JSON_VALUE))}
    else:
        body = {"collection": draw(st.one_of(st.just(collection), ANY_TEXT, JSON_VALUE)),
                "query": draw(st.one_of(ANY_TEXT, JSON_VALUE)),
                "k": draw(st.one_of(st.integers(-5, 200), JSON_VALUE)),
                "filter": draw(st.one_of(st.none(), st.dictionaries(
                    st.one_of(st.sampled_from(["lang", "year", "and", "or", "not", "id"]), ANY_TEXT),
                    JSON_VALUE, max_size=3),
                                         ANY_TEXT, JSON_VALUE))}
    if draw(st.integers(0, 9)) == 0:
        body = draw(JSON_VALUE)  # not even an object
    return path, body


def test_property_any_json_body_is_answered_or_refused_clearly(http, docs_collection):
    @given(case=bodies(docs_collection))
    def check(case: tuple[str, Any]) -> None:
        path, body = case
        _check_answer(path, body, _post(http, path, body))

    check()


HOST_NAME = st.builds(lambda a, b, tld: f"{a}{b}.{tld}", st.sampled_from("abcxyz0189"),
                      st.text("abcdefghijklmnopqrstuvwxyz0123456789.-", max_size=24),
                      st.sampled_from(["example", "com", "io", "local", "lan", "localhost.example"]))
PORT = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))


def test_property_foreign_host_names_are_refused(http):
    @given(name=HOST_NAME, port=PORT, upper=st.booleans())
    def check(name: str, port: str, upper: bool) -> None:
        host = (name.upper() if upper else name) + port
        r = http.get("/collections", headers={"Host": host})
        assert r.status_code == 400, (host, r.status_code)
        err = r.json()["error"]
        assert err["code"] == "host_not_allowed"
        assert err["param"] == "Host"
        assert "--allowed-host" in err["message"]
        assert host[:60] in err["message"]

    check()


def test_property_loopback_names_are_served(http):
    @given(name=st.sampled_from(["localhost", "127.0.0.1", "[::1]", "LocalHost", "127.1.2.3", "localhost."]),
           port=PORT)
    def check(name: str, port: str) -> None:
        r = http.get("/health", headers={"Host": name + port})
        assert r.status_code == 200, (name + port, r.text)

    check()


def test_property_any_host_header_never_500(http):
    @given(host=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80))
    def check(host: str) -> None:
        r = http.get("/health", headers={"Host": host})
        assert r.status_code in (200, 400), (host, r.status_code)
        if r.status_code == 400 and r.headers.get("content-type") == "application/json":
            assert r.json()["error"]["code"] == "host_not_allowed"

    check()


# ----------------------------------------------------------------------------------------- Host: regressions
def test_dns_rebinding_page_cannot_list_or_search(http, docs_collection):
    """A page on evil.example whose name now resolves to 127.0.0.1 sends Host: evil.example:PORT."""
    for method, path, kw in [("GET", "/collections", {}),
                             ("POST", "/search", {"json": {"collection": docs_collection, "query": "cat"}}),
                             ("GET", "/", {})]:
        r = http.request(method, path, headers={"Host": "evil.example:8000"}, **kw)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "host_not_allowed"
    assert http.get("/collections").status_code == 200  # the real name still works


def test_allowed_host_option_admits_a_proxy_name(minilm):
    from obembed.server.app import ServerConfig, create_app

    app = create_app([("minilm", minilm)], config=ServerConfig(allowed_hosts=("search.internal",)))
    with run_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert c.get("/health", headers={"Host": "search.internal:443"}).status_code == 200
        assert c.get("/health", headers={"Host": "Search.Internal"}).status_code == 200
        assert c.get("/health", headers={"Host": "other.internal"}).status_code == 400
    app = create_app([("minilm", minilm)], config=ServerConfig(allowed_hosts=("*",)))
    with run_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert c.get("/health", headers={"Host": "anything.example"}).status_code == 200



# ----------------------------------------------------------------------------------------- thumbnails (defect 6)
def test_concurrent_thumbnails_of_a_large_png_render_once(app, http, store, minilm, tmp_path):
    """Four concurrent requests for the thumbnail of a large single-colour PNG share one bounded render; later
    requests come from the cache; the JPEG's longer side is the snapped size."""
    import io
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(big)
    name = f"srv_big_{uuid.uuid4().hex[:8]}"
    coll = store.create_collection(name, minilm)
    coll.upsert([{"id": "big", "vector": minilm.embed_documents(["a red picture"])[0], "source": str(big)}])
    thumbs = app.state.obembed.thumbnails
    before = thumbs.renders
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: http.get("/thumbnail", params={"collection": name, "id": "big",
                                                                             "size": 200}), range(4)))
        assert [r.status_code for r in answers] == [200] * 4
        assert len({r.content for r in answers}) == 1
        assert thumbs.renders == before + 1
        im = Image.open(io.BytesIO(answers[0].content))
        assert im.format == "JPEG"
        assert im.size == (256, 192)  # 200 snaps up to 256; aspect kept
        assert im.getpixel((128, 96))[0] > 150  # still red
        assert http.get("/thumbnail", params={"collection": name, "id": "big"}).content == answers[0].content
        assert thumbs.renders == before + 1  # served from the cache
    finally:
        store.drop_collection(name)


# ----------------------------------------------------------------------------------------- hit labels
def test_source_label_is_the_cli_rule(tmp_path, monkeypatch):
    from obembed.store.base import source_label

    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "data" / "packages-en.jsonl"
    assert source_label(str(inside), {"id": "evince"}) == "data/packages-en.jsonl#evince"
    assert source_label("/srv/elsewhere/packages-en.jsonl", {"id": "evince"}) == "packages-en.jsonl#evince"
    assert source_label("/srv/elsewhere/notes.txt", {"line": 12}) == "notes.txt#L12"
    assert source_label("/srv/elsewhere/notes.txt", {}) == "notes.txt"
    assert source_label(str(inside), {"id": "x"}, max_width=10) == "packages-en.jsonl#x"


def test_search_hits_carry_the_label(http, docs_collection):
    hits = http.post("/search", json={"collection": docs_collection, "query": "Fuji"}).json()["hits"]
    assert {h["label"] for h in hits} == {f"docs/{i}.txt" for i in ("d1", "d2", "d3", "d4", "d5")}
