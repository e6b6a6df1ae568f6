"""obembed.images: every input kind, every bad input named, EXIF / alpha / palette / animation / huge images."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from obembed.errors import InvalidInputError
from obembed.images import IMAGE_COLUMNS, describe_item, is_image_path, load_image, load_images


def _png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB")


# ------------------------------------------------------------------ good inputs
def test_path_str_pathlib_file_url_bytes_data_uri_and_pil_give_the_same_pixels(tmp_path: Path) -> None:
    img = _noise(40, 30)
    path = tmp_path / "noise one.png"  # a space: the file URL must be percent-decoded
    img.save(path)
    data = path.read_bytes()
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    loaded = [load_image(x) for x in (str(path), path, path.as_uri(), data, bytearray(data), uri, img)]
    ref = np.asarray(img)
    for li in loaded:
        assert li.image.mode == "RGB"
        assert np.array_equal(np.asarray(li.image), ref)
        assert (li.facts.width, li.facts.height) == (40, 30)
    f = loaded[0].facts
    assert f.format == "PNG"
    assert f.bytes == len(data)
    assert f.mode == "RGB"
    assert f.frames == 1
    assert f.uri == str(path.resolve())
    assert loaded[2].facts.uri == str(path.resolve())  # file:// URL → the path
    assert loaded[5].facts.uri == "<data URI #0>"  # never the payload itself
    assert loaded[3].facts.sha256 == f.sha256 == loaded[5].facts.sha256
    assert loaded[6].facts.format == "RAW"
    assert loaded[6].facts.bytes == 0


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # left half red, right half blue, stored landscape 40x20 with "rotate 90 CW to display" (6)
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(arr).save(path, quality=95, exif=exif)
    li = load_image(path)
    assert li.image.size == (20, 40)  # portrait, as displayed
    assert (li.facts.width, li.facts.height) == (20, 40)
    px = np.asarray(li.image).astype(int)
    top, bottom = px[2, 10], px[-3, 10]  # after rotating CW the red (left) half is on top
    assert (top[0] > 200, top[2] < 60) == (True, True), top
    assert (bottom[2] > 200, bottom[0] < 60) == (True, True), bottom
    # and the same file with orientation 1 stays landscape
    plain = tmp_path / "plain.jpg"
    Image.fromarray(arr).save(plain, quality=95)
    assert load_image(plain).image.size == (40, 20)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    img.paste((0, 0, 255, 255), (0, 0, 5, 10))  # opaque blue left half
    li = load_image(_png_bytes(img))
    px = np.asarray(li.image)
    assert li.facts.mode == "RGBA"
    assert tuple(px[5, 8]) == (255, 255, 255)  # transparent → white, not black and not red
    assert tuple(px[5, 1]) == (0, 0, 255)
    la = Image.new("LA", (4, 4), (0, 0))  # transparent black in LA
    assert tuple(np.asarray(load_image(_png_bytes(la)).image)[0, 0]) == (255, 255, 255)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    p = Image.new("P", (8, 8), 1)
    p.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    li = load_image(_png_bytes(p))
    assert li.facts.mode == "P"
    assert tuple(np.asarray(li.image)[0, 0]) == (0, 200, 0)
    gif = tmp_path / "t.gif"
    p.save(gif, transparency=1)
    assert tuple(np.asarray(load_image(gif).image)[0, 0]) == (255, 255, 255)


def test_grayscale_16bit_and_cmyk_become_rgb(tmp_path: Path) -> None:
    gray = Image.new("L", (6, 6), 77)
    assert tuple(np.asarray(load_image(_png_bytes(gray)).image)[0, 0]) == (77, 77, 77)
    deep = Image.fromarray(np.full((6, 6), 32768, np.uint16))  # mid-grey in 16 bits: scaled, not clipped to white
    px = np.asarray(load_image(_png_bytes(deep)).image)[0, 0]
    assert 120 <= px[0] <= 135
    assert px[0] == px[1] == px[2]
    cmyk = Image.new("CMYK", (6, 6), (0, 255, 255, 0))  # red in CMYK
    li = load_image(_png_bytes(cmyk, "JPEG", quality=95))
    assert li.facts.mode == "CMYK"
    r, g, b = np.asarray(li.image)[3, 3].astype(int)
    assert r > 200
    assert g < 60
    assert b < 60


def test_animated_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (12, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    li = load_image(path)
    assert li.facts.frames == 3
    assert li.facts.format == "GIF"
    r, g, b = np.asarray(li.image)[6, 6].astype(int)
    assert r > 200
    assert g < 50
    assert b < 50
    # a PIL image left on frame 2 is rewound too
    with Image.open(path) as im:
        im.seek(2)
        r, g, b = np.asarray(load_image(im).image)[6, 6].astype(int)
    assert r > 200
    assert b < 50


def test_images_are_shrunk_to_max_size_keeping_aspect() -> None:
    li = load_image(_png_bytes(_noise(600, 300)), max_size=100)
    assert li.image.size == (200, 100)
    assert (li.facts.width, li.facts.height) == (600, 300)  # facts keep the original size
    assert load_image(_png_bytes(_noise(600, 300)), max_size=None).image.size == (600, 300)


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    img = Image.linear_gradient("L").resize((8000, 8000)).convert("RGB")
    img.save(path, quality=70)
    del img
    return path


def test_huge_jpeg_is_decoded_at_reduced_scale(big_jpeg: Path) -> None:
    li = load_image(big_jpeg)  # 64 M pixels: decoded at 1/4 scale (draft), then shrunk
    assert (li.facts.width, li.facts.height) == (8000, 8000)
    assert li.image.size == (1024, 1024)
    # the pixel budget applies to what is decoded: 4 M after the draft fits in 5 M; the full 64 M would not
    assert load_image(big_jpeg, max_pixels=5_000_000).image.size == (1024, 1024)


def test_mpo_phone_photo_is_drafted_too() -> None:
    """Multi-picture JPEGs (MPO, what many phone cameras write): first picture, reduced-scale decode."""
    img = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "MPO", save_all=True, append_images=[img.rotate(10)])
    li = load_image(buf.getvalue(), max_pixels=5_000_000)  # 12 M pixels in full; 3 M at the 1/2 draft
    assert li.facts.format == "MPO"
    assert li.facts.frames == 2
    assert li.image.size == (1365, 1024)


def test_huge_png_over_the_pixel_budget_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("L", (3000, 2000)).save(path)
    with pytest.raises(InvalidInputError, match=r"wide\.png.*3000x2000.*pixel limit"):
        load_image(path, max_pixels=5_000_000)


def test_huge_jpeg_does_not_blow_memory(big_jpeg: Path) -> None:
    """Measured in a fresh process: peak RSS stays far below the 192 MB a full 8000x8000 RGB decode takes
    (~530 MB with the decoder's buffers, measured with the JPEG draft disabled).

    VmHWM of /proc/self/status is the child's own high-water mark; ``ru_maxrss`` would not do: Linux carries
    the parent's (pytest's, with torch loaded) peak into a child across fork + exec."""
    code = (
        "import sys\n"
        "def hwm():\n"
        "    with open('/proc/self/status') as f:\n"
        "        return next(int(ln.split()[1]) for ln in f if ln.startswith('VmHWM:')) // 1024\n"
        "from obembed.images import load_image\n"
        "base = hwm()\n"
        "li = load_image(sys.argv[1])\n"
        "print(li.image.size[0], hwm() - base)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(big_jpeg)], capture_output=True, text=True, timeout=60,
                         check=True)
    side, grew_mb = map(int, out.stdout.split())
    assert side == 1024
    assert grew_mb < 100, f"loading grew RSS by {grew_mb} MB"


# ------------------------------------------------------------------ bad inputs: each named, each with a fix
@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    files["missing"] = tmp_path / "nope.jpg"
    files["directory"] = tmp_path / "adir.png"
    files["directory"].mkdir()
    files["empty"] = tmp_path / "empty.jpg"
    files["empty"].write_bytes(b"")
    jpeg = _png_bytes(_noise(64, 64), "JPEG", quality=90)
    files["truncated"] = tmp_path / "cut.jpg"
    files["truncated"].write_bytes(jpeg[: len(jpeg) // 2])
    files["text"] = tmp_path / "notes.png"
    files["text"].write_text("hello, this is not a picture\n")
    files["svg"] = tmp_path / "logo.svg"
    files["svg"].write_text('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    files["pdf"] = tmp_path / "scan.jpg"
    files["pdf"].write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    files["heic"] = tmp_path / "IMG_0001.heic"
    files["heic"].write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    files["junk"] = tmp_path / "junk.webp"
    files["junk"].write_bytes(bytes(range(256)) * 4)
    eps = io.BytesIO()
    Image.new("RGB", (4, 4)).save(eps, "EPS") if _has_eps_writer() else eps.write(b"%!PS-Adobe-3.0 EPSF-3.0\n")
    files["eps"] = tmp_path / "fig.eps"
    files["eps"].write_bytes(eps.getvalue())
    return files


def _has_eps_writer() -> bool:
    from PIL import Image as _I

    _I.init()
    return "EPS" in _I.SAVE


@pytest.mark.parametrize(("key", "pattern"), [
    ("missing", r"nope\.jpg'?: no such file"),
    ("directory", r"adir\.png'?: is a directory"),
    ("empty", r"empty\.jpg'?: is an empty file \(0 bytes\)"),
    ("truncated", r"cut\.jpg'?: is truncated"),
    ("text", r"notes\.png'?: is a text file, not an image .*'hello, this is not"),
    ("svg", r"logo\.svg'?: is an SVG .*unsupported format"),
    ("pdf", r"scan\.jpg'?: is PDF .*unsupported image format"),
    ("heic", r"IMG_0001\.heic'?: is HEIC .*pillow-heif"),
    ("junk", r"junk\.webp'?: is not an image Pillow can read"),
    ("eps", r"fig\.eps'?: is (PostScript/EPS|EPS) .*unsupported"),  # never handed to Ghostscript
])
def test_bad_file_errors_name_the_file_and_the_fix(bad_files: dict[str, Path], key: str, pattern: str) -> None:
    with pytest.raises(InvalidInputError, match=pattern) as info:
        load_image(str(bad_files[key]), index=3)
    assert info.value.index == 3
    assert str(info.value).startswith("image 3 ")


def test_other_bad_items() -> None:
    with pytest.raises(InvalidInputError, match=r"empty \(0 bytes\)"):
        load_image(b"")
    with pytest.raises(InvalidInputError, match=r"https:// URLs are not fetched; download"):
        load_image("https://example.com/cat.jpg")
    with pytest.raises(InvalidInputError, match=r"is a int; pass a file path"):
        load_image(42)
    with pytest.raises(InvalidInputError, match=r"base64 payload is invalid"):
        load_image("data:image/png;base64,@@@not-base64@@@")
    with pytest.raises(InvalidInputError, match=r"empty path"):
        load_image("   ")


def test_load_images_skip_reports_every_bad_item_and_keeps_going(bad_files: dict[str, Path], tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    _noise(8, 8).save(good)
    items = [str(good), *[str(p) for p in bad_files.values()], good]
    ok, failed = load_images(items, on_error="skip")
    assert [i for i, _ in ok] == [0, len(items) - 1]
    assert sorted(failed) == list(range(1, len(items) - 1))
    for i, why in failed.items():
        assert Path(items[i]).name in why
    with pytest.raises(InvalidInputError, match=r"nope\.jpg"):
        load_images(items, on_error="raise")
    with pytest.raises(InvalidInputError, match="on_error"):
        load_images(items, on_error="ignore")  # type: ignore[arg-type]


def test_helpers() -> None:
    assert is_image_path("a/B.JPG")
    assert is_image_path("x.webp")
    assert not is_image_path("notes.txt")
    assert describe_item(b"abc", 2) == "<bytes #2, 3 bytes>"
    assert describe_item("data:image/png;base64,AAAA").startswith("<data URI")
    assert set(IMAGE_COLUMNS) == {"width", "height", "format", "bytes"}
    json.dumps(load_image(_png_bytes(_noise(4, 4))).facts.to_dict())  # facts are JSON-serialisable
