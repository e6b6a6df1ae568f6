"""Image items: load them safely, describe them, and turn them into store rows.

An *image item* is a file path (``str`` / :class:`~pathlib.Path`), a ``file://`` URL, a
``data:image/...;base64,`` URI, raw ``bytes``, or a :class:`PIL.Image.Image`.
:func:`load_image` turns any of them into an RGB image ready for a CLIP image processor:

* EXIF orientation applied (a phone photo taken sideways comes out upright);
* RGBA / LA / palette-with-transparency composited on white; grayscale, 16-bit, CMYK, YCbCr ... → RGB;
* animated GIF / WebP / APNG and multi-page TIFF → the first frame;
* very large images never decode at full size when avoidable: JPEGs are decoded at 1/2, 1/4 or 1/8 scale
  (``draft``), everything is then shrunk so its shorter side is at most ``max_size`` pixels; images over
  ``max_pixels`` (after the JPEG draft) or over Pillow's decompression-bomb limit are refused;
* only raster formats are opened (no EPS: Pillow would run Ghostscript on it);
* every failure is an :class:`~obembed.errors.InvalidInputError` naming the item and the fix
  (missing path, a directory, a 0-byte file, a text file named ``.png``, a truncated JPEG, SVG/HEIC/PDF ...).

:func:`image_rows` embeds many images with a provider and returns store rows (content = the image's
path/URI, ``metadata`` = width, height, format, bytes ...), skipping and reporting bad items.

Pillow is imported inside the functions (``import obembed`` stays fast).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from .errors import InvalidInputError, MissingDependencyError
from .protocols import EmbeddingProvider, ImageEmbeddingProvider

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_SIZE",
    "IMAGE_COLUMNS",
    "IMAGE_EXTENSIONS",
    "ImageFacts",
    "ImageRows",
    "LoadedImage",
    "OnError",
    "describe_item",
    "image_id",
    "image_rows",
    "is_image_path",
    "load_image",
    "load_images",
    "thumbnail_jpeg",
]

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]

DEFAULT_MAX_SIZE = 1024
"""Images are shrunk so their *shorter* side is at most this many pixels before any processing
(CLIP processors work at 224-336 px; the shorter side is what they resize to)."""
DEFAULT_MAX_PIXELS = 120_000_000
"""Largest pixel count decoded (after a JPEG's draft scaling): about 480 MB as RGBA. Larger is refused."""

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".webp", ".bmp", ".dib", ".tif", ".tiff",
    ".ico", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".avif", ".qoi", ".jp2", ".j2k", ".mpo", ".psd", ".pcx",
    ".sgi",
})
"""File extensions treated as images, everywhere: ingest routes these files to the image model, the server shows
their thumbnails (the content is still checked when loaded)."""

IMAGE_COLUMNS: dict[str, str] = {
    "width": "int",
    "height": "int",
    "format": "varchar(16)",
    "bytes": "bigint",
}
"""Scalar columns for an image collection (``create_collection(..., columns=IMAGE_COLUMNS)``);
:func:`image_rows` fills them when called with ``columns=True``."""

# Raster formats we let Pillow open. EPS (runs Ghostscript), PDF, WMF, MPEG, FITS, HDF5 and other
# non-photo formats are deliberately absent.
_SAFE_FORMATS = (
    "JPEG", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "MPO", "ICO", "CUR", "PPM", "TGA", "AVIF", "QOI",
    "JPEG2000", "PSD", "PCX", "SGI", "ICNS", "DDS", "BLP", "HEIF",
)

