"""clip: provider on tiny locally built CLIP checkpoints, loaded through the same from_pretrained path as
real ones. Random weights: the tests check shapes, unit length, determinism, batching, the shared space,
truncation accounting, per-item errors and agreement with sentence-transformers, not semantics."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import obembed
from obembed.errors import ConfigError, InvalidInputError, ModelNotFoundError, UnsupportedInputError
from obembed.providers.clip import ClipProvider, _output_tensor, clip_model_name

PROJECTION_DIM = 16  # tests/clip/conftest.py builds the tiny CLIP with this projection size


@pytest.fixture(scope="module")
def clip(tiny_clip_dir: Path) -> ClipProvider:
    p = obembed.load(f"clip:{tiny_clip_dir}", device="cpu")
    assert isinstance(p, ClipProvider)
    return p


def _img(color: tuple[int, int, int], size: tuple[int, int] = (48, 40), seed: int | None = None) -> Image.Image:
    if seed is None:
        return Image.new("RGB", size, color)
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("imgs")
    paths = []
    for i, (name, color) in enumerate([("red.png", (255, 0, 0)), ("green.jpg", (0, 200, 0)),
                                       ("blue.webp", (0, 0, 255))]):
        path = folder / name
        img = _img(color, (64 + 8 * i, 48))
        img.paste(_img((0, 0, 0), (16, 16), seed=i), (8, 8))
        img.save(path)
        paths.append(path)
    return paths


def test_facts_and_spec(clip: ClipProvider, tiny_clip_dir: Path) -> None:
    assert clip.supports_image
    assert clip.supports_text
    assert clip.dimension == PROJECTION_DIM
    assert clip.normalized
    assert clip.distance == "cosine"
    assert clip.max_input_tokens == 77
    assert clip.max_image_size == 448  # auto: twice the processor's 32 px, at least 448
    assert clip.space == f"clip:{tiny_clip_dir.name}+text:{tiny_clip_dir.name}|{PROJECTION_DIM}|fp32"
    info = clip.info()
    assert info["dimension"] == PROJECTION_DIM
    assert info["image_model"] == info["text_model"] == str(tiny_clip_dir)
    assert info["space"] == clip.space


def test_text_vectors_shape_norm_determinism_and_batching(clip: ClipProvider) -> None:
    texts = ["a red square", "a blue circle", "a photo of a dog", "cat"]
    v = clip.embed_documents(texts)
    assert v.shape == (4, PROJECTION_DIM)
    assert v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(v, clip.embed_documents(texts))  # deterministic
    single = np.stack([clip.embed_query(t) for t in texts])
    assert np.allclose(single, v, atol=1e-5)  # batch (padded) == one by one
    assert not np.allclose(v[0], v[1], atol=1e-3)  # different texts, different vectors


def test_image_vectors_shape_norm_determinism_batching_and_shared_space(
    clip: ClipProvider, image_files: list[Path]
) -> None:
    v = clip.embed_images(image_files)
    assert v.shape == (3, PROJECTION_DIM)
    assert v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(v, clip.embed_images(image_files))
    single = np.stack([clip.embed_image(p) for p in image_files])
    assert np.allclose(single, v, atol=1e-5)
    assert np.allclose(clip.embed_images(image_files, batch_size=2), v, atol=1e-5)
    # the same picture as path, bytes, PIL image give the same vector
    data = image_files[0].read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        same = clip.embed_images([str(image_files[0]), data, im.convert("RGB")])
    assert np.allclose(same, v[0], atol=1e-5)
    # text and image vectors live in one space: one dimension, comparable by cosine
    t = clip.embed_documents(["a red square"])
    sims = obembed.similarity(t, v)
    assert sims.shape == (1, 3)
    assert np.all(np.abs(sims) <= 1.0)


def test_image_vectors_are_the_model_projection_of_the_processor_output(clip: ClipProvider,
                                                                          image_files: list[Path]) -> None:
    """Independent check through the transformers API: CLIPModel.forward's image_embeds are normalised
    projections; ours must equal them for the same pixels."""
    import torch
    from transformers import AutoImageProcessor, CLIPModel

    path = Path(clip.info()["image_model"])
    model = CLIPModel.from_pretrained(path).eval()
    proc = AutoImageProcessor.from_pretrained(path, backend="pil")
    with Image.open(image_files[0]) as im:
        pixels = proc(images=[im.convert("RGB")], return_tensors="pt")["pixel_values"]
    tok = clip._loaded[1]
    enc = tok(["a red square"], return_tensors="pt")
    with torch.inference_mode():
        out = model(pixel_values=pixels, **enc)
    assert np.allclose(out.image_embeds.numpy()[0], clip.embed_images(image_files[:1])[0], atol=1e-5)
    assert np.allclose(out.text_embeds.numpy()[0], clip.embed_query("a red square"), atol=1e-5)


def test_long_text_is_cut_at_77_tokens_and_counted(clip: ClipProvider) -> None:
    long = "a red square " * 40
    res = clip.embed(["short", long])
    assert res.truncated == [1]
    counts = clip.count_tokens(["short", long])
    assert counts[1] > 77
    assert counts[0] < 10
    assert res.n_tokens == counts[0] + 77
    with pytest.raises(InvalidInputError, match=r"input 0 has \d+ tokens, more than .* limit of 77"):
        clip.embed([long], truncate="error")


@pytest.mark.parametrize("workers", [1, 3])
def test_embed_images_result_skips_and_reports_bad_items(clip: ClipProvider, image_files: list[Path],
                                                         tmp_path: Path, workers: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clip, "decode_workers", workers)  # sequential, and decoding in threads ahead of the model
    text_png = tmp_path / "fake.png"
    text_png.write_text("not an image")
    items = [image_files[0], tmp_path / "missing.jpg", text_png, image_files[1], b""]
    res = clip.embed_images_result(items, batch_size=2)
    assert res.extra["indices"] == [0, 3]
    assert res.vectors.shape == (2, PROJECTION_DIM)
    assert np.allclose(res.vectors, clip.embed_images([image_files[0], image_files[1]]), atol=1e-5)
    assert sorted(res.failed) == [1, 2, 4]
    assert "missing.jpg" in res.failed[1]
    assert "no such file" in res.failed[1]
    assert "fake.png" in res.failed[2]
    assert "text file" in res.failed[2]
    assert "0 bytes" in res.failed[4]
    facts = res.extra["facts"]
    assert facts[0].format == "PNG"
    assert facts[1].format == "JPEG"
    assert facts[0].width == 64
    with pytest.raises(InvalidInputError, match=r"image 1 '.*missing\.jpg'"):
        clip.embed_images(items)
    with pytest.raises(InvalidInputError, match=r"image 1 '.*missing\.jpg'"):
        clip.embed_images(items, batch_size=1)  # the bad item is found while the next batch is decoding
    with pytest.raises(InvalidInputError, match="on_error"):
        clip.embed_images_result(items, on_error="ignore")  # type: ignore[arg-type]
    all_bad = clip.embed_images_result([b""])
    assert all_bad.vectors.shape == (0, PROJECTION_DIM)
    assert list(all_bad.failed) == [0]


def test_images_are_not_texts(clip: ClipProvider, image_files: list[Path]) -> None:
    with Image.open(image_files[0]) as im, pytest.raises(InvalidInputError, match="embed_images"):
        clip.embed_documents([im])
    with pytest.raises(InvalidInputError, match="one image"):
        clip.embed_image([image_files[0]])


def test_text_only_provider_refuses_images(minilm, image_files: list[Path]) -> None:
    with pytest.raises(UnsupportedInputError, match=r"text only.*clip:"):
        minilm.embed_images(image_files)


def test_sentence_transformers_clip_checkpoint_loads_and_matches_sentence_transformers(
    tiny_st_clip_dir: Path, clip: ClipProvider, image_files: list[Path]
) -> None:
    """The clip-ViT-B-32 layout (modules.json + 0_CLIPModel/): same weights → same vectors as the plain
    checkpoint, and equal to sentence-transformers' own encode() (normalised)."""
    from sentence_transformers import SentenceTransformer

    st_layout = obembed.load(f"clip:{tiny_st_clip_dir}", device="cpu")
    texts = ["a red square", "a blue circle"]
    ours_t = st_layout.embed_documents(texts)
    assert np.allclose(ours_t, clip.embed_documents(texts), atol=1e-6)
    with Image.open(image_files[0]) as a, Image.open(image_files[2]) as b:
        pics = [a.convert("RGB"), b.convert("RGB")]
    ours_i = st_layout.embed_images(pics)
    st = SentenceTransformer(str(tiny_st_clip_dir), device="cpu")
    ref_t = st.encode(texts, normalize_embeddings=True)
    ref_i = st.encode(pics, normalize_embeddings=True)
    assert np.allclose(ours_t, ref_t, atol=1e-5)
    assert np.allclose(ours_i, ref_i, atol=1e-5)
    assert st_layout.space.startswith(f"clip:{tiny_st_clip_dir.name}+text:{tiny_st_clip_dir.name}|16")


