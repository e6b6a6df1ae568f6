"""The CJK check behind the default model and the full-text parser (pure text inspection: fast)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obembed.errors import ConfigError
from obembed.languages import (
    MULTILINGUAL_MODEL,
    choose_fulltext_parser,
    choose_model,
    cjk_ratio,
    corpus_profile,
    is_cjk_text,
    is_english_only,
    is_unspaced_text,
    query_warning,
)

EN = "Command line tool to download files over HTTP and FTP (wget2)."
JA = "HTTP や FTP でファイルをダウンロードするコマンドラインツール (wget2)。"
ZH = "通过 HTTP 和 FTP 下载文件的命令行工具。"
KO = "HTTP 및 FTP로 파일을 내려받는 명령줄 도구."
TH = "เครื่องมือบรรทัดคำสั่งสำหรับดาวน์โหลดไฟล์ผ่าน HTTP"
DE = "Kommandozeilenwerkzeug zum Herunterladen von Dateien über HTTP und FTP (größere Übertragungen)."


def test_scripts():
    assert [is_cjk_text(t) for t in (EN, JA, ZH, KO)] == [False, True, True, True]
    assert is_cjk_text("libfoo-dev: 開発ファイル")  # a Japanese line with a Latin package name stays Japanese
    assert not is_cjk_text("The 東京 office runs Debian on every desktop and server")  # one word stays English
    assert cjk_ratio("1234 !!") == 0.0


def test_default_switches_only_for_cjk_and_only_when_not_chosen():
    english = [EN] * 99
    assert choose_model("st:all-MiniLM-L6-v2", english, explicit=False).spec == "st:all-MiniLM-L6-v2"
    mixed = [EN] * 90 + [JA] * 10
    choice = choose_model("st:all-MiniLM-L6-v2", mixed, explicit=False)
    assert choice.spec == MULTILINGUAL_MODEL
    assert choice.switched
    assert "10 of 100" in choice.reason
    assert "--model st:all-MiniLM-L6-v2" in choice.reason
    # the user's own choice is kept, and a multilingual default is never switched
    assert choose_model("st:all-MiniLM-L6-v2", mixed, explicit=True).spec == "st:all-MiniLM-L6-v2"
    assert choose_model("st:BAAI/bge-m3", [JA], explicit=False).spec == "st:BAAI/bge-m3"
    with pytest.raises(ConfigError, match=f"--model {MULTILINGUAL_MODEL}"):
        choose_model("st:all-MiniLM-L6-v2", [JA] * 3, explicit=False, auto=False)


def test_one_japanese_text_in_a_thousand_does_not_switch():
    choice = choose_model("st:all-MiniLM-L6-v2", [EN] * 499 + [JA], explicit=False)
    assert choice.spec == "st:all-MiniLM-L6-v2"
    assert "1 of 500" in choice.warning  # never silent: the few Japanese texts are named
    assert choose_model("st:all-MiniLM-L6-v2", [EN] * 500, explicit=False).warning == ""
    assert corpus_profile([EN] * 499 + [JA]).cjk_texts == 1


def test_query_warning():
    assert query_warning(JA, "st:all-MiniLM-L6-v2") is not None
    assert MULTILINGUAL_MODEL in (query_warning(ZH, "onnx:all-MiniLM-L6-v2") or "")
    assert query_warning(EN, "st:all-MiniLM-L6-v2") is None
    assert query_warning(JA, MULTILINGUAL_MODEL) is None
    assert is_english_only("onnx:sentence-transformers/all-MiniLM-L6-v2")
    assert not is_english_only(MULTILINGUAL_MODEL)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=30), st.booleans())
def test_choice_is_one_of_two_models_and_explained(texts, explicit):
    choice = choose_model("st:all-MiniLM-L6-v2", texts, explicit=explicit)
    assert choice.spec in ("st:all-MiniLM-L6-v2", MULTILINGUAL_MODEL)
    assert choice.switched == (choice.spec == MULTILINGUAL_MODEL)
    assert not (explicit and choice.switched)
    assert all(0.0 <= cjk_ratio(t) <= 1.0 for t in texts)


def test_parser_words_for_spaced_text_ngrams_when_any_text_is_unspaced():
    assert [is_unspaced_text(t) for t in (EN, DE, JA, ZH, KO, TH)] == [False, False, True, True, True, True]
    assert choose_fulltext_parser([EN, DE] * 50).parser == "space"
    for other in (JA, ZH, KO, TH):  # one unspaced text among a hundred is enough: a word parser could not find it
        choice = choose_fulltext_parser([EN] * 99 + [other])
        assert choice.parser == "ngram"
        assert choice.reason.startswith("1 of 100 sampled texts")
    assert choose_fulltext_parser([]).parser == "ngram"  # nothing to judge by: n-grams suit every script
    assert choose_fulltext_parser(["1234 !!", "--"]).parser == "space"  # no letters: nothing unspaced


def test_parser_of_an_existing_collection_is_kept_and_a_mismatch_named():
    kept = choose_fulltext_parser([JA, EN], existing="space")
    assert kept.parser == "space"
    assert "'space'" in kept.warning
    assert "--fulltext-parser ngram" in kept.warning
    assert choose_fulltext_parser([EN], existing="space").warning == ""
    assert choose_fulltext_parser([JA], existing="ngram") == choose_fulltext_parser([EN], existing="ngram")
    assert choose_fulltext_parser([JA], existing="ngram").warning == ""


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=30))
def test_parser_choice_is_ngram_exactly_when_some_text_is_unspaced(texts):
    choice = choose_fulltext_parser(texts)
    unspaced = any(is_unspaced_text(t[:2000]) for t in texts)
    assert choice.parser == ("ngram" if unspaced or not texts else "space")
    assert choice.reason
    assert not choice.warning
    assert choose_fulltext_parser(texts, existing="beng").parser == "beng"