# Magic numbers of formats people try that Pillow (as configured) will not read: name them in the error.
_KNOWN_UNSUPPORTED: list[tuple[bytes, int, str]] = [
    (b"%PDF", 0, "PDF (render its pages to PNG first, or ingest it as text)"),
    (b"%!PS", 0, "PostScript/EPS (convert it to PNG first)"),
    (b"\xc5\xd0\xd3\xc6", 0, "EPS (convert it to PNG first)"),
    (b"ftypheic", 4, "HEIC (install pillow-heif, or convert it to JPEG)"),
    (b"ftypheix", 4, "HEIC (install pillow-heif, or convert it to JPEG)"),
    (b"ftypmif1", 4, "HEIF (install pillow-heif, or convert it to JPEG)"),
    (b"ftypmsf1", 4, "HEIF (install pillow-heif, or convert it to JPEG)"),
    (b"ftypavif", 4, "AVIF (this Pillow has no AVIF support: upgrade Pillow, or convert it to PNG)"),
    (b"\xff\x0a", 0, "JPEG XL (convert it to PNG or JPEG)"),
    (b"\x00\x00\x00\x0cJXL ", 0, "JPEG XL (convert it to PNG or JPEG)"),
    (b"ftypisom", 4, "an MP4 video (extract a frame first)"),
    (b"ftypmp42", 4, "an MP4 video (extract a frame first)"),
    (b"\x1a\x45\xdf\xa3", 0, "a Matroska/WebM video (extract a frame first)"),
    (b"PK\x03\x04", 0, "a ZIP archive (unpack it first)"),
]


