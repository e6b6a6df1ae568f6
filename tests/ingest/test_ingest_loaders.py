"""Loaders and the folder walk: each bad input of the issue gives a clear per-item reason; good input loads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from obembed.ingest.loaders import Document, Failure, LoadOptions, Notice, load_file, walk


def items(path: Path, **opts) -> list:
    return list(load_file(path, LoadOptions(**opts)))


def text_of(doc: Document) -> str:
    if doc.blocks is not None:
        return "".join(doc.blocks)
    if doc.sections is not None:
        return "\n".join(t for _, t, _ in doc.sections)
    return doc.text or ""


def minimal_pdf(lines: list[str]) -> bytes:
    """A real one-page PDF with a text stream (Helvetica), built by hand with a correct xref table."""
    content = "BT /F1 12 Tf 72 720 Td " + " ".join(f"({ln}) Tj 0 -16 Td" for ln in lines) + " ET"
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{off:010d} 00000 n \n" for off in offsets).encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


# ---------------------------------------------------------------------------------------------- good input
def test_text_markdown_html_pdf_load(tmp_path, put):
    [t] = items(put(tmp_path / "a.txt", "hello\nworld\n"))
    assert isinstance(t, Document)
    assert text_of(t) == "hello\nworld\n"
    [m] = items(put(tmp_path / "b.md", "# T\nbody\n"))
    assert m.kind == "markdown"
    assert m.text == "# T\nbody\n"
    html = ("<html><head><title>Title</title><style>p{color:red}</style><script>alert('x')</script></head>"
            "<body><h2>Section</h2><p>Visible <b>text</b>.</p><script>var secret=1;</script></body></html>")
    [h] = items(put(tmp_path / "c.html", html))
    assert h.kind == "markdown"
    assert "Visible" in h.text
    assert "text" in h.text
    assert "## Section" in h.text
    assert "alert" not in h.text
    assert "secret" not in h.text
    assert "color" not in h.text
    [p] = items(put(tmp_path / "d.pdf", minimal_pdf(["PDF text about vectors.", "Second line."])))
    assert isinstance(p, Document), p
    assert "PDF text about vectors." in text_of(p)
    assert p.sections[0][2] == {"page": 1}


def test_records_jsonl_csv_json_columns_and_metadata(tmp_path, put):
    opts = {"columns": {"year": "int", "lang": "varchar(8)"}}
    jl = put(tmp_path / "r.jsonl", '{"id": "a", "text": "first", "lang": "en", "year": "2020", "tags": ["x"]}\n'
                                   '\n{"text": "no id here", "year": 2021.0}\n"a bare string"\n')
    docs = items(jl, **opts)
    assert [d.key for d in docs] == ["a", "L3", "L4"]
    assert docs[0].columns == {"lang": "en", "year": 2020}
    assert docs[0].metadata == {"id": "a", "tags": ["x"]}
    assert docs[1].columns == {"year": 2021}
    assert docs[1].metadata == {"line": 3}
    assert docs[2].text == "a bare string"
    csvp = put(tmp_path / "r.csv", 'body,year,note\n"multi\nline text",1999,hello\nsecond,,n\n')
    docs = items(csvp, text_field="body", **opts)
    assert [d.text for d in docs] == ["multi\nline text", "second"]
    assert docs[0].columns == {"year": 1999}
    assert docs[0].metadata["note"] == "hello"
    assert docs[1].columns == {"year": None}
    js = put(tmp_path / "r.json", '{"items": [{"id": 1, "text": "one"}, {"id": 2, "text": "two"}]}')
    assert [(d.key, d.text) for d in items(js)] == [("1", "one"), ("2", "two")]


def test_walk_globs_hidden_and_order(tmp_path, put):
    for rel in ["a.md", "b.txt", "sub/c.md", "sub/drafts/d.md", ".git/e.md", "f.bin", "g.jsonl"]:
        put(tmp_path / rel, "x")
    names = [p.relative_to(tmp_path).as_posix() for p in walk([tmp_path])]
    assert names == ["a.md", "b.txt", "g.jsonl", "sub/c.md", "sub/drafts/d.md"]  # sorted; .git and .bin skipped
    only_md = [p.relative_to(tmp_path).as_posix()
               for p in walk([tmp_path], LoadOptions(include=["*.md"], exclude=["sub/drafts/*"]))]
    assert only_md == ["a.md", "sub/c.md"]


# ---------------------------------------------------------------------------------------------- bad input
def test_missing_path_and_unsupported_named_file(tmp_path, put):
    out = list(walk([tmp_path / "nope", put(tmp_path / "x.exe", "MZ")]))
    assert all(isinstance(f, Failure) for f in out)
    assert "does not exist" in out[0].reason
    assert out[0].source.endswith("nope")
    assert "unsupported file type '.exe'" in out[1].reason


def test_symlink_loops_are_reported_not_followed(tmp_path, put):
    put(tmp_path / "d/a.txt", "x")
    os.symlink(tmp_path / "d", tmp_path / "d/back")  # a folder link to its own parent folder
    os.symlink(tmp_path / "d/self.txt", tmp_path / "d/self.txt")  # a file link to itself
    out = list(walk([tmp_path]))
    paths = [o for o in out if isinstance(o, Path)]
    fails = {Path(f.source).name: f.reason for f in out if isinstance(f, Failure)}
    assert [p.name for p in paths] == ["a.txt"]  # found once, the loop not walked again
    assert "symlink loop" in fails["back"]
    assert "symlink loop" in fails["self.txt"]


def test_bad_utf8_is_replaced_and_counted(tmp_path, put):
    p = put(tmp_path / "latin1.txt", "café crème brûlée\n".encode("latin-1"))
    out = items(p)
    doc = next(o for o in out if isinstance(o, Document))
    assert text_of(doc) == "caf\ufffd cr\ufffdme br\ufffdl\ufffde\n"
    [note] = [o for o in out if isinstance(o, Notice)]
    assert "4 invalid UTF-8 sequence(s) replaced" in note.message


def test_utf16_with_bom_and_utf8_bom_decode(tmp_path, put):
    [d] = items(put(tmp_path / "u16.txt", "日本語 text".encode("utf-16")))
    assert text_of(d) == "日本語 text"
    [d] = items(put(tmp_path / "u8.md", b"\xef\xbb\xbf# Title\n"))
    assert d.text == "# Title\n"


def test_binary_with_text_extension(tmp_path, put):
    [f] = items(put(tmp_path / "image.txt", bytes(range(256)) * 40))
    assert isinstance(f, Failure)
    assert "binary content" in f.reason
    [f] = items(put(tmp_path / "data.jsonl", b"\x00\x01\x02" * 100))
    assert isinstance(f, Failure)
    assert "binary content" in f.reason


@pytest.mark.parametrize(("name", "content", "why"), [
    ("e.txt", b"", "empty file (0 bytes)"),
    ("w.md", b"  \n\t\n", "empty file (only whitespace)"),
    ("e.jsonl", b"", "empty file (0 bytes)"),
    ("e.csv", b"", "empty file (0 bytes)"),
    ("e.pdf", b"", "empty file (0 bytes)"),
    ("e.png", b"", "empty file (0 bytes)"),
])
def test_empty_files(tmp_path, put, name, content, why):
    [f] = items(put(tmp_path / name, content))
    assert isinstance(f, Failure)
    assert f.reason == why


def test_50mb_text_file_over_the_limit_is_skipped_with_the_fix(tmp_path):
    p = tmp_path / "big.txt"
    with open(p, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # 50 MB (sparse)
    [f] = items(p)
    assert isinstance(f, Failure)
    assert "file is 50.0 MiB, over the 20 MiB limit" in f.reason
    assert "--max-file-size" in f.reason


def test_csv_without_the_named_column(tmp_path, put):
    [f] = items(put(tmp_path / "t.csv", "title,body\na,b\n"))
    assert isinstance(f, Failure)
    assert f.reason == "CSV has no column 'text' (columns: title, body); pass --text-field NAME"


@pytest.mark.parametrize(("name", "sep"), [("q.csv", ","), ("q.tsv", "\t")])
def test_unterminated_quote_is_that_records_failure_with_its_line(tmp_path, put, name, sep):
    # Before: the csv module closed the quote at the end of the file, and lines 3..6 became one silent record.
    rows = ["text", "one", '"two', "three", "four", "five"]
    bad = put(tmp_path / name, "".join(r.replace(",", sep) + "\n" for r in rows))
    good = put(tmp_path / ("ok" + name[1:]), "text\nfine\n")
    out = items(bad)
    assert [o.text for o in out if isinstance(o, Document)] == ["one"]
    [f] = [o for o in out if isinstance(o, Failure)]
    assert (f.source, f.line) == (str(bad), 3)
    assert f"{bad}:3: line 3: a quote opened in the record starting here is never closed" in str(f)
    assert "line 6" in f.reason
    # the next file loads as usual
    assert [o.text for o in items(good)] == ["fine"]
    # a closed quote spanning lines, a doubled quote and a stray quote inside a bare field are not failures
    ok = put(tmp_path / ("c" + name[1:]), 'text\n"a\nb"\n"say ""hi"""\nab"c\nlast')
    assert [o.text for o in items(ok)] == ["a\nb", 'say "hi"', 'ab"c', "last"]


