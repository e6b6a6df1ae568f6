"""Tiny CLIP-family models built locally (random weights, fixed seed) and loaded through the same
``from_pretrained`` path users hit; generated images. No model hub: nothing here downloads anything.

* ``tiny_clip_dir``: a transformers CLIP checkpoint (CLIPConfig with 2-layer 32-wide towers, 16-d projection,
  a byte-level BPE CLIPTokenizer over the 256 byte symbols, a 32-px CLIPImageProcessor), saved the
  transformers-5 way (``processor_config.json``).
* ``tiny_st_clip_dir``: the same weights as a sentence-transformers CLIP checkpoint (``modules.json`` +
  ``0_CLIPModel/``, the layout of ``sentence-transformers/clip-ViT-B-32``), image processor and tokenizer
  saved separately (``preprocessor_config.json``, the layout of the openai/* repos).
* ``tiny_text_dir``: a sentence-transformers text encoder shaped like
  ``sentence-transformers/clip-ViT-B-32-multilingual-v1`` (BERT → mean pooling → Dense to the CLIP
  projection size), with a WordPiece vocabulary covering ASCII and a few CJK characters.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

PROJECTION_DIM = 16
CJK = "赤い四角青丸猫犬写真一枚的红色方块蓝圆狗照片"


def _clip_tokenizer():
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    for s in ("<|startoftext|>", "<|endoftext|>"):
        vocab[s] = len(vocab)
    # a few merges so common words are single tokens, like a real BPE vocabulary
    merges: list[tuple[str, str]] = []
    for word in ("red", "blue", "square", "circle", "dog", "cat", "photo", "a"):
        cur = word[0]
        for i, ch in enumerate(word[1:], 1):
            nxt = ch + ("</w>" if i == len(word) - 1 else "")
            merges.append((cur, nxt))
            cur = cur + nxt
            vocab.setdefault(cur, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges)


def _clip_config(vocab_size: int, eos: int, bos: int):
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 77, "eos_token_id": eos,
                     "bos_token_id": bos, "pad_token_id": eos},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
                       "num_hidden_layers": 2, "num_attention_heads": 4},
        projection_dim=PROJECTION_DIM,
    )


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from obembed.providers._local import quiet_transformers

    quiet_transformers()  # no "Writing model shards" bars in the test output
    out = tmp_path_factory.mktemp("tiny-clip")
    tok = _clip_tokenizer()
    torch.manual_seed(0)
    model = CLIPModel(_clip_config(len(tok), tok.eos_token_id, tok.bos_token_id)).eval()
    ip = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(out)
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_st_clip_dir(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> Path:
    from transformers import AutoImageProcessor, AutoTokenizer

    out = tmp_path_factory.mktemp("tiny-st-clip")
    inner = out / "0_CLIPModel"
    inner.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(tiny_clip_dir / f, inner / f)
    AutoTokenizer.from_pretrained(tiny_clip_dir).save_pretrained(inner)
    AutoImageProcessor.from_pretrained(tiny_clip_dir).save_pretrained(inner)
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "0_CLIPModel", "type": "sentence_transformers.models.CLIPModel"}
    ]))
    return out


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multilingual-CLIP-shaped sentence-transformers text encoder (random weights)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    root = tmp_path_factory.mktemp("tiny-mclip")
    bert_dir = root / "bert"
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789") + sorted(set(CJK))
    words = ["a", "red", "blue", "square", "circle", "dog", "cat", "photo", "of"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(specials + words + chars + ["##" + c for c in chars]))}
    tok = BertTokenizer(vocab=vocab, do_lower_case=True)
    torch.manual_seed(1)
    bert = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=37, max_position_embeddings=128))
    bert.save_pretrained(bert_dir)
    tok.save_pretrained(bert_dir)
    transformer = Transformer(str(bert_dir), max_seq_length=128)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    dense = Dense(transformer.get_embedding_dimension(), PROJECTION_DIM, bias=False, activation_function=None)
    st = SentenceTransformer(modules=[transformer, pooling, dense], device="cpu")
    out = root / "mclip"
    st.save(str(out))
    return out
