"""Issue 20, ingest half: a file whose name is not UTF-8, or whose path is too long to be a source, is that file's
failure; the run goes on and the good files are stored."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obembed.ingest import ingest
from obembed.ingest.pipeline import display_path, source_problem
from obembed.store import schema


def test_non_utf8_name_is_reported_and_skipped(tmp_path, put, store, collection_name, minilm):
    d = tmp_path / "c"
    put(d / "good.txt", "A good file.\n")
    bad = os.path.join(os.fsencode(d), b"caf\xe9 \xff.txt")  # latin-1 bytes: not UTF-8
    with open(bad, "wb") as f:
        f.write(b"Text of a file with a latin-1 name.\n")
    report = ingest(d, collection=collection_name, store=store, provider=minilm)
    assert report.files_failed == 1
    [failure] = report.failures
    assert failure["source"].endswith("caf\\xe9 \\xff.txt")
    assert "not valid UTF-8" in failure["reason"]
    assert [s for s in store.collection(collection_name).sources() if s] == [str(d / "good.txt")]
    ingest(d, collection=collection_name, store=store, provider=minilm)  # every run: same, no crash
    assert store.collection(collection_name).count() == 1


def test_long_path_is_stored_or_reported(tmp_path, put, store, collection_name, minilm):
    d = tmp_path / "c"
    put(d / "good.txt", "A good file.\n")
    deep = d
    while len(str(deep)) < 2300:  # longer than the old 2048-character source column
        deep = deep / ("n" * 200)
    put(deep / "deep.txt", "A file far down.\n")
    report = ingest(d, collection=collection_name, store=store, provider=minilm)
    assert report.files_failed == 0
    assert str(deep / "deep.txt") in store.collection(collection_name).sources()


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\x00" not in b),
       st.integers(1, 5000))
def test_source_problem_names_every_unusable_path(name, length):
    path = "/d/" + os.fsdecode(name) + "x" * length
    problem = source_problem(path)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        assert problem is not None
        assert "not valid UTF-8" in problem
        assert display_path(path).encode("utf-8")  # the report can always print it
    else:
        assert (problem is None) == (len(path) <= schema.SOURCE_MAX)


@pytest.mark.parametrize("cmd", [["collections", "list"], ["collections", "show", "kb"],
                                 ["collections", "drop", "kb", "--yes"], ["search", "query", "-c", "kb"],
                                 ["map", "-c", "kb", "--out", "OUT/m.html", "--db-path"]])
def test_read_only_commands_never_create_a_store(tmp_path, cmd):
    from click.testing import CliRunner

    from obembed.cli import main

    typo = tmp_path / "typo" / "path"
    cmd = [str(tmp_path / "m.html") if c == "OUT/m.html" else c for c in cmd]
    flag = [] if cmd[-1] == "--db-path" else ["--db"]
    res = CliRunner().invoke(main, [*cmd, *flag, str(typo)])
    assert res.exit_code != 0
    assert "no store at" in res.output
    assert "Traceback" not in res.output
    assert not typo.exists()
    assert not (tmp_path / "typo").exists()
