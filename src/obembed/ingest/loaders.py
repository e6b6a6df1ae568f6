"""Finding and reading sources: folder walks and one loader per file type.

Every problem with one file or one record becomes a :class:`Failure` (with the path, the line where there
is one, and a reason that says what to do); loading never raises for bad input, so a run goes on.

Text decoding policy: UTF-8 (a UTF-8 BOM is dropped; a UTF-16 BOM switches to UTF-16). Invalid byte
sequences are **replaced with U+FFFD and counted**: the file is ingested and the report carries a warning
with the number of replacements, so a Latin-1 file shows up instead of silently vanishing. A file whose
first 8 KiB hold NUL bytes or mostly control bytes is *binary*: reported and skipped, whatever its extension.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import json
import logging
import os
import stat
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import InvalidInputError
from ..images import IMAGE_EXTENSIONS

__all__ = [
    "DOCUMENT_TYPES",
    "IMAGE_TYPES",
    "RECORD_TYPES",
    "Document",
    "Failure",
    "LoadOptions",
    "Notice",
    "load_file",
    "walk",
]

log = logging.getLogger(__name__)

DOCUMENT_TYPES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
                  ".html": "html", ".htm": "html", ".pdf": "pdf"}
RECORD_TYPES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}
IMAGE_TYPES = IMAGE_EXTENSIONS  # one list: obembed.images
SUPPORTED = set(DOCUMENT_TYPES) | set(RECORD_TYPES) | IMAGE_TYPES

BLOCK = 1 << 20  # text files are read 1 MiB at a time
SNIFF = 8192


@dataclass
class Failure:
    """One file or record that could not be used, and why."""

    source: str
    reason: str
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "reason": self.reason}
        if self.line is not None:
            d["line"] = self.line
        return d

    def __str__(self) -> str:
        return f"{self.source}{f':{self.line}' if self.line is not None else ''}: {self.reason}"


@dataclass
class Notice:
    """Something worth knowing that did not stop a file (e.g. invalid UTF-8 replaced)."""

    source: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "message": self.message}


@dataclass
class Document:
    """One thing to chunk and embed: a whole file, one record of a records file, or an image."""

    source: str
    key: str = ""
    """Record key inside the source ("" for a whole file): the id field's value, else ``L<line>``."""
    kind: Literal["text", "markdown", "image"] = "text"
    text: str | None = None
    blocks: Iterable[str] | None = None
    """Streamed text (large plain-text files), used instead of ``text``."""
    sections: list[tuple[str, str, dict[str, Any]]] | None = None
    """Pre-split parts ``(heading, text, extra metadata)``: PDF pages."""
    metadata: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


@dataclass
class LoadOptions:
    """How files are read (the CLI flags of ``obembed ingest``)."""

    text_field: str = "text"
    id_field: str | None = "id"
    """Record field giving a stable key (default ``id`` when present; else the line/row number)."""
    columns: dict[str, str] = field(default_factory=dict)
    """Declared scalar columns ``name -> SQL type``; other record fields go to the JSON metadata."""
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    max_file_bytes: int = 20 * 1024 * 1024
    """Single-document files (txt/md/html/pdf) above this are skipped with a reason (records files stream)."""
    hidden: bool = False
    """Walk into hidden files and folders (``.git`` ...)."""


# ---------------------------------------------------------------------------------------------- walking
def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def walk(paths: Sequence[str | os.PathLike[str]], options: LoadOptions | None = None
         ) -> Iterator[Path | Failure]:
    """Files under ``paths`` (recursively, symlinks followed once, loops reported), in a stable order.

    A path named explicitly is always used if its type is supported; files found by walking are filtered
    by ``include`` (default: every supported extension) and ``exclude`` glob patterns, matched against
    the path relative to the walked folder and against the file name.
    """
    opts = options or LoadOptions()
    for raw in paths:
        p = Path(os.path.abspath(os.fspath(raw)))
        try:
            st = p.stat()
        except FileNotFoundError:
            yield Failure(str(p), "path does not exist" + (" (dangling symlink)" if p.is_symlink() else "")
                          + "; check the spelling")
            continue
        except OSError as exc:
            yield Failure(str(p), _os_reason(exc))
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(p, opts)
        elif p.suffix.lower() in SUPPORTED:
            yield p
        else:
            yield Failure(str(p), f"unsupported file type {p.suffix or '(no extension)'!r}; supported: "
                          + ", ".join(sorted(SUPPORTED)))


