"""Tiny local models (random weights) saved and loaded through the real ``from_pretrained`` path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "database", "vector", "search", "ocean", "base",
         "hello", "world", "is", "blue", "red", "fast", "slow", "table"]


def _tokenizer(bos_eos: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for w in WORDS:
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos_eos:  # BERT-style [CLS] ... [SEP]
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    else:  # decoder-style: text then an end token, last-token pooling reads it
        tok.post_processor = processors.TemplateProcessing(single="$A [SEP]", special_tokens=[("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", eos_token="[SEP]",
                                   model_max_length=64), len(vocab)


def build_bert(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    tokenizer, n = _tokenizer(bos_eos=True)
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=64))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_qwen3(folder: Path, padding_side: str = "left", seed: int = 0) -> Path:
    import torch
    from transformers import Qwen3Config, Qwen3Model

    tokenizer, n = _tokenizer(bos_eos=False)
    tokenizer.padding_side = padding_side
    torch.manual_seed(seed)
    model = Qwen3Model(Qwen3Config(vocab_size=n, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   num_key_value_heads=1, head_dim=16, intermediate_size=64,
                                   max_position_embeddings=64, pad_token_id=0))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def add_st_modules(folder: Path, pooling: str, normalize: bool, max_seq_length: int = 48,
                   prompts: dict[str, str] | None = None) -> Path:
    """Write the sentence-transformers description files into a plain transformers folder."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    keys = {"cls": "pooling_mode_cls_token", "mean": "pooling_mode_mean_tokens",
            "lasttoken": "pooling_mode_lasttoken", "max": "pooling_mode_max_tokens"}
    pconf = {"word_embedding_dimension": 32, **{k: (keys[pooling] == k) for k in keys.values()}}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pconf))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": prompts or {}, "similarity_fn_name": "cosine"}))
    return folder


@pytest.fixture(scope="session")
def tiny_bge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT folder named like the BGE family (no modules.json): the family table says CLS."""
    return build_bert(tmp_path_factory.mktemp("models") / "tiny-bge-small")


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Qwen3 folder named like Qwen3-Embedding (no modules.json): last-token pooling, left padding."""
    return build_qwen3(tmp_path_factory.mktemp("models") / "tiny-qwen3-embedding")


@pytest.fixture(scope="session")
def tiny_qwen3_right(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_qwen3(tmp_path_factory.mktemp("models") / "tiny-qwen3-embedding-right", padding_side="right")


@pytest.fixture(scope="session")
def tiny_st_cls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT folder with modules.json saying CLS + Normalize and a query prompt (name says nothing)."""
    folder = build_bert(tmp_path_factory.mktemp("models") / "plain-model", seed=1)
    return add_st_modules(folder, "cls", normalize=True, prompts={"query": "search ", "document": ""})


@pytest.fixture(scope="session")
def builders():
    """The model builders above, for tests that make their own folders (tests/core has no package)."""
    from types import SimpleNamespace

    return SimpleNamespace(build_bert=build_bert, build_qwen3=build_qwen3, add_st_modules=add_st_modules)
