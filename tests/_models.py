"""The one builder of tiny local models (random weights, word-level fast tokenizer) for the tests: saved and
loaded through the real ``save_pretrained``/``from_pretrained`` path. Fixtures in tests/conftest.py and the
area conftests call these."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "database", "vector", "search", "ocean", "base",
         "hello", "world", "is", "blue", "red", "fast", "slow", "table"]


def _tokenizer(bos_eos: bool, words: list[str] | None = None, max_length: int = 64):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for w in words or WORDS:
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
                                   model_max_length=max_length), len(vocab)


def build_bert(folder: Path, seed: int = 0, *, words: list[str] | None = None, hidden: int = 32, layers: int = 2,
               max_length: int = 64) -> Path:
    """A BERT encoder (``[CLS] ... [SEP]``) with random weights and a word-level fast tokenizer (tokenizer.json)."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer, n = _tokenizer(bos_eos=True, words=words, max_length=max_length)
    torch.manual_seed(seed)
    model = BertModel(BertConfig(vocab_size=n, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                                 intermediate_size=2 * hidden, max_position_embeddings=max_length))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_qwen3(folder: Path, padding_side: str = "left", seed: int = 0) -> Path:
    """A one-layer Qwen3 decoder (text then an end token, for last-token pooling)."""
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


def build_cross_encoder(folder: Path, base: Path, *, num_labels: int = 1, seed: int = 0) -> Path:
    """A cross-encoder from a sentence-embedding model's weights (the bundled MiniLM) plus a classification head
    with ``num_labels`` outputs, saved by ``CrossEncoder.save_pretrained``.

    No trained cross-encoder is available offline; the head is random (seeded) with a wide spread, so scores differ
    clearly between pairs. Speed and the torch-vs-ONNX equality do not depend on its training.
    """
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(seed)
    ce = CrossEncoder(str(base), num_labels=num_labels, device="cpu", local_files_only=True)
    head = ce[0].auto_model.classifier
    with torch.no_grad():
        head.weight.normal_(0.0, 0.5)
        head.bias.zero_()
    ce.save_pretrained(str(folder))
    return folder


def add_sparse_head(folder: Path, hidden: int, seed: int = 0, std: float = 0.5) -> Path:
    """Write a BGE-M3-style sparse head (``sparse_linear.pt``: the state dict of ``Linear(hidden, 1)``), random
    (seeded) with a spread that leaves roughly half the tokens above zero after the ReLU."""
    import torch

    torch.manual_seed(seed)
    head = torch.nn.Linear(hidden, 1)
    with torch.no_grad():
        head.weight.normal_(0.0, std)
        head.bias.fill_(0.05)
    torch.save(head.state_dict(), folder / "sparse_linear.pt")
    return folder


def build_bge_m3(folder: Path, seed: int = 0, *, hidden: int = 32, words: list[str] | None = None) -> Path:
    """A BGE-M3-shaped model: an XLM-RoBERTa encoder (tiny config, random weights), an XLM-R-style word-level
    tokenizer (``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3; ``<s> ... </s>``), CLS pooling + Normalize
    (sentence-transformers files, as BAAI/bge-m3 ships them), a random ``sparse_linear.pt`` and, as BAAI/bge-m3
    ships it, a ``colbert_linear.pt`` (FlagEmbedding loads its heads only when both files are there)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for w in words or WORDS:
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                        cls_token="<s>", unk_token="<unk>", pad_token="<pad>", model_max_length=64)
    torch.manual_seed(seed)
    model = XLMRobertaModel(XLMRobertaConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=2 * hidden,
                                             max_position_embeddings=66, pad_token_id=1, bos_token_id=0,
                                             eos_token_id=2))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    add_st_modules(folder, "cls", normalize=True, max_seq_length=64)
    torch.save(torch.nn.Linear(hidden, hidden).state_dict(), folder / "colbert_linear.pt")
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": hidden, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False,
         "pooling_mode_max_tokens": False, "pooling_mode_lasttoken": False}))
    return add_sparse_head(folder, hidden, seed)
