"""st: and hf: on the real bundled MiniLM, and hf: pooling rules on tiny models built here."""

from __future__ import annotations

import numpy as np
import pytest

import obembed
from obembed.errors import ConfigError, InvalidInputError, ModelNotFoundError

TEXTS = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "OceanBase stores vectors next to relational data.",
    "ベクトル検索はデータベースの機能です。",
    "A longer sentence about embedding models, tokenizers, pooling and normalisation in databases.",
]


def cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def st_reference(minilm_path):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path), device="cpu")
    return model.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=True)


def test_st_matches_sentence_transformers(minilm, st_reference):
    vecs = minilm.embed_documents(TEXTS)
    assert vecs.dtype == np.float32
    assert vecs.shape == (len(TEXTS), 384)
    assert cos_rows(vecs, st_reference).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_st_order_kept_and_batch_equals_single(minilm):
    batch = minilm.embed_documents(TEXTS)
    reversed_batch = minilm.embed_documents(TEXTS[::-1])[::-1]
    singles = np.stack([minilm.embed_documents([t])[0] for t in TEXTS])
    assert cos_rows(batch, reversed_batch).min() >= 0.9999
    assert cos_rows(batch, singles).min() >= 0.9999
    # distinct texts give distinct vectors: order really matters
    assert cos_rows(batch, np.roll(batch, 1, axis=0)).max() < 0.99


def test_query_is_a_vector_of_the_same_space(minilm):
    q = minilm.embed_query("sunny weather")
    assert q.shape == (384,)
    docs = minilm.embed_documents(TEXTS[:3])
    assert int(np.argmax(docs @ q)) in (0, 1)  # weather sentences, not the stadium


def test_hf_reproduces_st(minilm, st_reference):
    hf = obembed.load("hf:all-MiniLM-L6-v2", device="cpu")
    vecs = hf.embed_documents(TEXTS)
    assert cos_rows(vecs, st_reference).min() >= 0.999
    assert hf.pooling == "mean"
    assert hf.normalized
    assert hf.max_input_tokens == 256
    assert hf.space == minilm.space  # one model, one vector space


def test_empty_list_gives_empty_matrix(minilm):
    out = minilm.embed_documents([])
    assert out.shape == (0, 384)
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("bad", "index", "words"),
    [
        (["ok", None], 1, "None"),
        (["ok", "fine", 3], 2, "int"),
        (["   \n\t"], 0, "empty"),
        (["ok", ""], 1, "empty"),
        (["ok", b"bytes"], 1, "bytes"),
    ],
)
def test_bad_items_name_their_index(minilm, bad, index, words):
    with pytest.raises(InvalidInputError) as info:
        minilm.embed_documents(bad)
    assert info.value.index == index
    assert f"input {index}" in str(info.value)
    assert words in str(info.value)


def test_a_single_string_is_refused_with_the_fix(minilm):
    with pytest.raises(InvalidInputError, match="wrap it in a list"):
        minilm.embed_documents("not a list")


def test_long_input_truncated_and_counted(minilm):
    huge = "vectors and databases " * 50_000  # ~1.1 MB
    res = minilm.embed(["short text", huge, "another short one"])
    assert res.truncated == [1]
    assert res.n_truncated == 1
    assert res.vectors.shape == (3, 384)
    assert np.isfinite(res.vectors).all()


def test_long_input_error_policy(minilm):
    with pytest.raises(InvalidInputError) as info:
        minilm.embed(["fine", "word " * 400], truncate="error")
    assert info.value.index == 1
    assert "256" in str(info.value)
    assert "truncate" in str(info.value)


def test_truncate_dim_renormalises(minilm_path):
    p = obembed.load(f"st:{minilm_path}", truncate_dim=128, device="cpu")
    vecs = p.embed_documents(TEXTS[:3])
    assert vecs.shape == (3, 128)
    assert p.dimension == 128
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    full = obembed.load(f"st:{minilm_path}", device="cpu").embed_documents(TEXTS[:3])
    expect = full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True)
    assert cos_rows(vecs, expect).min() >= 0.9999


