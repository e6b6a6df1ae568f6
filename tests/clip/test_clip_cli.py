"""`obembed embed --image` and `obembed similarity --image --text` with a clip: model, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import obembed
from obembed.cli import main


@pytest.fixture(scope="module")
def spec(tiny_clip_dir: Path) -> str:
    return f"clip:{tiny_clip_dir}"


@pytest.fixture(scope="module")
def clip(spec: str):
    return obembed.load(spec, device="cpu")


@pytest.fixture(scope="module")
def pics(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("cli-pics")
    a, b = folder / "red.png", folder / "dog photo.jpg"
    Image.new("RGB", (40, 30), (220, 10, 10)).save(a)
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(b)
    return [a, b]


def test_embed_images_json(spec, clip, pics) -> None:
    res = CliRunner().invoke(main, ["embed", "-m", spec, "--image", str(pics[0]), "--image", str(pics[1])])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["dimension"] == 16
    assert out["images"] == [str(p) for p in pics]
    assert "skipped" not in out
    assert np.allclose(np.array(out["embeddings"]), clip.embed_images(pics), atol=1e-5)


def test_embed_text_and_image_jsonl(spec, clip, pics) -> None:
    res = CliRunner().invoke(main, ["embed", "-m", spec, "a red square", "--image", str(pics[0]),
                                    "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["text"] for x in lines] == ["a red square", str(pics[0])]
    assert np.allclose(lines[0]["embedding"], clip.embed_documents(["a red square"])[0], atol=1e-5)
    assert np.allclose(lines[1]["embedding"], clip.embed_image(pics[0]), atol=1e-5)


def test_embed_skips_and_reports_bad_images(spec, pics, tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("just text")
    res = CliRunner().invoke(main, ["embed", "-m", spec, "--image", str(fake), "--image", str(pics[0]),
                                    "--image", str(tmp_path / "missing.jpg")])
    assert res.exit_code == 0, res.output
    assert "skipped: image 0" in res.stderr
    assert "fake.png" in res.stderr
    assert "missing.jpg': no such file" in res.stderr
    out = json.loads(res.stdout)
    assert out["images"] == [str(pics[0])]
    assert len(out["embeddings"]) == 1
    assert [s["image"] for s in out["skipped"]] == [str(fake), str(tmp_path / "missing.jpg")]
    # nothing readable at all: an error, exit 1, no traceback
    res = CliRunner().invoke(main, ["embed", "-m", spec, "--image", str(tmp_path)])
    assert res.exit_code == 1
    assert "is a directory" in res.stderr
    assert "none of the 1 images could be read" in res.stderr
    assert "Traceback" not in res.output


def test_similarity_cross_modal_matrix(spec, clip, pics) -> None:
    res = CliRunner().invoke(main, ["similarity", "-m", spec, "--image", str(pics[0]), "--image", str(pics[1]),
                                    "--text", "a dog", "--text", "a red square", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["labels"] == ["a dog", "a red square", "red.png", "dog photo.jpg"]
    m = np.array(out["matrix"])
    assert m.shape == (4, 4)
    assert np.allclose(np.diag(m), 1.0, atol=1e-5)
    t = clip.embed_documents(["a dog", "a red square"])
    i = clip.embed_images(pics)
    assert np.allclose(m[:2, 2:], t @ i.T, atol=1e-5)  # text x image block
    table = CliRunner().invoke(main, ["similarity", "-m", spec, "--image", str(pics[0]), "--text", "a dog"])
    assert table.exit_code == 0, table.output
    assert "[0] a dog" in table.stdout
    assert "[1] red.png" in table.stdout


def test_image_to_a_text_only_model_is_a_clear_error(pics, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBEMBED_FAST_START", "0")
    res = CliRunner().invoke(main, ["embed", "-m", "st:all-MiniLM-L6-v2", "--image", str(pics[0])])
    assert res.exit_code == 1
    assert "embeds text only; use an image provider such as clip:" in res.stderr