def _walk_dir(root: Path, opts: LoadOptions) -> Iterator[Path | Failure]:
    visited: set[tuple[int, int]] = set()

    def rec(d: Path) -> Iterator[Path | Failure]:
        try:
            st = d.stat()
        except OSError as exc:
            yield Failure(str(d), _os_reason(exc))
            return
        ident = (st.st_dev, st.st_ino)
        if ident in visited:
            yield Failure(str(d), f"symlink loop: {d} leads back to {os.path.realpath(d)}, already walked; "
                          "not followed again")
            return
        visited.add(ident)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            yield Failure(str(d), _os_reason(exc))
            return
        for e in entries:
            if not opts.hidden and e.name.startswith("."):
                continue
            path = Path(e.path)
            try:
                is_dir = e.is_dir(follow_symlinks=True)
            except OSError as exc:
                yield Failure(str(path), _os_reason(exc))
                continue
            if is_dir:
                yield from rec(path)
                continue
            rel = path.relative_to(root).as_posix()
            if opts.exclude and _matches(rel, opts.exclude):
                continue
            if opts.include:
                if not _matches(rel, opts.include):
                    continue
            elif path.suffix.lower() not in SUPPORTED:
                continue
            if e.is_symlink() and not path.exists():
                try:
                    path.stat()
                except OSError as exc:
                    yield Failure(str(path), _os_reason(exc))
                    continue
            yield path

    yield from rec(root)


def _os_reason(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "symlink loop (the link points back to itself); fix or remove the link"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied ({exc.strerror}); make the file readable or exclude it"
    if exc.errno == errno.ENOENT:
        return "does not exist (dangling symlink?)"
    return f"could not read: {exc.strerror or exc} (errno {exc.errno})"


# ---------------------------------------------------------------------------------------------- bytes -> text
class _Decoder:
    """UTF-8 (or BOM-declared UTF-16) incremental decoding with invalid sequences replaced and counted."""

    def __init__(self, head: bytes) -> None:
        self.encoding = "utf-8"
        self.skip = 0
        if head.startswith(codecs.BOM_UTF8):
            self.skip = 3
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            self.encoding = "utf-16"
        self._dec = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        self.replaced = 0

    def decode(self, data: bytes, final: bool = False) -> str:
        if self.skip:
            data, self.skip = data[self.skip:], 0
        text = self._dec.decode(data, final)
        self.replaced += text.count("\ufffd")
        return text


def sniff_binary(head: bytes) -> str | None:
    """A reason if ``head`` (a file's first bytes) looks binary, else None."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    if b"\x00" in head:
        return "binary content (NUL bytes) in a text-type file; not text, skipped"
    if head:
        control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27, 8))
        if control / len(head) > 0.10:
            return "binary content (mostly control bytes) in a text-type file; not text, skipped"
    return None


class _TextFile:
    """Opened text file: sniffed, decoded lazily in blocks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "rb")
        self.head = self.f.read(SNIFF)
        self.decoder = _Decoder(self.head)

    def blocks(self) -> Iterator[str]:
        try:
            data = self.head
            while True:
                more = self.f.read(BLOCK)
                final = not more
                text = self.decoder.decode(data, final)
                if text:
                    yield text
                if final:
                    break
                data = more
        finally:
            self.f.close()

    def read(self) -> str:
        return "".join(self.blocks())

    def close(self) -> None:
        self.f.close()


# ---------------------------------------------------------------------------------------------- loaders
LoadItem = Document | Failure | Notice