def test_multilingual_text_model_pairing(tiny_clip_dir: Path, tiny_text_dir: Path, clip: ClipProvider,
                                         image_files: list[Path]) -> None:
    spec = f"clip:{tiny_clip_dir}?text_model={tiny_text_dir}"
    m = obembed.load(spec, device="cpu")
    queries = ["赤い四角", "红色方块", "a red square"]
    v = m.embed_documents(queries)
    assert v.shape == (3, PROJECTION_DIM)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.allclose(m.embed_query("赤い四角"), v[0], atol=1e-5)
    assert not np.allclose(v[0], v[1], atol=1e-3)
    # texts come from the paired encoder (sentence-transformers, normalised), not from CLIP's text tower
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(str(tiny_text_dir), device="cpu").encode(queries, normalize_embeddings=True)
    assert np.allclose(v, ref, atol=1e-5)
    assert not np.allclose(v[2], clip.embed_query("a red square"), atol=1e-3)
    # images still come from the CLIP image tower
    assert np.allclose(m.embed_images(image_files), clip.embed_images(image_files), atol=1e-6)
    assert m.max_input_tokens == 128  # the text encoder's own limit
    assert m.space == f"clip:{tiny_clip_dir.name}+text:{tiny_text_dir.name}|{PROJECTION_DIM}|fp32"
    assert m.space != clip.space
    assert m.info()["options"] == {"text_model": str(tiny_text_dir)}  # persisted, so a collection can rebuild it


