"""The server: 404s that hide what --collection hides, hybrid /search through the served model's
batcher, thumbnails that are 404 (not 500) for broken images and URLs that survive odd ids, serve --db vs
$OBEMBED_DSN."""

from __future__ import annotations

import socket
from io import BytesIO
from typing import Any

import pytest


@pytest.fixture
def client_for(minilm, store):
    """``client_for(**config)``: a TestClient of a fresh app on the session store and the real MiniLM."""
    from fastapi.testclient import TestClient

    from obembed.server.app import ServerConfig, create_app

    clients: list[Any] = []

    def make(**cfg: Any) -> Any:
        app = create_app([("minilm", minilm)], config=ServerConfig(**cfg), store=store)
        c = TestClient(app)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_404_for_a_served_but_missing_collection_names_nothing_hidden(client_for, docs_collection, image_collection):
    c = client_for(collections=(docs_collection, "ghost_coll"))
    for r in (c.post("/search", json={"collection": "ghost_coll", "query": "cat"}),
              c.get("/thumbnail", params={"collection": "ghost_coll", "id": "x"})):
        assert r.status_code == 404, r.text
        assert "ghost_coll" in r.text
        assert image_collection not in r.text  # exists in the store, hidden by --collection
        assert "Store(" not in r.text
        assert "known:" not in r.text
    r = c.post("/search", json={"collection": image_collection, "query": "cat"})
    assert r.status_code == 404
    assert image_collection in r.text
    assert "ghost_coll" in r.text


def test_hybrid_search_embeds_through_the_served_model(client_for, store, minilm, make_collection_name,
                                                       monkeypatch):
    name = make_collection_name("hyb")
    coll = store.create_collection(name, minilm, fulltext=True)
    texts = {"h1": "the cat sleeps on the warm windowsill", "h2": "stock markets fell sharply today",
             "h3": "a recipe for tomato soup"}
    vecs = minilm.embed_documents(list(texts.values()))
    coll.upsert([{"id": i, "vector": v, "content": t} for (i, t), v in zip(texts.items(), vecs, strict=True)])
    built: list[str] = []

    def factory(spec: str, **options: Any) -> Any:
        built.append(spec)
        raise AssertionError("the server loaded a second copy of the model")

    monkeypatch.setattr(store, "provider_factory", factory)
    monkeypatch.setattr(store, "_providers", {})  # no cached provider either
    c = client_for()
    r = c.post("/search", json={"collection": name, "query": "cat sleeping by the window", "k": 2, "hybrid": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hits"][0]["id"] == "h1"
    assert body["model"] == "minilm"
    assert built == []


@pytest.fixture
def odd_image_collection(store, minilm, tmp_path, make_collection_name):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.new("RGB", (64, 48), "green").save(good)
    full = BytesIO()
    Image.effect_noise((400, 400), 64).convert("RGB").save(full, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.getvalue()[: len(full.getvalue()) // 2])  # truncated mid-stream
    name = make_collection_name("img")
    coll = store.create_collection(name, minilm)
    v = minilm.embed_documents(["a green picture"])[0]
    coll.upsert([{"id": "a b&c=d", "vector": v, "content": "a green picture", "source": str(good)},
                 {"id": "cut", "vector": v, "content": "a truncated picture", "source": str(cut)}])
    return name


def test_thumbnail_of_a_truncated_image_is_404(client_for, odd_image_collection):
    c = client_for()
    r = c.get("/thumbnail", params={"collection": odd_image_collection, "id": "cut"})
    assert r.status_code == 404, r.text
    assert "cannot be read" in r.json()["error"]["message"]


def test_thumbnail_url_is_encoded(client_for, odd_image_collection):
    c = client_for()
    r = c.post("/search", json={"collection": odd_image_collection, "query": "green picture", "k": 2})
    assert r.status_code == 200, r.text
    hit = next(h for h in r.json()["hits"] if h["id"] == "a b&c=d")
    assert "id=a+b%26c%3Dd" in hit["thumbnail"]
    t = c.get(hit["thumbnail"])
    assert t.status_code == 200, t.text
    assert t.headers["content-type"] == "image/jpeg"


# ------------------------------------------------------------------------------------------- serve --db vs DSN
def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_serve_db_and_dsn_together_is_a_usage_error(tmp_path, monkeypatch, minilm):
    from click.testing import CliRunner

    import obembed.cli.serve as serve_mod

    monkeypatch.setattr(serve_mod, "load_provider", lambda spec, options, purpose: minilm)
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)  # never serve for real here
    r = CliRunner().invoke(serve_mod.serve, ["--db", str(tmp_path / "x.db"), "--dsn", "mysql://u:pw@127.0.0.1:1/db"])
    assert r.exit_code == 2
    assert "not both" in r.output


def test_serve_db_wins_over_the_dsn_variable(tmp_path, monkeypatch, minilm):
    """--db with $OBEMBED_DSN set opens the embedded store in --db (the DSN points at a closed port)."""
    from click.testing import CliRunner

    import obembed.cli.serve as serve_mod

    monkeypatch.setenv("OBEMBED_DSN", f"mysql://app@tenant:env-Secret@127.0.0.1:{_closed_port()}/obembed")
    from obembed.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setattr(serve_mod, "load_provider", lambda spec, options, purpose: minilm)
    apps: list[Any] = []
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    db = tmp_path / "served.db"
    r = CliRunner().invoke(serve_mod.serve, ["--db", str(db)])
    assert r.exit_code == 0, r.output
    state = apps[0].state.obembed
    try:
        s = state.store()
        assert s.mode == "embedded"
        assert s.path == db.resolve()
    finally:
        state.close()
