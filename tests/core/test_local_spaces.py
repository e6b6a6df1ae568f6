"""Vector spaces of local models (content key, prompts, length, pooling names), pooling config mapping,
prompt lookup, unit length under truncate_dim, and thread safety of hf: — on tiny models built here."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import obembed
from obembed.errors import ConfigError
from obembed.providers._local import read_model_config

TEXTS = ["the cat sat on the mat", "hello world", "a dog", "vector search is fast", "red"]


def test_same_basename_other_folder_is_another_space_and_a_copy_is_the_same(tmp_path: Path, builders):
    a = builders.build_bert(tmp_path / "runs" / "a" / "final", seed=0)
    b = builders.build_bert(tmp_path / "data" / "b" / "final", seed=3)
    copy = tmp_path / "elsewhere" / "final"
    shutil.copytree(a, copy)  # new path, new mtimes, same files
    space_a = obembed.load(f"hf:{a}", device="cpu").space
    space_b = obembed.load(f"hf:{b}", device="cpu").space
    assert space_a != space_b
    assert space_a.startswith("local:final@")
    assert obembed.load(f"hf:{copy}", device="cpu").space == space_a


def test_model_retrained_in_place_gets_a_new_space(tmp_path: Path, builders):
    folder = builders.build_bert(tmp_path / "model", seed=0)
    before = obembed.load(f"hf:{folder}", device="cpu").space
    builders.build_bert(folder, seed=5)  # same folder, new weights
    assert obembed.load(f"hf:{folder}", device="cpu").space != before


def test_prompts_and_max_seq_length_are_part_of_the_space(tiny_st_cls: Path):
    full = obembed.load(f"hf:{tiny_st_cls}", device="cpu")
    short = obembed.load(f"hf:{tiny_st_cls}", device="cpu", max_seq_length=16)
    assert "len=48" in full.space
    assert short.space != full.space
    assert "prompts=none" not in full.space  # the model has a query prompt
    no_prompt = obembed.load("hf:all-MiniLM-L6-v2", device="cpu")
    assert no_prompt.space.endswith("|len=256|prompts=none|fp32")


def test_st_on_a_folder_without_modules_json_is_not_the_family_table(tiny_bge: Path, monkeypatch):
    """sentence-transformers reads a plain folder as mean pooling, no prompts; hf: follows the BGE family
    table (CLS + query instruction): different vectors, so different spaces and no onnx stand-in for st:."""
    from obembed.providers.onnx import OnnxProvider
    from obembed.settings import get_settings

    st = obembed.load(f"st:{tiny_bge}", device="cpu")
    hf = obembed.load(f"hf:{tiny_bge}", device="cpu")
    assert st.pooling == "mean"
    assert hf.pooling == "cls"
    assert st.space != hf.space
    monkeypatch.setenv("OBEMBED_FAST_START", "auto")
    get_settings.cache_clear()
    fast = obembed.load(f"st:{tiny_bge}")
    assert not isinstance(fast, OnnxProvider)
    assert fast.runtime == "torch"
    assert fast.space == st.space


def _with_pooling(folder: Path, pconf: dict) -> Path:
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pconf))
    return folder


@pytest.mark.parametrize(
    ("pconf", "words"),
    [
        ({"embedding_dimension": 32, "pooling_mode": "weightedmean"}, "'weightedmean' is not supported"),
        ({"word_embedding_dimension": 32, "pooling_mode_weightedmean_tokens": True}, "is not supported"),
        ({"embedding_dimension": 32, "pooling_mode": ["cls", "mean"]}, "combined pooling modes"),
        ({"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True},
         "combined pooling modes"),
    ],
)
def test_pooling_hf_cannot_run_is_a_config_error(tmp_path: Path, pconf: dict, words: str, builders):
    folder = builders.add_st_modules(builders.build_bert(tmp_path / "m"), "mean", normalize=True)
    _with_pooling(folder, pconf)
    with pytest.raises(ConfigError, match=words) as info:
        read_model_config(folder)
    assert "st:" in str(info.value)  # names the fix
    with pytest.raises(ConfigError, match=words):
        obembed.load(f"hf:{folder}", device="cpu").embed_documents(["hello"])


def test_mean_sqrt_len_has_one_name_in_every_backend(tmp_path: Path, builders):
    folder = builders.add_st_modules(builders.build_bert(tmp_path / "m", seed=2), "mean", normalize=True)
    _with_pooling(folder, {"embedding_dimension": 32, "pooling_mode": "mean_sqrt_len_tokens"})
    assert read_model_config(folder).pooling == "mean_sqrt_len"
    st = obembed.load(f"st:{folder}", device="cpu")
    hf = obembed.load(f"hf:{folder}", device="cpu")
    assert st.pooling == hf.pooling == "mean_sqrt_len"
    assert st.space == hf.space
    a, b = st.embed_documents(TEXTS), hf.embed_documents(TEXTS)
    assert ((a * b).sum(1)).min() >= 0.9999


@pytest.mark.parametrize("name", ["corpus", "passage"])
def test_document_prompt_is_the_one_encode_document_uses(tmp_path: Path, builders, name: str):
    """A model saving a ``corpus``/``passage`` prompt but no ``document`` one: hf: applies exactly what the
    installed sentence-transformers' encode_document does (6.x: its default empty ``document`` prompt wins)."""
    from sentence_transformers import SentenceTransformer

    folder = builders.add_st_modules(builders.build_bert(tmp_path / "m", seed=4), "cls", normalize=True,
                                     prompts={"query": "search ", name: "doc "})
    ref_model = SentenceTransformer(str(folder), device="cpu")
    used = next((ref_model.prompts[c] for c in ("document", "passage", "corpus") if c in ref_model.prompts), "")
    st = obembed.load(f"st:{folder}", device="cpu")
    hf = obembed.load(f"hf:{folder}", device="cpu")
    assert st.document_prefix == hf.document_prefix == (used or "")
    ref = ref_model.encode_document(TEXTS)
    np.testing.assert_allclose(st.embed_documents(TEXTS), ref, atol=1e-5)
    np.testing.assert_allclose(hf.embed_documents(TEXTS), ref, atol=1e-5)
    assert st.space == hf.space