def test_info_is_serialisable_and_complete(minilm):
    import json

    info = minilm.info()
    json.dumps(info)
    for key in ("spec", "dimension", "normalized", "distance", "max_input_tokens", "query_prefix", "space"):
        assert key in info
    assert info["dimension"] == 384
    assert info["distance"] == "cosine"


def test_missing_local_path_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    for backend in ("st", "hf"):
        with pytest.raises(ModelNotFoundError, match="no-such-model"):
            obembed.load(f"{backend}:{missing}").embed_documents(["x"])


def test_offline_hub_id_not_in_cache_says_how_to_fix():
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        obembed.load("st:someone/not-a-cached-model").embed_documents(["x"])


def _hf_reference(folder, texts, mode, padding_side="right"):
    """Independent pooling: run the model on each text alone (no padding at all)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    for t in texts:
        enc = tok([t], return_tensors="pt")
        with torch.inference_mode():
            h = model(**enc).last_hidden_state[0]
        v = h[0] if mode == "cls" else h[-1] if mode == "lasttoken" else h.mean(0)
        out.append((v / v.norm()).numpy())
    return np.stack(out)


TINY_TEXTS = ["the cat sat on the mat", "hello world", "a dog", "vector search is fast", "red"]


def test_cls_pooling_from_family_table(tiny_bge):
    p = obembed.load(f"hf:{tiny_bge}", device="cpu")
    vecs = p.embed_documents(TINY_TEXTS)
    assert p.pooling == "cls"
    assert p.normalized
    np.testing.assert_allclose(vecs, _hf_reference(tiny_bge, TINY_TEXTS, "cls"), atol=1e-5)
    assert p.query_prefix.startswith("Represent this sentence")  # BGE v1.5 query instruction


@pytest.mark.parametrize("fixture", ["tiny_qwen3", "tiny_qwen3_right"])
def test_last_token_pooling_any_padding_side(request, fixture):
    folder = request.getfixturevalue(fixture)
    p = obembed.load(f"hf:{folder}", device="cpu")
    vecs = p.embed_documents(TINY_TEXTS)  # padded batch: texts differ in length
    assert p.pooling == "lasttoken"
    np.testing.assert_allclose(vecs, _hf_reference(folder, TINY_TEXTS, "lasttoken"), atol=1e-4)


def test_modules_json_wins_over_name_and_matches_st(tiny_st_cls):
    from sentence_transformers import SentenceTransformer

    hf = obembed.load(f"hf:{tiny_st_cls}", device="cpu")
    st = obembed.load(f"st:{tiny_st_cls}", device="cpu")
    assert hf.pooling == "cls"
    assert hf.max_input_tokens == 48
    assert hf.query_prefix == "search "
    ref_model = SentenceTransformer(str(tiny_st_cls), device="cpu")
    ref_docs = ref_model.encode_document(TINY_TEXTS)
    ref_q = ref_model.encode_query(["hello world"])
    assert cos_rows(hf.embed_documents(TINY_TEXTS), ref_docs).min() >= 0.9999
    assert cos_rows(st.embed_documents(TINY_TEXTS), ref_docs).min() >= 0.9999
    assert cos_rows(hf.embed_queries(["hello world"]), ref_q).min() >= 0.9999
    # the prompt really applies: the query is one token ("search") longer than the document
    assert hf.count_tokens(["hello world"], kind="query")[0] == hf.count_tokens(["hello world"])[0] + 1
    assert st.count_tokens(["hello world"], kind="query")[0] == st.count_tokens(["hello world"])[0] + 1


def test_pooling_option_overrides_and_is_validated(tiny_bge):
    p = obembed.load(f"hf:{tiny_bge}", pooling="mean", device="cpu")
    np.testing.assert_allclose(p.embed_documents(["hello world"]),
                               _hf_reference(tiny_bge, ["hello world"], "mean"), atol=1e-5)
    with pytest.raises(ConfigError, match="pooling"):
        obembed.load(f"hf:{tiny_bge}", pooling="median")
