"""Images in an ingest: through the CLIP provider (a tiny real CLIP checkpoint with random weights, built here,
no hub), broken images reported, a text-only model refusing images with the fix."""

from __future__ import annotations

import pytest

from obembed.ingest import ingest


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    pytest.importorskip("obembed.providers.clip", reason="the clip provider (issue 6) is not in this checkout")
    import torch
    from tokenizers import pre_tokenizers
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    import obembed

    vocab: dict[str, int] = {}
    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    for s in ("<|startoftext|>", "<|endoftext|>"):
        vocab[s] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    cfg = CLIPConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 77, "eos_token_id": tok.eos_token_id,
                     "bos_token_id": tok.bos_token_id, "pad_token_id": tok.eos_token_id},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
                       "num_hidden_layers": 2, "num_attention_heads": 4},
        projection_dim=16,
    )
    out = tmp_path_factory.mktemp("tiny-clip-ingest")
    torch.manual_seed(0)
    CLIPModel(cfg).eval().save_pretrained(out)
    ip = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    return obembed.load(f"clip:{out}")


def png(path, color, size=(40, 30)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_images_are_embedded_with_clip_and_broken_ones_reported(tmp_path, put, store, collection_name, tiny_clip):
    d = tmp_path / "pics"
    png(d / "red.png", (255, 0, 0))
    png(d / "blue.png", (0, 0, 255), size=(64, 48))
    put(d / "broken.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    put(d / "caption.txt", "a red square")
    rep = ingest(d, collection=collection_name, store=store, provider=tiny_clip)
    assert rep.chunks_embedded == 3  # two images and the caption, in one CLIP space
    [fail] = rep.failures
    assert fail["source"].endswith("broken.png")
    assert fail["reason"].startswith("image: ")
    coll = store.collection(collection_name)
    rows = {r["source"].rsplit("/", 1)[-1]: r for b in coll.iter_rows(include_vectors=False) for r in b}
    assert rows["blue.png"]["metadata"]["width"] == 64
    assert rows["blue.png"]["metadata"]["format"] == "PNG"
    assert rows["blue.png"]["content"] == str(d / "blue.png")
    hits = coll.search(tiny_clip.embed_images([str(d / "red.png")])[0], k=1)
    assert hits[0].source == str(d / "red.png")
    again = ingest(d, collection=collection_name, store=store, provider=tiny_clip)
    assert again.chunks_embedded == 0
    assert again.chunks_skipped == 3


def test_text_model_refuses_images_with_the_fix(tmp_path, put, store, collection_name, minilm):
    d = tmp_path / "mixed"
    png(d / "cat.png", (10, 20, 30))
    put(d / "note.txt", "a note")
    rep = ingest(d, collection=collection_name, store=store, provider=minilm)
    assert rep.chunks_embedded == 1
    [fail] = rep.failures
    assert "embeds text only" in fail["reason"]
    assert "--model clip:" in fail["reason"]


def test_one_image_id_and_hash_for_image_rows_and_ingest(tmp_path, store, collection_name, tiny_clip):
    """The same file through image_rows and through ingest is one row; a changed file replaces it."""
    from obembed.images import image_rows

    d = tmp_path / "pics"
    red = png(d / "red.png", (255, 0, 0))
    coll = store.create_collection(collection_name, tiny_clip)
    rows = image_rows([str(red)], tiny_clip)
    coll.upsert(rows.rows)
    rep = ingest(d, collection=collection_name, store=store, provider=tiny_clip)
    assert (rep.chunks_embedded, rep.chunks_skipped) == (0, 1)  # same id, same content hash: nothing to do
    assert coll.count() == 1
    png(red, (0, 255, 0), size=(41, 30))  # new content, same path
    rep = ingest(d, collection=collection_name, store=store, provider=tiny_clip)
    assert rep.chunks_embedded == 1
    got = coll.get([rows.rows[0]["id"]])
    assert coll.count() == 1
    assert got[0]["content_hash"] == image_rows([str(red)], tiny_clip).rows[0]["content_hash"]


def test_every_image_extension_is_routed_as_an_image(tmp_path):
    """One extension list: whatever obembed.images calls an image, ingest loads as an image."""
    from obembed.images import IMAGE_EXTENSIONS, is_image_path
    from obembed.ingest.loaders import load_file, walk

    for ext in sorted(IMAGE_EXTENSIONS):
        p = tmp_path / f"x{ext.upper()}"
        p.write_bytes(b"not really an image")
        assert is_image_path(p)
        assert [str(x) for x in walk([tmp_path]) if str(x) == str(p)] == [str(p)]
        docs = list(load_file(p))
        assert [getattr(x, "kind", None) for x in docs] == ["image"], (ext, docs)
        p.unlink()