def test_jsonl_bad_line_is_reported_and_the_others_load(tmp_path, put):
    p = put(tmp_path / "t.jsonl", '{"text": "one"}\n{not json}\n{"text": "three"}\n[1, 2]\n{"txt": "x"}\n'
                                  '{"id": "d", "text": "a"}\n{"id": "d", "text": "b"}\n')
    out = items(p)
    docs = [o.text for o in out if isinstance(o, Document)]
    fails = {f.line: f.reason for f in out if isinstance(f, Failure)}
    assert docs == ["one", "three", "a"]
    assert fails[2].startswith("line 2 is not JSON (Expecting property name")
    assert fails[4] == "line 4 is a JSON list, not an object"
    assert fails[5] == "line 5 has no field 'text' (fields: txt); pass --text-field NAME"
    assert "duplicate id 'd'" in fails[7]


def test_bad_column_value_fails_that_record_only(tmp_path, put):
    out = items(put(tmp_path / "y.jsonl", '{"text": "a", "year": "soon"}\n{"text": "b", "year": 3}\n'),
                columns={"year": "int"})
    assert isinstance(out[0], Failure)
    assert "column 'year' (int)" in out[0].reason
    assert isinstance(out[1], Document)
    assert out[1].columns == {"year": 3}


def test_unreadable_file(tmp_path, put):
    """A file whose read fails in the kernel: /proc/self/mem (EIO at offset 0) behind a .txt name; and, when
    not running as root, a chmod 000 file."""
    link = tmp_path / "locked.txt"
    os.symlink("/proc/self/mem", link)
    [f] = items(link)
    assert isinstance(f, Failure)
    assert "could not read" in f.reason
    if os.geteuid() != 0:
        p = put(tmp_path / "secret.txt", "x")
        p.chmod(0)
        [f] = items(p)
        assert isinstance(f, Failure)
        assert "permission denied" in f.reason


def test_broken_pdf_and_fake_pdf(tmp_path, put):
    [f] = items(put(tmp_path / "fake.pdf", "just text"))
    assert isinstance(f, Failure)
    assert "not a PDF" in f.reason
    [f] = items(put(tmp_path / "cut.pdf", minimal_pdf(["x"])[:120]))
    assert isinstance(f, Failure)
    assert ("unreadable PDF" in f.reason or "no extractable text" in f.reason)
