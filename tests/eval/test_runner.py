"""Variant specs, the vector cache, prefixes/prompts switches (on the bundled MiniLM, a handful of texts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from obembed.errors import ConfigError
from obembed.eval import evaluate, load_dataset, parse_variant
from obembed.eval.encode import cache_key, encode

DATA = Path(__file__).parent / "data"


def test_parse_variant_splits_eval_options_from_provider_options():
    v = parse_variant("st:all-MiniLM-L6-v2?truncate_dim=128&label=mini 128&query_prefix=query: &prompts=off")
    assert v.spec == "st:all-MiniLM-L6-v2?truncate_dim=128"  # what obembed.load gets
    assert v.label == "mini 128"
    assert v.query_prefix == "query: "
    assert v.prompts is False
    plain = parse_variant("hf:all-MiniLM-L6-v2")
    assert (plain.spec, plain.label, plain.prompts) == ("hf:all-MiniLM-L6-v2", "hf:all-MiniLM-L6-v2", True)
    with pytest.raises(ConfigError, match="prompts=on or prompts=off"):
        parse_variant("st:x?prompts=maybe")
    with pytest.raises(ConfigError, match="empty"):
        parse_variant("  ")


def test_duplicate_labels_and_no_model_are_refused():
    ds = load_dataset(DATA / "corpus.jsonl", DATA / "queries.jsonl", DATA / "qrels.tsv")
    with pytest.raises(ConfigError, match="share a label"):
        evaluate(ds, ["st:a?label=x", "st:b?label=x"], provider_factory=lambda spec: None)
    with pytest.raises(ConfigError, match="no model"):
        evaluate(ds, [])


def test_encode_cache_reuses_vectors_and_keeps_the_measured_speed(minilm, tmp_path):
    texts = ["a cat sleeps", "a dog barks", "OceanBase stores vectors"]
    first = encode(minilm, texts, "document", cache_dir=tmp_path)
    again = encode(minilm, texts, "document", cache_dir=tmp_path)
    assert not first.cached
    assert again.cached
    np.testing.assert_array_equal(first.vectors, again.vectors)
    assert again.seconds == pytest.approx(first.seconds)  # the speed of the real encode, not of the file read
    # another kind, other texts or another prefix is another entry
    assert cache_key(minilm, texts, "query") != cache_key(minilm, texts, "document")
    assert cache_key(minilm, texts[:2], "document") != cache_key(minilm, texts, "document")
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_prefix_and_prompts_switches(minilm, tmp_path):
    ds = load_dataset(DATA / "corpus.jsonl", DATA / "queries.jsonl", DATA / "qrels.tsv")
    qtexts = [q.text for q in ds.queries]
    st = minilm.st_model
    saved = dict(st.prompts or {})
    # give the model a saved query prompt, as E5/BGE models have: sentence-transformers applies it itself
    st.prompts = {**saved, "query": "search: "}
    minilm.query_prefix = "search: "
    try:
        report = evaluate(ds, ["st:all-MiniLM-L6-v2?label=plain",
                               "st:all-MiniLM-L6-v2?query_prefix=zzzz qqqq &label=junk prefix",
                               "st:all-MiniLM-L6-v2?prompts=off&label=no prompts"],
                          provider_factory=lambda spec: minilm, n_resamples=50, cache_dir=tmp_path)
        # prompts=off cleared the prompt for its own run only and put it back afterwards
        assert st.prompts["query"] == "search: "
        assert minilm.query_prefix == "search: "
        key_plain = cache_key(minilm, qtexts, "query")
        key_junk = cache_key(minilm, ["zzzz qqqq " + t for t in qtexts], "query")
    finally:
        st.prompts = saved
        minilm.query_prefix = ""
    key_off = cache_key(minilm, qtexts, "query")
    vecs = {name: np.load(tmp_path / f"{key}.npz")["vectors"]
            for name, key in (("plain", key_plain), ("junk", key_junk), ("off", key_off))}
    assert len(list(tmp_path.glob("*.npz"))) == 4  # one document set (shared) + three query sets
    assert not np.allclose(vecs["plain"], vecs["off"], atol=1e-3)  # the prompt was really applied, then not
    assert not np.allclose(vecs["plain"], vecs["junk"], atol=1e-3)
    np.testing.assert_allclose(vecs["off"], minilm.embed_queries(qtexts), atol=1e-5)  # = no prompt at all
    plain, junk, off = report["models"]
    assert off["prompts"] is False
    assert off["provider"]["query_prefix"] == ""
    assert plain["provider"]["query_prefix"] == "search: "
    assert junk["query_prefix"] == "zzzz qqqq "
    assert (plain["encode"]["cached"], junk["encode"]["cached"], off["encode"]["cached"]) == (False, True, True)
    assert [p["label"] for p in report["paired"]] == ["junk prefix", "no prompts"]


def test_interleaved_speed_rounds(minilm):
    ds = load_dataset(DATA / "corpus.jsonl", DATA / "queries.jsonl", DATA / "qrels.tsv")
    report = evaluate(ds, ["st:all-MiniLM-L6-v2?label=a", "st:all-MiniLM-L6-v2?label=b"],
                      provider_factory=lambda spec: minilm, n_resamples=20, speed_rounds=3, speed_docs=5)
    a, b = (m["encode"]["speed"] for m in report["models"])
    assert a["docs"] == 5
    assert len(a["docs_per_s"]) == 3
    assert len(b["docs_per_s"]) == 3
    assert a["vs_first"] == 1.0
    assert b["vs_first"] > 0
    assert a["median_docs_per_s"] == sorted(a["docs_per_s"])[1]
    with pytest.raises(ConfigError, match="speed_rounds"):
        evaluate(ds, ["st:x"], speed_rounds=-1)


def test_secret_options_never_shown(minilm, tmp_path):
    import json

    from obembed.eval.report import format_table, write_html

    secret = "sk-test-abcdef123456"
    v = parse_variant(f"openai:text-embedding-3-small?api_key={secret}&dimensions=256")
    assert secret in v.spec  # obembed.load still gets the key
    for shown in (v.label, v.display_spec):
        assert secret not in shown
        assert "api_key" not in shown
        assert "dimensions=256" in shown
    labelled = parse_variant(f"st:x?label=run with api_key={secret}")
    assert secret not in labelled.label

    ds = load_dataset(DATA / "corpus.jsonl", DATA / "queries.jsonl", DATA / "qrels.tsv")
    said: list[str] = []
    built: list[str] = []

    def factory(spec):
        built.append(spec)
        return minilm

    report = evaluate(ds, [f"st:all-MiniLM-L6-v2?password={secret}&token={secret}"], provider_factory=factory,
                      n_resamples=20, progress=said.append)
    assert secret in built[0]
    html = write_html(report, tmp_path / "r.html").read_text(encoding="utf-8")
    for text in (json.dumps(report), format_table(report), html, "\n".join(said)):
        assert secret not in text
    assert report["models"][0]["spec"] == "st:all-MiniLM-L6-v2"


def test_cache_key_follows_a_model_retrained_in_place(tmp_path):
    """Same spec, same options, new weights in the same folder: the cached vectors are not reused."""
    import obembed

    folder = _build_tiny(tmp_path / "model", seed=0)
    texts = ["the cat sat on the mat", "hello world"]
    before = obembed.load(f"hf:{folder}", device="cpu")
    first = encode(before, texts, "document", cache_dir=tmp_path / "cache")
    _build_tiny(folder, seed=9)
    after = obembed.load(f"hf:{folder}", device="cpu")
    assert after.spec == before.spec
    assert cache_key(after, texts, "document") != cache_key(before, texts, "document")
    again = encode(after, texts, "document", cache_dir=tmp_path / "cache")
    assert not again.cached
    assert not np.allclose(first.vectors, again.vectors, atol=1e-3)


def _build_tiny(folder: Path, seed: int) -> Path:
    """A 1-layer BERT with random weights and a word-level fast tokenizer (the shared builder)."""
    from _models import build_bert

    return build_bert(folder, seed, words=["the", "cat", "sat", "on", "mat", "hello", "world"], hidden=16, layers=1,
                      max_length=32)