def load_file(path: Path, options: LoadOptions | None = None) -> Iterator[LoadItem]:
    """Documents of one file (several for records files), plus failures and notices; never raises for bad input."""
    opts = options or LoadOptions()
    source = str(path)
    ext = path.suffix.lower()
    try:
        st = path.stat()
    except OSError as exc:
        yield Failure(source, _os_reason(exc))
        return
    if not stat.S_ISREG(st.st_mode):
        yield Failure(source, "not a regular file (device, FIFO or socket); skipped")
        return
    if ext in IMAGE_TYPES:
        if st.st_size == 0:
            yield Failure(source, "empty file (0 bytes)")
        else:
            yield Document(source, kind="image", metadata={"type": ext.lstrip(".")})
        return
    kind = DOCUMENT_TYPES.get(ext) or RECORD_TYPES.get(ext)
    if kind is None:
        yield Failure(source, f"unsupported file type {ext or '(no extension)'!r}")
        return
    # whole-file formats (read into memory at once): documents, and JSON (parsed whole, unlike JSONL/CSV)
    if (kind in DOCUMENT_TYPES.values() or kind == "json") and kind != "text" and st.st_size > opts.max_file_bytes:
        yield Failure(source, f"file is {st.st_size / 2**20:.1f} MiB, over the {opts.max_file_bytes / 2**20:g} MiB "
                              "limit for one document; raise --max-file-size or split it")
        return
    if kind == "text" and st.st_size > opts.max_file_bytes:
        yield Failure(source, f"file is {st.st_size / 2**20:.1f} MiB, over the {opts.max_file_bytes / 2**20:g} MiB "
                              "limit for one document; raise --max-file-size (text files are streamed) or split it")
        return
    try:
        if kind == "pdf":
            yield from _load_pdf(path)
            return
        tf = _TextFile(path)
    except OSError as exc:
        yield Failure(source, _os_reason(exc))
        return
    except Exception as exc:  # a loader bug or a parser's surprise must cost this file only, not the run
        log.debug("loading %s failed", source, exc_info=True)
        yield Failure(source, f"could not be loaded: {type(exc).__name__}: {_short(exc)}")
        return
    why = sniff_binary(tf.head)
    if why:
        tf.close()
        yield Failure(source, why)
        return
    try:
        if kind == "text":
            yield from _load_text(tf, source)
        elif kind == "markdown":
            yield from _whole(tf, source, "markdown")
        elif kind == "html":
            yield from _load_html(tf, source)
        elif kind == "jsonl":
            yield from _load_jsonl(tf, source, opts)
        elif kind == "json":
            yield from _load_json(tf, source, opts)
        else:
            yield from _load_csv(tf, source, opts, delimiter="\t" if kind == "tsv" else ",")
    except OSError as exc:
        yield Failure(source, _os_reason(exc))
    except Exception as exc:  # as above: this file's failure, never the run's
        log.debug("loading %s failed", source, exc_info=True)
        yield Failure(source, f"could not be loaded: {type(exc).__name__}: {_short(exc)}")
    finally:
        tf.close()
    if tf.decoder.replaced:
        yield Notice(source, f"{tf.decoder.replaced} invalid UTF-8 sequence(s) replaced with U+FFFD; "
                             "convert the file to UTF-8 for exact text")


def _empty(source: str, raw: bool) -> Failure:
    return Failure(source, "empty file (0 bytes)" if raw else "empty file (only whitespace)")


def _load_text(tf: _TextFile, source: str) -> Iterator[LoadItem]:
    # streamed: peek the first non-blank block to tell an empty file apart
    blocks = tf.blocks()
    first = ""
    for b in blocks:
        first += b
        if first.strip():
            break
    if not first.strip():
        yield _empty(source, not tf.head)
        return

    def all_blocks() -> Iterator[str]:
        yield first
        yield from blocks

    yield Document(source, kind="text", blocks=all_blocks())


def _whole(tf: _TextFile, source: str, kind: Literal["text", "markdown"]) -> Iterator[LoadItem]:
    text = tf.read()
    if not text.strip():
        yield _empty(source, not tf.head)
        return
    yield Document(source, kind=kind, text=text)


def _load_html(tf: _TextFile, source: str) -> Iterator[LoadItem]:
    from bs4 import BeautifulSoup

    html = tf.read()
    if not html.strip():
        yield _empty(source, not tf.head)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "head"]):
        title = tag.find("title") if tag.name == "head" else None
        if title is not None and title.get_text(strip=True):
            tag.replace_with(soup.new_string(f"\n# {title.get_text(strip=True)}\n"))
        else:
            tag.decompose()
    for level in range(1, 7):  # headings become Markdown headings: the chunker keeps them as context
        for h in soup.find_all(f"h{level}"):
            h.replace_with(soup.new_string(f"\n{'#' * level} {h.get_text(' ', strip=True)}\n"))
    text = soup.get_text("\n")
    lines = [ln.strip() for ln in text.splitlines()]
    out: list[str] = []
    for ln in lines:
        if ln or (out and out[-1]):
            out.append(ln)
    text = "\n".join(out).strip()
    if not text:
        yield Failure(source, "HTML has no visible text (only markup/scripts)")
        return
    yield Document(source, kind="markdown", text=text)