@dataclass(frozen=True)
class ImageFacts:
    """What is stored about an image: where it came from and its size as displayed (EXIF orientation applied)."""

    uri: str
    """The absolute path (also for a ``file://`` URL), or ``<bytes #i>`` / ``<data URI #i>`` / ``<PIL #i>``."""
    width: int
    height: int
    format: str
    """Pillow's format name: JPEG, PNG, GIF, WEBP ... (``RAW`` for a PIL image without one)."""
    bytes: int
    """Encoded size in bytes (0 for a PIL image given directly)."""
    mode: str
    """The original colour mode (RGB, RGBA, P, L, CMYK ...), before conversion to RGB."""
    frames: int = 1
    """Number of frames/pages (only the first is embedded)."""
    sha256: str = ""
    """Hash of the encoded bytes (for incremental ingest); for a PIL image, of its pixels."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedImage:
    """An RGB image ready for an image processor, and its facts."""

    image: PILImage
    facts: ImageFacts


@dataclass
class ImageRows:
    """Result of :func:`image_rows`: the rows to upsert and the items that were skipped (index → reason)."""

    rows: list[dict[str, Any]]
    failed: dict[int, str] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)
    """A printable name of every input item, by index (so ``failed`` can be reported)."""

    def failures(self) -> list[tuple[str, str]]:
        """``[(item name, reason), ...]`` for the skipped items."""
        return [(self.items[i], why) for i, why in sorted(self.failed.items())]


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is a dependency of the clip extra
        raise MissingDependencyError("pillow", "clip", "images") from exc
    return Image


def describe_item(item: Any, index: int | None = None) -> str:
    """A short printable name for an image item, for messages and reports (never the raw bytes)."""
    suffix = f" #{index}" if index is not None else ""
    if isinstance(item, str | os.PathLike):
        s = os.fspath(item)
        if isinstance(s, bytes):
            s = s.decode("utf-8", "replace")
        if s.startswith("data:"):
            return f"<data URI{suffix}, {len(s)} chars>"
        return s
    if isinstance(item, bytes | bytearray | memoryview):
        return f"<bytes{suffix}, {len(item)} bytes>"
    if type(item).__module__.startswith("PIL"):
        return f"<PIL image{suffix}>"
    return f"<{type(item).__name__}{suffix}>"


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether a file name has an image extension (ingest uses this to route files)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def image_id(uri: str, sha256: str) -> str:
    """The row id of an image, the same from :func:`image_rows` and ``obembed ingest``.

    A file's id comes from its absolute path (the id ingest gives chunk 0 of a file: a changed file replaces
    its row, a file is never stored twice); an image without a path (bytes, data URI, PIL image: ``uri`` starts
    with ``<``) is named by its content, ``img:`` + the first 32 hex digits of its sha256.
    """
    if uri.startswith("<"):
        return f"img:{sha256[:32]}"
    from .ingest.ids import chunk_id

    return chunk_id(uri, "", 0)


def _bad(name: str, why: str, index: int | None) -> InvalidInputError:
    where = f"image {index} " if index is not None else "image "
    return InvalidInputError(f"{where}{name!r}: {why}", index=index)


def _read_item(item: Any, index: int | None) -> tuple[bytes, str, str]:
    """The encoded bytes of a path / URL / bytes item, its printable name, and its stored URI."""
    if isinstance(item, bytes | bytearray | memoryview):
        data = bytes(item)
        name = describe_item(item, index)
        if not data:
            raise _bad(name, "is empty (0 bytes); pass the image file's content", index)
        return data, name, f"<bytes #{index if index is not None else 0}>"
    if not isinstance(item, str | os.PathLike):
        raise _bad(describe_item(item, index), f"is a {type(item).__name__}; pass a file path, file:// URL, "
                   "bytes or a PIL image", index)
    raw = os.fspath(item)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if not text.strip():
        raise _bad(text, "is an empty path; pass an image file", index)
    if text.startswith("data:"):
        return _read_data_uri(text, index), describe_item(text, index), f"<data URI #{index or 0}>"
    scheme = urlparse(text).scheme.lower() if "://" in text else ""
    if scheme in ("http", "https", "ftp", "s3", "gs"):
        raise _bad(text, f"{scheme}:// URLs are not fetched; download the image and pass the local file", index)
    if scheme == "file":
        parsed = urlparse(text)
        path = Path(url2pathname(unquote(parsed.path)))
    elif scheme:
        raise _bad(text, f"unknown URL scheme {scheme!r}; pass a local path or a file:// URL", index)
    else:
        path = Path(os.path.expanduser(text))
    name = text
    try:
        st = path.stat()
    except FileNotFoundError:
        raise _bad(name, "no such file; check the path", index) from None
    except OSError as exc:
        raise _bad(name, f"cannot be read ({exc.strerror or exc}); check the path and its permissions",
                   index) from exc
    if path.is_dir():
        raise _bad(name, "is a directory, not an image file; pass the image files inside it "
                         "(or use `obembed ingest` for folders)", index)
    if st.st_size == 0:
        raise _bad(name, "is an empty file (0 bytes); re-export or re-download it", index)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _bad(name, f"cannot be read ({exc.strerror or exc}); check its permissions", index) from exc
    return data, name, os.path.abspath(path)  # as ingest's walk names files (symlinks not resolved)


def _read_data_uri(uri: str, index: int | None) -> bytes:
    head, sep, payload = uri.partition(",")
    name = describe_item(uri, index)
    if not sep or not head.endswith(";base64"):
        raise _bad(name, "only base64 data URIs are accepted (data:image/png;base64,...)", index)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(name, f"the base64 payload is invalid ({exc})", index) from exc
    if not data:
        raise _bad(name, "the data URI holds no bytes", index)
    return data


def _sniff(data: bytes) -> str:
    """Why Pillow could not identify ``data``: a named unsupported format, text, or unknown bytes."""
    head = data[:64]
    for magic, offset, what in _KNOWN_UNSUPPORTED:
        if head[offset:offset + len(magic)] == magic:
            return f"is {what}: an unsupported image format"
    start = data[:512].lstrip()
    low = start[:256].lower()
    if low.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096].lower():
        return "is an SVG (vector) image, an unsupported format: render it to PNG first"
    if low.startswith((b"<!doctype html", b"<html")):
        return "is an HTML page, not an image (a failed download?)"
    try:
        sample = data[:512].decode("utf-8")
    except UnicodeDecodeError:
        sample = None
    if sample is not None and sample.strip() and all(c.isprintable() or c in "\r\n\t" for c in sample[:200]):
        return f"is a text file, not an image (it starts with {sample[:24]!r}); check the file"
    return (f"is not an image Pillow can read (first bytes {head[:8].hex(' ')}); supported: JPEG, PNG, GIF, "
            "WebP, BMP, TIFF, AVIF, ICO, PPM, TGA ...")


def _corrupt(exc: BaseException) -> str:
    msg = str(exc)
    if "truncat" in msg.lower() or isinstance(exc, EOFError):
        return "is truncated (the file ends before the image data does); re-export or re-download it"
    return f"is corrupt ({msg or type(exc).__name__}); re-export or re-download it"


def _to_rgb(img: PILImage) -> PILImage:
    """Any mode → RGB; transparency composited on white; 16/32-bit and float scaled, not clipped."""
    Image = _pil()
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA") if ("transparency" in img.info or mode == "PA") else img.convert("RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        if mode == "F":
            scale = 255.0 if hi <= 1.0 else (255.0 / hi if hi > 255 else 1.0)
        elif mode.startswith("I;16") or hi <= 65535:
            scale = 1.0 if (hi <= 255 and not mode.startswith("I;16")) else 255.0 / 65535.0
        else:
            scale = 255.0 / hi
        gray: PILImage = Image.fromarray(np.clip(arr * scale, 0, 255).round().astype(np.uint8), "L")
        return gray.convert("RGB")
    if mode in ("RGBA", "LA", "La", "RGBa") or (mode in ("L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg: PILImage = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGBX ...


def _shrink_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The size with the shorter side at most ``max_size`` (aspect ratio kept)."""
    short = min(width, height)
    if short <= max_size:
        return width, height
    scale = max_size / short
    return max(1, round(width * scale)), max(1, round(height * scale))