def test_text_model_of_the_wrong_size_is_refused(tiny_clip_dir: Path) -> None:
    m = obembed.load(f"clip:{tiny_clip_dir}", text_model="st:all-MiniLM-L6-v2", device="cpu")
    assert m.text_model == "all-MiniLM-L6-v2"  # "st:" is accepted and dropped
    with pytest.raises(ConfigError, match=r"384-d .* 16-d; pair it with the CLIP model"):
        m.embed_documents(["x"])


def test_load_errors_are_clear(tmp_path: Path, minilm_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        obembed.load(f"clip:{tmp_path / 'nowhere'}").dimension  # noqa: B018
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        obembed.load("clip:openai/clip-vit-base-patch32").dimension  # noqa: B018 - not cached, offline
    with pytest.raises(ConfigError, match=r"without a CLIP module|not a CLIP-style"):
        obembed.load(f"clip:{minilm_path}").dimension  # noqa: B018
    with pytest.raises(ConfigError, match="max_image_size"):
        ClipProvider("x", max_image_size=3)
    with pytest.raises(ConfigError, match="decode_workers"):
        ClipProvider("x", decode_workers=0)
    with pytest.raises(ConfigError, match="unknown option"):
        obembed.load("clip:x", colour="red")


def test_helpers() -> None:
    import torch
    from transformers import CLIPImageProcessorPil

    from obembed.providers.clip import _processor_side

    assert _processor_side(CLIPImageProcessorPil()) == 224  # openai/clip-vit-base-patch32
    assert _processor_side(CLIPImageProcessorPil(size={"shortest_edge": 336},
                                                 crop_size={"height": 336, "width": 336})) == 336

    assert clip_model_name("clip-ViT-B-32") == "sentence-transformers/clip-ViT-B-32"
    assert clip_model_name("openai/clip-vit-base-patch32") == "openai/clip-vit-base-patch32"
    t = torch.ones(2, 3)

    class Out:
        pooler_output = t

    assert _output_tensor(Out()) is t  # transformers 5: an output object
    assert _output_tensor(t) is t  # transformers 4: the tensor itself
    with pytest.raises(ConfigError, match="pooler_output"):
        _output_tensor(object())


def test_text_tokenizer_exposed_and_counting_is_thread_safe(clip: ClipProvider) -> None:
    """The ingest producer copies ``provider.tokenizer`` for its thread; counting and embedding at once on
    one provider must not trip the fast tokenizer's "Already borrowed"."""
    import threading

    assert callable(clip.tokenizer)
    texts = [" ".join(["a photo of a red square"] * (1 + i % 5)) for i in range(48)]
    assert clip.tokenizer(texts[:1])["input_ids"][0] == clip.tokenizer(texts[:1])["input_ids"][0]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(fn) -> None:  # type: ignore[no-untyped-def]
        start.wait()
        try:
            for _ in range(100):
                fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(lambda: clip.count_tokens(texts),)),
               threading.Thread(target=run, args=(lambda: clip.embed_documents(texts),))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