def _load_pdf(path: Path) -> Iterator[LoadItem]:
    source = str(path)
    try:
        from pypdf import PdfReader
    except ImportError:
        from ..errors import MissingDependencyError

        yield Failure(source, str(MissingDependencyError("pypdf", "ingest", "PDF files")))
        return
    with open(path, "rb") as f:
        head = f.read(1024)
    if not head:
        yield _empty(source, True)
        return
    if b"%PDF" not in head:
        yield Failure(source, "not a PDF (no %PDF header); skipped")
        return
    # pypdf raises far more than PdfReadError on malformed files (AttributeError, IndexError, RecursionError,
    # AssertionError, ZeroDivisionError ...): any exception is this file's failure, never the run's
    failed_pages: list[int] = []
    sections = []
    try:
        logging.getLogger("pypdf").setLevel(logging.ERROR)
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                yield Failure(source, "encrypted PDF; decrypt it first (qpdf --decrypt)")
                return
        n_pages = len(reader.pages)
        for i in range(n_pages):
            try:
                text = (reader.pages[i].extract_text() or "").strip()
            except Exception as exc:  # one bad page: report it, keep the others
                failed_pages.append(i + 1)
                yield Failure(source, f"page {i + 1}: unreadable ({type(exc).__name__}: {_short(exc)})", i + 1)
                continue
            if text:
                sections.append(("", text, {"page": i + 1}))
    except Exception as exc:
        yield Failure(source, f"unreadable PDF: {type(exc).__name__}: {_short(exc)}")
        return
    if not sections:
        yield Failure(source, f"no readable page ({len(failed_pages)} of {n_pages} failed)" if failed_pages
                      else "PDF has no extractable text (scanned images? run OCR first)")
        return
    yield Document(source, kind="text", sections=sections, metadata={"pages": n_pages})


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------------------------- records
_CASTS = {"int": int, "integer": int, "bigint": int, "smallint": int, "tinyint": int, "mediumint": int,
          "float": float, "double": float, "real": float, "decimal": float, "numeric": float}