_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def load_image(
    item: Any,
    *,
    index: int | None = None,
    max_size: int | None = DEFAULT_MAX_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Load one image item as RGB with its :class:`ImageFacts`; see the module docstring for the rules.

    ``index`` is only used in error messages (and ``InvalidInputError.index``). ``max_size=None`` keeps
    the full resolution. Raises :class:`InvalidInputError` naming the item for anything unusable.
    """
    Image = _pil()
    from PIL import ImageOps

    if type(item).__module__.startswith("PIL") and isinstance(item, Image.Image):
        return _load_pil(item, index=index, max_size=max_size, max_pixels=max_pixels)
    data, name, uri = _read_item(item, index)
    img = _open(data, name, index)
    try:
        fmt = img.format or "UNKNOWN"
        orig_mode = img.mode
        frames = int(getattr(img, "n_frames", 1) or 1)
        width, height = img.size
        try:
            orientation = int(img.getexif().get(0x0112, 1) or 1)
        except Exception:  # a broken EXIF block is not a reason to refuse the pixels
            orientation = 1
        shown_w, shown_h = (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)
        if max_size and fmt in ("JPEG", "MPO"):  # MPO: multi-picture JPEG, common from phone cameras
            # decode at 1/2, 1/4 or 1/8 scale when that still leaves the shorter side >= max_size
            img.draft("RGB", _shrink_size(width, height, max_size))
        decoded = img.size[0] * img.size[1]
        if decoded > max_pixels:
            raise _bad(name, f"is {width}x{height} = {width * height / 1e6:.0f} M pixels, more than the "
                             f"{max_pixels / 1e6:.0f} M pixel limit for {fmt}; downscale it first "
                             "(JPEGs this size are decoded at reduced scale and are fine)", index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if frames > 1:
                img.seek(0)
            img.load()
            oriented = ImageOps.exif_transpose(img)
        if oriented is None:  # pragma: no cover - only with in_place=True
            oriented = img
        if max_size:
            target = _shrink_size(*oriented.size, max_size)
            if target != oriented.size:
                oriented = oriented.copy() if oriented is img else oriented
                oriented.thumbnail(target, Image.Resampling.BICUBIC)
        rgb = _to_rgb(oriented)
    except InvalidInputError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise _bad(name, _corrupt(exc), index) from exc
    finally:
        img.close()
    facts = ImageFacts(uri=uri, width=shown_w, height=shown_h, format=fmt, bytes=len(data), mode=orig_mode,
                       frames=frames, sha256=hashlib.sha256(data).hexdigest())
    return LoadedImage(rgb, facts)


def _open(data: bytes, name: str, index: int | None) -> PILImage:
    """The image in ``data``, opened (not decoded) by a raster format only."""
    Image = _pil()
    from PIL import UnidentifiedImageError

    Image.init()
    formats = [f for f in _SAFE_FORMATS if f in Image.OPEN]
    try:
        with warnings.catch_warnings():
            # we enforce our own pixel budget below (after the JPEG draft), so Pillow's warning is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img: PILImage = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:
        raise _bad(name, f"is too large to decode safely ({exc}); downscale it first", index) from exc
    except UnidentifiedImageError:
        raise _bad(name, _sniff(data), index) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise _bad(name, _corrupt(exc), index) from exc
    return img


def thumbnail_jpeg(item: Any, size: int = 256, *, max_pixels: int = DEFAULT_MAX_PIXELS, quality: int = 80) -> bytes:
    """A JPEG of ``item`` whose longer side is at most ``size`` px, decoded with as little memory as the format
    allows: a JPEG at 1/2..1/8 scale (``draft``); any other format once at full size, then shrunk *in place*
    (``reduce`` by an integer factor, then resampled) and only then oriented and converted to RGB, so the peak is
    one decoded copy (the bytes per pixel of the file's own mode), never a full-size RGB copy on top.
    Raises :class:`InvalidInputError` as :func:`load_image` does (over ``max_pixels``, corrupt, not an image)."""
    Image = _pil()
    from PIL import ImageOps

    data, name, _ = _read_item(item, None)
    img = _open(data, name, None)
    try:
        fmt = img.format or "UNKNOWN"
        width, height = img.size
        if fmt in ("JPEG", "MPO"):
            img.draft("RGB", (size, size))  # the smallest scale whose sides are still >= size
        if img.size[0] * img.size[1] > max_pixels:
            raise _bad(name, f"is {width}x{height} = {width * height / 1e6:.0f} M pixels, more than the "
                             f"{max_pixels / 1e6:.0f} M pixel limit for {fmt}; downscale it first", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if int(getattr(img, "n_frames", 1) or 1) > 1:
                img.seek(0)
            img.load()
            if img.mode in ("P", "PA", "1") and img.size[0] * img.size[1] <= 16_000_000:
                img = _to_rgb(img)  # palette images resample as NEAREST; small ones convert first
            try:
                img.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)  # in place
            except ValueError:  # a mode Pillow cannot resample (16-bit ...): convert, then shrink
                img = _to_rgb(img)
                img.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
            small = ImageOps.exif_transpose(img) or img
            rgb = _to_rgb(small)
    except InvalidInputError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise _bad(name, _corrupt(exc), None) from exc
    finally:
        img.close()
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _load_pil(img: PILImage, *, index: int | None, max_size: int | None, max_pixels: int) -> LoadedImage:
    from PIL import ImageOps

    name = describe_item(img, index)
    w, h = img.size
    if w == 0 or h == 0:
        raise _bad(name, f"has no pixels ({w}x{h})", index)
    if w * h > max_pixels:
        raise _bad(name, f"is {w}x{h}, more than the {max_pixels / 1e6:.0f} M pixel limit; downscale it", index)
    frames = int(getattr(img, "n_frames", 1) or 1)
    try:
        if frames > 1 and img.tell() != 0:
            img.seek(0)
        oriented = ImageOps.exif_transpose(img) or img
        if max_size:
            target = _shrink_size(*oriented.size, max_size)
            if target != oriented.size:
                oriented = oriented.copy() if oriented is img else oriented
                oriented.thumbnail(target)
        rgb = _to_rgb(oriented)
    except (OSError, ValueError, EOFError) as exc:
        raise _bad(name, f"cannot be converted to RGB ({exc})", index) from exc
    digest = hashlib.sha256(rgb.tobytes()).hexdigest()
    shown_w, shown_h = _oriented_size(img)
    facts = ImageFacts(uri=f"<PIL #{index if index is not None else 0}>", width=shown_w, height=shown_h,
                       format=img.format or "RAW", bytes=0, mode=img.mode, frames=frames, sha256=digest)
    return LoadedImage(rgb, facts)


def _oriented_size(img: PILImage) -> tuple[int, int]:
    try:
        orientation = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:
        orientation = 1
    w, h = img.size
    return (h, w) if orientation in _SWAPPING_ORIENTATIONS else (w, h)


def load_images(
    items: Iterable[Any],
    *,
    on_error: OnError = "raise",
    max_size: int | None = DEFAULT_MAX_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    start: int = 0,
) -> tuple[list[tuple[int, LoadedImage]], dict[int, str]]:
    """Load many items: ``([(index, LoadedImage), ...], {index: reason})``.

    ``on_error="raise"`` raises at the first bad item; ``"skip"`` logs it, records it and goes on.
    """
    if on_error not in ("raise", "skip"):
        raise InvalidInputError(f"on_error={on_error!r}; use 'raise' or 'skip'")
    if isinstance(items, str | bytes | os.PathLike):
        items = [items]
    ok: list[tuple[int, LoadedImage]] = []
    failed: dict[int, str] = {}
    for i, item in enumerate(items, start):
        try:
            ok.append((i, load_image(item, index=i, max_size=max_size, max_pixels=max_pixels)))
        except InvalidInputError as exc:
            if on_error == "raise":
                raise
            log.warning("skipping %s", exc)
            failed[i] = str(exc)
    return ok, failed


def image_rows(
    items: Sequence[Any],
    provider: EmbeddingProvider | ImageEmbeddingProvider,
    *,
    ids: Sequence[str] | None = None,
    columns: bool = False,
    extra: Sequence[dict[str, Any]] | None = None,
    batch_size: int | None = None,
    on_error: OnError = "skip",
) -> ImageRows:
    """Embed image items with ``provider`` (an image provider such as ``clip:``) and build store rows.

    Each row: ``id`` (given, else :func:`image_id`: from the file's path, or ``img:`` + the content hash for
    bytes / data URIs / PIL images: the id ``obembed ingest`` gives the same file), ``vector``,
    ``content`` (the path/URI), ``source`` (the path/URI), ``chunk`` 0, ``content_hash`` (sha256 of the
    bytes), ``metadata`` (``kind: image``, width, height, format, bytes, mode, frames), plus the
    :data:`IMAGE_COLUMNS` values at top level when ``columns=True`` (the collection must declare them),
    plus ``extra[i]`` merged in (scalar columns of your own; its ``metadata`` dict is merged into the
    image's). Bad items are skipped and reported in ``ImageRows.failed`` (``on_error="raise"`` stops at the
    first one instead).

    ``coll.upsert(result.rows)``; then ``coll.search("a red square")`` finds images by text.
    """
    if ids is not None and len(ids) != len(items):
        raise InvalidInputError(f"{len(ids)} ids for {len(items)} images; give one id per image")
    if extra is not None and len(extra) != len(items):
        raise InvalidInputError(f"{len(extra)} extra dicts for {len(items)} images; give one per image")
    names = [describe_item(it, i) for i, it in enumerate(items)]
    if not isinstance(provider, ImageEmbeddingProvider):
        raise InvalidInputError(
            f"{getattr(provider, 'spec', provider)!r} does not embed images; use an image provider such as "
            "clip:openai/clip-vit-base-patch32"
        )
    res = provider.embed_images_result(items, on_error=on_error, batch_size=batch_size)
    facts: list[ImageFacts] = res.extra["facts"]
    kept: list[int] = res.extra["indices"]
    rows: list[dict[str, Any]] = []
    for row_i, (i, f) in enumerate(zip(kept, facts, strict=True)):
        meta = {"kind": "image", "width": f.width, "height": f.height, "format": f.format, "bytes": f.bytes,
                "mode": f.mode, "frames": f.frames}
        row: dict[str, Any] = {
            "id": ids[i] if ids is not None else image_id(f.uri, f.sha256),
            "vector": res.vectors[row_i],
            "content": f.uri,
            "source": f.uri,
            "chunk": 0,
            "content_hash": f.sha256,
            "metadata": meta,
        }
        if columns:
            row.update(width=f.width, height=f.height, format=f.format, bytes=f.bytes)
        if extra is not None:
            more = dict(extra[i])
            if isinstance(more.get("metadata"), dict):
                more["metadata"] = {**meta, **more["metadata"]}
            row.update(more)
        rows.append(row)
    return ImageRows(rows=rows, failed=dict(res.failed), items=names)
