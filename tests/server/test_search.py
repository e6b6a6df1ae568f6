"""/collections, /search and /thumbnail against the real embedded seekdb store."""

from __future__ import annotations

import pytest


def test_collections_lists_the_session_collection(http, docs_collection):
    rows = http.get("/collections").json()["collections"]
    mine = next(r for r in rows if r["name"] == docs_collection)
    assert mine["dimension"] == 384
    assert mine["count"] == 5


def test_search_ranks_the_matching_doc_first(http, docs_collection):
    r = http.post("/search", json={"collection": docs_collection, "query": "a kitten resting by the window", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "minilm"  # the query went through the served model's batcher
    hits = body["hits"]
    assert len(hits) == 3
    assert hits[0]["id"] == "d2"
    assert hits[0]["source"] == "docs/d2.txt"
    assert "cat" in hits[0]["content"]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]


@pytest.mark.parametrize("flt", [{"lang": "ja"}, "lang = 'ja'"])
def test_search_with_filter(http, docs_collection, flt):
    r = http.post("/search", json={"collection": docs_collection, "query": "capital city", "k": 5, "filter": flt})
    assert r.status_code == 200, r.text
    assert [h["id"] for h in r.json()["hits"]] == ["d4"]


def test_search_with_where_range(http, docs_collection):
    r = http.post("/search", json={"collection": docs_collection, "query": "anything", "k": 5,
                                   "where": {"year": {">=": 2023}}})
    assert sorted(h["id"] for h in r.json()["hits"]) == ["d1", "d4"]


def test_search_errors_are_4xx(http, docs_collection):
    r = http.post("/search", json={"collection": "no_such_collection", "query": "x"})
    assert r.status_code == 404
    assert "no_such_collection" in r.json()["error"]["message"]
    r = http.post("/search", json={"collection": docs_collection, "query": "x", "filter": "nosuchcol = 1"})
    assert r.status_code == 400
    r = http.post("/search", json={"collection": docs_collection, "query": "   "})
    assert r.status_code == 400
    r = http.post("/search", json={"collection": docs_collection, "query": "x", "filter": "1; DROP TABLE x"})
    assert r.status_code == 400


def test_image_hits_have_thumbnails(http, image_collection):
    r = http.post("/search", json={"collection": image_collection, "query": "red picture", "k": 2})
    hits = r.json()["hits"]
    assert hits[0]["id"] == "red"
    thumb = http.get(hits[0]["thumbnail"])
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"
    from io import BytesIO

    from PIL import Image

    img = Image.open(BytesIO(thumb.content))
    assert max(img.size) == 256
    assert img.getpixel((10, 10))[0] > 200  # still red


def test_thumbnail_only_serves_recorded_image_sources(http, docs_collection):
    r = http.get("/thumbnail", params={"collection": docs_collection, "id": "d1"})  # a .txt source
    assert r.status_code == 404
    r = http.get("/thumbnail", params={"collection": docs_collection, "id": "../../etc/passwd"})
    assert r.status_code == 404
