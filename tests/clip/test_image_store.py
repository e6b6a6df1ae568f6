"""Images as store items, on the real embedded seekdb: image_rows → upsert → search by image vector and by text.

The tiny CLIP has random weights, so "a red square" does not *mean* the red image here; the tests check
what holds for any weights: an image's own vector finds that image first, a text query is embedded by the
collection's recorded provider (rebuilt from metadata) and ranked exactly as cosine says, columns and
metadata round-trip, bad files are skipped and reported, and another text tower is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import obembed
from obembed.errors import DimensionMismatchError, InvalidInputError
from obembed.images import IMAGE_COLUMNS, image_rows

pytestmark = pytest.mark.seekdb


@pytest.fixture(scope="module")
def clip(tiny_clip_dir: Path):
    return obembed.load(f"clip:{tiny_clip_dir}", device="cpu")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(7)
    out = []
    for name, color, fmt in [("red_square.png", (230, 20, 20), "PNG"), ("blue_circle.jpg", (20, 20, 230), "JPEG"),
                             ("green.gif", (20, 200, 20), "GIF"), ("noise.webp", None, "WEBP")]:
        if color is None:
            img = Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8), "RGB")
        else:
            img = Image.new("RGB", (60, 40), (255, 255, 255))
            img.paste(color, (10, 5, 50, 35))
        path = folder / name
        img.save(path, fmt)
        out.append(path)
    return out


def test_image_collection_roundtrip_and_search(store, collection_name, clip, pictures, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_text("<html>404 not found</html>")
    items = [*pictures[:2], bad, *pictures[2:], tmp_path / "gone.jpg"]
    result = image_rows(items, clip, columns=True)
    assert [Path(r["content"]).name for r in result.rows] == [p.name for p in pictures]
    assert sorted(result.failed) == [2, 5]
    names = [name for name, _ in result.failures()]
    assert names == [str(bad), str(tmp_path / "gone.jpg")]
    assert "HTML page" in result.failed[2]

    coll = store.create_collection(collection_name, clip, columns=IMAGE_COLUMNS)
    assert coll.upsert(result.rows) == 4
    assert coll.count() == 4
    assert coll.space == clip.space

    # an image's own vector finds that image first, with score ~1
    for path in pictures:
        hits = coll.search(clip.embed_image(path), k=2, exact=True)
        assert hits[0].content == str(path.resolve())
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)

    row = coll.get([result.rows[1]["id"]])[0]
    assert row["metadata"]["kind"] == "image"
    assert row["metadata"]["format"] == "JPEG"
    hit = coll.search(clip.embed_image(pictures[1]), k=1, exact=True)[0]
    assert hit.columns == {"width": 60, "height": 40, "format": "JPEG", "bytes": pictures[1].stat().st_size}
    assert [h.content for h in coll.search(clip.embed_image(pictures[0]), k=4, where={"format": "PNG"})] == \
        [str(pictures[0].resolve())]

    # a text query: embedded by the provider rebuilt from the collection's metadata, ranked by cosine
    text_hits = coll.search("a red square", k=3, exact=True)
    assert len(text_hits) == 3
    q = clip.embed_query("a red square")
    vectors = {r["content"]: r["vector"] for r in result.rows}
    expected = sorted(vectors, key=lambda c: -float(np.dot(q, vectors[c])))[:3]
    assert [h.content for h in text_hits] == expected
    for h in text_hits:
        assert h.score == pytest.approx(float(np.dot(q, vectors[h.content])), abs=1e-4)

    # re-ingesting the same files gives the same ids (content hash): an upsert, not duplicates
    again = image_rows(pictures, clip, columns=True)
    coll.upsert(again.rows)
    assert coll.count() == 4


def test_other_text_tower_is_refused(store, collection_name, clip, tiny_clip_dir, tiny_text_dir, pictures) -> None:
    coll = store.create_collection(collection_name, clip, columns=IMAGE_COLUMNS)
    coll.upsert(image_rows(pictures[:2], clip, columns=True).rows)
    paired = obembed.load(f"clip:{tiny_clip_dir}", text_model=str(tiny_text_dir), device="cpu")
    assert paired.dimension == clip.dimension
    with pytest.raises(DimensionMismatchError):
        store.collection(collection_name, provider=paired)


def test_multilingual_collection_answers_japanese_queries(store, collection_name, tiny_clip_dir, tiny_text_dir,
                                                          pictures) -> None:
    paired = obembed.load(f"clip:{tiny_clip_dir}", text_model=str(tiny_text_dir), device="cpu")
    coll = store.create_collection(collection_name, paired)
    rows = image_rows(pictures, paired, ids=[p.stem for p in pictures]).rows
    assert coll.upsert(rows) == 4
    # the collection recorded text_model, so search() rebuilds the same pairing for the text
    assert coll.metadata["provider"]["options"] == {"text_model": str(tiny_text_dir)}
    hits = coll.search("赤い四角", k=4, exact=True)
    q = paired.embed_query("赤い四角")
    assert [h.id for h in hits] == sorted((r["id"] for r in rows), key=lambda i: -float(np.dot(
        q, next(r["vector"] for r in rows if r["id"] == i))))


def test_image_rows_argument_errors(clip, minilm, pictures) -> None:
    with pytest.raises(InvalidInputError, match="ids for"):
        image_rows(pictures, clip, ids=["a"])
    with pytest.raises(InvalidInputError, match=r"does not embed images.*clip:"):
        image_rows(pictures, minilm)
    with pytest.raises(InvalidInputError, match=r"image 1 '/nonexistent/broken\.png': no such file"):
        image_rows([pictures[0], Path("/nonexistent/broken.png")], clip, on_error="raise")
    res = image_rows(pictures[:2], clip, extra=[{"metadata": {"kind": "image", "album": "x"}}, {}])
    assert res.rows[0]["metadata"]["album"] == "x"  # merged with the image facts
    assert res.rows[0]["metadata"]["width"] == 60
    assert "album" not in res.rows[1]["metadata"]