def test_truncate_dim_without_normalize_is_not_unit_length(tiny_st_cls: Path):
    p = obembed.load(f"st:{tiny_st_cls}", device="cpu", truncate_dim=8, normalize=False)
    vecs = p.embed_documents(TEXTS)
    assert vecs.shape == (len(TEXTS), 8)
    assert not np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)  # a slice of a unit vector
    assert p.normalized is False
    assert p.distance == "l2"
    whole = obembed.load(f"st:{tiny_st_cls}", device="cpu", normalize=False)
    whole.embed_documents(TEXTS[:1])
    assert whole.normalized is True  # the Normalize module makes the full vectors unit length


def test_hf_tokenizer_is_exposed_and_thread_safe(tiny_st_cls: Path):
    p = obembed.load(f"hf:{tiny_st_cls}", device="cpu")
    assert callable(p.tokenizer)
    texts = [" ".join(["the cat sat on the mat"] * (1 + i % 7)) for i in range(64)]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def count() -> None:
        start.wait()
        try:
            for _ in range(400):
                assert len(p.count_tokens(texts)) == len(texts)
        except BaseException as exc:  # "Already borrowed" from the shared fast tokenizer
            errors.append(exc)

    def embed() -> None:
        start.wait()
        try:
            for _ in range(100):
                assert p.embed_documents(texts).shape == (len(texts), 32)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=count), threading.Thread(target=embed)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_hub_id_offline_reads_modules_json_from_the_cache(tmp_path: Path, tiny_st_cls: Path):
    """HF_HUB_OFFLINE=1 and a hub cache holding the model: hf: and onnx: take pooling and prompts from the
    cached modules.json & co (fetched like the model, local_files_only=HF_HUB_OFFLINE), not the family table."""
    import os
    import subprocess
    import sys

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--plain-embedder"
    shutil.copytree(tiny_st_cls, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = ("import json, obembed\n"
            "from obembed.providers.onnx import local_folder\n"
            "p = obembed.load('hf:acme/plain-embedder', device='cpu')\n"
            "p.embed_documents(['hello world'])\n"
            "print(json.dumps({'pooling': p.pooling, 'query_prefix': p.query_prefix, 'len': p.max_input_tokens,\n"
            "                  'folder': str(local_folder('acme/plain-embedder'))}))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HF_HOME": str(tmp_path / "hf-home")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"pooling": "cls", "query_prefix": "search ", "len": 48,
                   "folder": str(repo / "snapshots" / commit)}
