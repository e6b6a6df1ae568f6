"""``POST /search`` with ``mode``, ``weights``, ``rerank`` and ``candidates``: the same ids in the same order as
``Collection.search`` with those arguments in Python (the policy lives there), on the real embedded seekdb with the
served MiniLM and a reranker built from it; bad modes and a missing reranker are 400s naming the fix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serverkit import run_server

pytestmark = pytest.mark.seekdb

TEXTS = [
    "a tiling window manager for X11", "command line tool to resize images", "read email in a terminal",
    "fast web server for static files", "play music from the command line", "edit photos with layers",
    "library for parsing JSON", "backup files to a remote server", "monitor the temperature of the CPU",
    "a spreadsheet program", "compile C code quickly", "database for time series", "terminal music player",
    "image viewer for the terminal", "JSON command line processor",
]
QUERIES = ["terminal music", "resize images on the command line", "JSON tool"]


@pytest.fixture(scope="module")
def modes_collection(store: Any, minilm: Any) -> Iterator[str]:
    name = f"srv_modes_{uuid.uuid4().hex[:8]}"
    coll = store.create_collection(name, minilm, fulltext="space")
    vecs = minilm.embed_documents(TEXTS)
    coll.upsert([{"id": f"t{i:02d}", "vector": v, "content": t} for i, (t, v) in enumerate(zip(TEXTS, vecs,
                                                                                                  strict=True))])
    yield name
    store.drop_collection(name)


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path, builders: Any) -> Path:
    return builders.build_cross_encoder(tmp_path_factory.mktemp("ce") / "minilm-ce", minilm_path)


@pytest.fixture(scope="module")
def rerank_http(minilm: Any, store: Any, server_config: Any, cross_encoder: Path) -> Iterator[Any]:
    """A server with a reranker (``serve --rerank-model``), over the session store."""
    import httpx

    from obembed.server.app import create_app

    app = create_app([("minilm", minilm)], config=server_config, store=store,
                     reranker=f"cross-encoder:{cross_encoder}")
    with run_server(app) as url, httpx.Client(base_url=url, timeout=120) as c:
        yield c


def _ids(hits: list[Any]) -> list[str]:
    return [h.id if hasattr(h, "id") else h["id"] for h in hits]


@pytest.mark.parametrize(("request_", "python"), [
    ({"mode": "fulltext"}, {"mode": "fulltext"}),
    ({"mode": "dense"}, {}),
    ({"mode": "hybrid:dense=1,fulltext=0.5"}, {"mode": "hybrid", "weights": {"dense": 1, "fulltext": 0.5}}),
    ({"mode": "hybrid", "weights": {"fulltext": 2, "dense": 1}, "candidates": 5},
     {"mode": "hybrid", "weights": {"dense": 1, "fulltext": 2}, "candidates": 5}),
    ({"hybrid": True}, {"mode": "hybrid", "weights": {"dense": 1, "fulltext": 1}}),
])
def test_search_modes_rank_as_collection_search(http: Any, store: Any, modes_collection: str,
                                                request_: dict[str, Any], python: dict[str, Any]) -> None:
    coll = store.collection(modes_collection)
    for q in QUERIES:
        r = http.post("/search", json={"collection": modes_collection, "query": q, "k": 5, **request_})
        assert r.status_code == 200, r.text
        assert _ids(r.json()["hits"]) == _ids(coll.search(q, 5, **python)), (q, request_)


def test_modes_rank_differently_over_http(http: Any, modes_collection: str) -> None:
    got = {}
    for mode in ("dense", "fulltext", "hybrid:dense=1,fulltext=0.5"):
        r = http.post("/search", json={"collection": modes_collection, "query": "terminal music", "k": 5,
                                       "mode": mode})
        got[mode] = _ids(r.json()["hits"])
        assert r.json()["mode"] == mode
    assert len({tuple(v) for v in got.values()}) > 1
    assert all(set(v) <= {f"t{i:02d}" for i in range(len(TEXTS))} for v in got.values())


def test_rerank_uses_the_served_reranker_like_collection_search(rerank_http: Any, store: Any, modes_collection: str,
                                                                cross_encoder: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from obembed.providers.rerank import load_reranker

    coll = store.collection(modes_collection)
    reranker = load_reranker(f"cross-encoder:{cross_encoder}")
    cases = [({"rerank": True, "candidates": 8}, {"candidates": 8}),
             ({"mode": "hybrid:dense=1,fulltext=1+rerank"}, {"mode": "hybrid", "weights": {"dense": 1, "fulltext": 1}})]
    wants = [coll.search(QUERIES[1], 4, rerank=reranker, **kw) for _, kw in cases]

    def factory(spec: str, **options: Any) -> Any:
        raise AssertionError("the server loaded a second copy of the model")

    monkeypatch.setattr(store, "provider_factory", factory)  # the query is embedded by the served model only
    monkeypatch.setattr(store, "_providers", {})
    for (body, _), want in zip(cases, wants, strict=True):
        r = rerank_http.post("/search", json={"collection": modes_collection, "query": QUERIES[1], "k": 4, **body})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert _ids(hits) == _ids(want)
        assert [h["rerank_score"] for h in hits] == pytest.approx([h.rerank_score for h in want], abs=1e-5)
        assert r.json()["reranker"] == f"cross-encoder:{cross_encoder}"
    plain = rerank_http.post("/search", json={"collection": modes_collection, "query": QUERIES[1], "k": 4}).json()
    assert all(h.get("rerank_score") is None for h in plain["hits"])


@pytest.mark.parametrize(("body", "words"), [
    ({"mode": "hybird"}, ["'hybird'", "dense, sparse, fulltext"]),
    ({"mode": "hybrid:dense=x"}, ["'hybrid:dense=x'", "LEG=WEIGHT"]),
    ({"mode": "dense", "weights": {"dense": 1}}, ["weights apply to mode 'hybrid'"]),
    ({"mode": "hybrid:dense=1", "weights": {"dense": 1}}, ["once"]),
    ({"mode": "fulltext", "hybrid": True}, ["mode or hybrid"]),
    ({"weights": {"bm25": 1}, "mode": "hybrid"}, ["bm25", "LEG=WEIGHT"]),
    ({"rerank": True}, ["no reranker", "--rerank-model"]),
    ({"mode": "dense+rerank"}, ["no reranker", "--rerank-model"]),
    ({"mode": "sparse"}, ["sparse"]),
])
def test_bad_modes_are_400_naming_the_fix(http: Any, modes_collection: str, body: dict[str, Any],
                                          words: list[str]) -> None:
    r = http.post("/search", json={"collection": modes_collection, "query": "terminal music", **body})
    assert r.status_code == 400, r.text
    msg = r.json()["error"]["message"]
    for w in words:
        assert w in msg, msg


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, as tests/server/test_page.py drives it (a missing browser is a failure)."""
    import shutil

    if not shutil.which("/usr/bin/chromium"):
        pytest.fail("/usr/bin/chromium is missing: run scripts/install-chromium.sh (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                               args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        yield b
        b.close()


def test_page_searches_with_the_mode_typed_in_its_options(browser: Any, base_url: str, store: Any,
                                                          modes_collection: str) -> None:
    want = [h.content for h in store.collection(modes_collection).search("terminal music", 5,
                                                                           mode="hybrid", weights={"dense": 1,
                                                                                                   "fulltext": 0.5})]
    page = browser.new_page()
    page.goto(f"{base_url}/?collection={modes_collection}")
    page.wait_for_selector(f"#collection option[value='{modes_collection}']", state="attached", timeout=20_000)
    page.click("summary")
    page.fill("#mode", "hybrid:dense=1,fulltext=0.5")
    page.fill("#k", "5")
    page.fill("#query", "terminal music")
    page.click("#go")
    page.wait_for_selector("li.hit", timeout=30_000)
    hits = page.locator("li.hit .snippet")
    assert [hits.nth(i).inner_text().strip() for i in range(hits.count())] == want
    page.fill("#mode", "hybird")
    page.click("#go")
    page.wait_for_selector("#status.error", timeout=20_000)
    assert "hybird" in page.inner_text("#status")
    page.close()
