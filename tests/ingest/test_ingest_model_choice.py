"""Without --model, a Japanese corpus gets the offline multilingual model (or, with --no-auto-model, an
explanation); an English one keeps the default; a rerun uses the collection's own model. Real CLI, real seekdb."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from obembed.cli import main
from obembed.languages import MULTILINGUAL_MODEL

JA = [
    {"id": "wget", "text": "HTTP や FTP でファイルをダウンロードするコマンドラインツール。"},
    {"id": "zip", "text": "圧縮された ZIP アーカイブを読み書きするライブラリ。"},
    {"id": "firefox", "text": "Firefox をベースにしたウェブブラウザ。タブとブックマークに対応。"},
]
EN = [{"id": "vim", "text": "Vi IMproved, a highly configurable text editor."},
      {"id": "gimp", "text": "GNU Image Manipulation Program: edit photos and draw images."}]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def run(store):
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.mark.seekdb
def test_japanese_corpus_gets_the_multilingual_model(run, store, store_args, tmp_path, make_collection_name):
    corpus = _jsonl(tmp_path / "ja.jsonl", JA)
    name = make_collection_name("ja")
    res = run("ingest", str(corpus), "-c", name, *store_args, "--json")
    assert res.exit_code == 0, res.output
    assert MULTILINGUAL_MODEL in res.stderr
    assert "3 of 3" in res.stderr
    assert store.collection(name).spec == MULTILINGUAL_MODEL
    res = run("search", "ファイルをダウンロードする", "-c", name, *store_args, "-k", "1", "--json")
    assert json.loads(res.stdout)["hits"][0]["metadata"]["id"] == "wget"
    # a rerun needs no --model: the collection's own model is used (nothing to embed again)
    res = run("ingest", str(corpus), "-c", name, *store_args, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["chunks_embedded"] == 0


@pytest.mark.seekdb
def test_no_auto_model_refuses_and_explains(run, store, store_args, tmp_path, make_collection_name):
    corpus = _jsonl(tmp_path / "ja.jsonl", JA)
    name = make_collection_name("ja")
    res = run("ingest", str(corpus), "-c", name, *store_args, "--no-auto-model")
    assert res.exit_code != 0
    assert f"--model {MULTILINGUAL_MODEL}" in res.output
    assert not store.has_collection(name)  # nothing created


@pytest.mark.seekdb
def test_english_corpus_and_explicit_model_keep_their_model(run, store, store_args, tmp_path,
                                                            make_collection_name):
    name = make_collection_name("en")
    res = run("ingest", str(_jsonl(tmp_path / "en.jsonl", EN)), "-c", name, *store_args, "--json")
    assert res.exit_code == 0, res.output
    assert "all-MiniLM-L6-v2" in (store.collection(name).spec or "")
    assert "note:" not in res.stderr
    # a Japanese query against the English model is told so
    res = run("search", "テキストエディタ", "-c", name, *store_args, "-k", "1")
    assert res.exit_code == 0, res.output
    assert "English-only" in res.stderr
    assert MULTILINGUAL_MODEL in res.stderr
    # --model is always kept, Japanese or not
    name2 = make_collection_name("ja_minilm")
    res = run("ingest", str(_jsonl(tmp_path / "ja.jsonl", JA)), "-c", name2, *store_args, "-m",
              "st:all-MiniLM-L6-v2", "--json")
    assert res.exit_code == 0, res.output
    assert "all-MiniLM-L6-v2" in (store.collection(name2).spec or "")