def cast_value(value: Any, sql_type: str) -> Any:
    """Cast a record value (a CSV string, a JSON value) to a declared column's type; ValueError if it can't."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    base = sql_type.split("(")[0].strip().lower()
    if base in ("bool", "boolean"):
        if isinstance(value, bool):
            return value
        low = str(value).strip().lower()
        if low in ("1", "true", "yes", "y", "t"):
            return True
        if low in ("0", "false", "no", "n", "f"):
            return False
        raise InvalidInputError(f"{value!r} is not a boolean; use true/false, yes/no or 1/0")
    cast = _CASTS.get(base)
    if cast is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool):
            return int(value)
        return int(str(value).strip())
    if cast is float:
        return float(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value) if not isinstance(value, str) else value


class _Records:
    """Turns records (dicts) into Documents: text field, key, declared columns, JSON metadata."""

    def __init__(self, source: str, opts: LoadOptions) -> None:
        self.source = source
        self.opts = opts
        self.keys: set[str] = set()

    def make(self, rec: dict[str, Any], line: int, what: str = "line") -> LoadItem:
        f = self.opts.text_field
        if f not in rec:
            fields = ", ".join(list(rec)[:12]) or "none"
            return Failure(self.source, f"{what} {line} has no field {f!r} (fields: {fields}); pass --text-field NAME",
                           line)
        text = rec[f]
        if not isinstance(text, str):
            return Failure(self.source, f"{what} {line}: field {f!r} is {type(text).__name__}, not text", line)
        if not text.strip():
            return Failure(self.source, f"{what} {line}: field {f!r} is empty", line)
        key = f"L{line}"
        idf = self.opts.id_field
        if idf and idf in rec and rec[idf] is not None and str(rec[idf]).strip():
            key = str(rec[idf]).strip()
        if key in self.keys:
            return Failure(self.source, f"{what} {line}: duplicate id {key!r} (the first one was kept); "
                                        f"make {idf!r} unique", line)
        self.keys.add(key)
        columns: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        for k, v in rec.items():
            if k == f:
                continue
            if k in self.opts.columns:
                try:
                    columns[k] = cast_value(v, self.opts.columns[k])
                except (ValueError, TypeError) as exc:
                    return Failure(self.source, f"{what} {line}: column {k!r} ({self.opts.columns[k]}): {exc}", line)
            else:
                meta[k] = v
        if key.startswith("L") and key == f"L{line}":
            meta.setdefault("line", line)
        return Document(self.source, key=key, kind="text", text=text, metadata=meta, columns=columns, line=line)


def _load_jsonl(tf: _TextFile, source: str, opts: LoadOptions) -> Iterator[LoadItem]:
    recs = _Records(source, opts)
    n = 0
    buf = ""
    lineno = 0
    for block in tf.blocks():
        buf += block
        *lines, buf = buf.split("\n")
        for ln in lines:
            lineno += 1
            item = _jsonl_line(ln, lineno, recs)
            if item is not None:
                n += 1
                yield item
    if buf.strip():
        lineno += 1
        item = _jsonl_line(buf, lineno, recs)
        if item is not None:
            n += 1
            yield item
    if n == 0:
        yield _empty(source, not tf.head)


def _jsonl_line(ln: str, lineno: int, recs: _Records) -> LoadItem | None:
    if not ln.strip():
        return None
    try:
        obj = json.loads(ln)
    except json.JSONDecodeError as exc:
        return Failure(recs.source, f"line {lineno} is not JSON ({exc.msg} at column {exc.colno}); "
                                    "fix or remove the line", lineno)
    if isinstance(obj, str):
        obj = {recs.opts.text_field: obj}
    if not isinstance(obj, dict):
        return Failure(recs.source, f"line {lineno} is a JSON {type(obj).__name__}, not an object", lineno)
    return recs.make(obj, lineno)


def _load_json(tf: _TextFile, source: str, opts: LoadOptions) -> Iterator[LoadItem]:
    raw = tf.read()
    if not raw.strip():
        yield _empty(source, not tf.head)
        return
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        yield Failure(source, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", exc.lineno)
        return
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        data = lists[0] if opts.text_field not in data and len(lists) == 1 else [data]
    if not isinstance(data, list):
        yield Failure(source, f"JSON top level is a {type(data).__name__}; expected a list of objects or an object")
        return
    recs = _Records(source, opts)
    for i, obj in enumerate(data, 1):
        if isinstance(obj, str):
            obj = {opts.text_field: obj}
        if not isinstance(obj, dict):
            yield Failure(source, f"item {i} is a JSON {type(obj).__name__}, not an object", i)
            continue
        yield recs.make(obj, i, "item")


def _load_csv(tf: _TextFile, source: str, opts: LoadOptions, delimiter: str) -> Iterator[LoadItem]:
    # The csv module (non-strict) ends a record cut off by the end of the file inside a quoted field as if the
    # quote had closed: the rest of the file silently becomes one field. A complete record never needs the
    # reader to ask for a line past the end, so a row handed out after ``lines`` ran dry was cut off.
    at_end = False

    def lines() -> Iterator[str]:
        nonlocal at_end
        buf = ""
        for block in tf.blocks():
            buf += block
            *ls, buf = buf.split("\n")
            for ln in ls:
                yield ln + "\n"
        if buf:
            yield buf
        at_end = True

    reader = csv.DictReader(lines(), delimiter=delimiter)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        yield Failure(source, f"unreadable CSV header: {exc}")
        return
    if not header:
        yield _empty(source, not tf.head)
        return
    if opts.text_field not in header:
        yield Failure(source, f"CSV has no column {opts.text_field!r} (columns: {', '.join(header[:12])}); "
                              "pass --text-field NAME")
        return
    csv.field_size_limit(64 * 1024 * 1024)
    recs = _Records(source, opts)
    prev_end = reader.line_num
    try:
        for row in reader:
            start, line, prev_end = prev_end + 1, reader.line_num, reader.line_num
            if at_end:
                yield Failure(source, f"line {start}: a quote opened in the record starting here is never closed "
                                      f"(it runs to the end of the file, line {line}); that record was skipped: "
                                      "close the quote, or double a quote inside a quoted field (\"\")", start)
                continue
            if None in row:
                yield Failure(source, f"row at line {line} has more fields than the header", line)
                continue
            yield recs.make({k: v for k, v in row.items() if k is not None}, line)
    except csv.Error as exc:
        yield Failure(source, f"CSV error near line {reader.line_num}: {exc}; the rest of the file was skipped",
                      reader.line_num)
