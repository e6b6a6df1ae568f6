"""BGE-M3 lexical weights from a model's own sparse head (``sparse=true`` on ``st:`` and ``hf:``), checked against
FlagEmbedding's ``BGEM3FlagModel`` on a small BGE-M3-shaped model the test builds (XLM-R encoder, random
``sparse_linear.pt``), plus the core max-per-id rule against a brute-force computation (hypothesis)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from _models import WORDS, add_sparse_head, build_bert, build_bge_m3
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import obembed
from obembed.errors import ConfigError, InvalidInputError, ModelNotFoundError
from obembed.providers.bge_m3 import lexical_weights
from obembed.providers.sparse import SparseEmbedder, embed_with_sparse, has_sparse_output

TEXTS = [
    "the cat sat on the mat the cat",  # repeated tokens: the max per id
    "hello world",
    "zzz unknown words vector search vector",  # <unk> is dropped
    "blue",
    "the database is fast and the vector table is red red red",
    "ocean base search hello world the a",
]


@pytest.fixture(scope="module")
def m3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bge_m3(tmp_path_factory.mktemp("bge-m3-tiny"))


def _flag_embedding_m3():
    """FlagEmbedding's ``BGEM3FlagModel``, imported for real.

    ``import FlagEmbedding`` fails with transformers 5: its package ``__init__`` imports every model class, and
    the MiniCPM/Gemma *reranker* modules import ``transformers.modeling_attn_mask_utils``, which transformers 5
    removed. The M3 embedder does not use that module at all. So the test installs a stand-in for that one missing
    module only (its four names are functions that raise if anything ever called them), and FlagEmbedding's own
    M3 code (tokenizer, ``AutoModel``, ``sparse_linear.pt`` loading, ReLU, max per token id, special tokens
    dropped) runs unmodified. The stand-in is removed again afterwards, when it was not there before.
    """
    name = "transformers.modeling_attn_mask_utils"
    try:
        __import__(name)
    except ModuleNotFoundError:
        shim = types.ModuleType(name)

        def _not_available(*args: object, **kwargs: object) -> None:
            raise RuntimeError(f"{name} is a test stand-in: transformers 5 has no such module")

        for attr in ("AttentionMaskConverter", "_prepare_4d_attention_mask", "_prepare_4d_causal_attention_mask",
                     "_prepare_4d_causal_attention_mask_for_sdpa"):
            setattr(shim, attr, _not_available)
        sys.modules[name] = shim
    from FlagEmbedding import BGEM3FlagModel

    return BGEM3FlagModel


@pytest.fixture(scope="module")
def reference(m3: Path):
    model = _flag_embedding_m3()(str(m3), use_fp16=False, devices="cpu")
    docs = model.encode(TEXTS, batch_size=4, return_dense=True, return_sparse=True)
    queries = model.encode_queries(TEXTS[:3], batch_size=4, return_dense=True, return_sparse=True)
    as_ids = lambda lw: [{int(k): float(v) for k, v in d.items()} for d in lw]  # noqa: E731
    return {"document": (np.asarray(docs["dense_vecs"]), as_ids(docs["lexical_weights"])),
            "query": (np.asarray(queries["dense_vecs"]), as_ids(queries["lexical_weights"]))}


def _same_weights(got: list[dict[int, float]], want: list[dict[int, float]]) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert set(g) == set(w), f"text {i}: token ids {sorted(g)} != FlagEmbedding's {sorted(w)}"
        for tid in w:
            assert g[tid] == pytest.approx(w[tid], abs=1e-5), f"text {i}, token id {tid}"


@pytest.mark.parametrize("backend", ["st", "hf"])
def test_lexical_weights_equal_flagembedding(m3, reference, backend):
    p = obembed.load(f"{backend}:{m3}?sparse=true")
    assert isinstance(p, SparseEmbedder)
    assert has_sparse_output(p)
    assert p.sparse_dimension == len(WORDS) + 4
    res = p.embed_both(TEXTS, kind="document")
    dense, lw = reference["document"]
    _same_weights(res.extra["sparse"], lw)
    np.testing.assert_allclose(res.vectors, dense, atol=1e-5)
    assert res.token_counts == [len(t.split()) + 2 for t in TEXTS]
    _same_weights(p.embed_sparse(TEXTS, "document"), lw)
    qdense, qlw = reference["query"]
    _same_weights(p.embed_sparse(TEXTS[:3], "query"), qlw)
    np.testing.assert_allclose(p.embed_queries(TEXTS[:3]), qdense, atol=1e-5)
    # the rule itself is visible in the output: specials and <unk> never weighed, one weight per id
    specials = {0, 1, 2, 3}
    assert all(not (set(d) & specials) for d in res.extra["sparse"])
    assert any(res.extra["sparse"])
    assert all(w > 0 for d in res.extra["sparse"] for w in d.values())


def test_dense_vectors_do_not_depend_on_the_head(m3):
    with_head = obembed.load(f"st:{m3}", sparse=True)
    plain = obembed.load(f"st:{m3}")
    np.testing.assert_allclose(with_head.embed_documents(TEXTS), plain.embed_documents(TEXTS), atol=1e-6)
    assert with_head.space == plain.space  # one vector space: a sparse collection can be queried densely
    assert with_head.info()["options"]["sparse"] is True
    assert plain.sparse_dimension == 0
    assert not has_sparse_output(plain)
    with pytest.raises(ConfigError, match=r"sparse=true"):
        plain.embed_sparse(["the cat"])
    with pytest.raises(ConfigError, match=r"gives no sparse vectors.*sparse=true"):
        embed_with_sparse(plain, ["the cat"])
    res = embed_with_sparse(with_head, ["the cat", "red"], kind="query")
    assert len(res.extra["sparse"]) == 2
    assert res.vectors.shape == (2, 32)


def test_bad_input_and_bad_heads(m3, tmp_path):
    p = obembed.load(f"hf:{m3}", sparse=True)
    with pytest.raises(InvalidInputError, match="input 1 is empty"):
        p.embed_sparse(["the cat", "  "])
    assert p.embed_sparse([]) == []
    assert p.embed_both([]).extra["sparse"] == []
    plain = build_bert(tmp_path / "bert")
    with pytest.raises(ConfigError, match=r"no sparse head: sparse_linear\.pt is not in"):
        obembed.load(f"hf:{plain}", sparse=True).embed_sparse(["the cat"])
    add_sparse_head(plain, hidden=16)  # the wrong width for this 32-wide model
    with pytest.raises(ConfigError, match=r"does not fit the model: it must be Linear\(32, 1\)"):
        obembed.load(f"st:{plain}", sparse=True).embed_sparse(["the cat"])
    (plain / "sparse_linear.pt").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="could not be read"):
        obembed.load(f"hf:{plain}", sparse=True).embed_sparse(["the cat"])
    with pytest.raises(ModelNotFoundError, match="no such file"):
        obembed.load(f"st:{m3}", sparse=str(tmp_path / "missing.pt")).embed_sparse(["the cat"])
    # sparse=PATH: a head kept outside the model folder gives the same weights as the folder's own
    other = obembed.load(f"hf:{m3}", sparse=str(m3 / "sparse_linear.pt"))
    assert other.embed_sparse(TEXTS) == p.embed_sparse(TEXTS)


def _brute(weights: np.ndarray, ids: np.ndarray) -> list[dict[int, float]]:
    out = []
    for row_w, row_ids in zip(weights, ids, strict=True):
        d: dict[int, float] = {}
        for w, i in zip(row_w.tolist(), row_ids.tolist(), strict=True):
            if w > 0:
                d[i] = max(d.get(i, 0.0), w)
        out.append(d)
    return out


@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 12)).flatmap(
    lambda s: st.tuples(hnp.arrays(np.float32, s, elements=st.floats(-2, 2, width=32)),
                        hnp.arrays(np.int64, s, elements=st.integers(0, 9)))))
def test_max_per_token_id_matches_brute_force(shape):
    weights, ids = shape
    assert lexical_weights(weights, ids) == _brute(weights, ids)
