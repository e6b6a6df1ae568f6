"""Ingest: case-distinct file names, --prune only for files that are certainly gone, loaders that
never let one bad file stop the run, the size limit on .json files."""

from __future__ import annotations

import os

from obembed.ingest import ingest
from obembed.ingest.loaders import Document, Failure, LoadOptions, load_file
from obembed.ingest.pipeline import source_is_gone


def test_readme_and_README_keep_their_own_rows_across_reruns(tmp_path, put, store, collection_name, counting):
    d = tmp_path / "docs"
    upper = put(d / "README.md", "# Upper\nThe upper-case readme talks about installation.\n")
    lower = put(d / "readme.md", "# Lower\nThe lower-case readme talks about licensing.\n")
    for run in range(3):
        rep = ingest(d, collection=collection_name, store=store, provider=counting)
        assert rep.chunks_deleted == 0, f"run {run} deleted a sibling's rows"
        coll = store.collection(collection_name)
        assert coll.sources() == {str(upper): 1, str(lower): 1}, f"run {run}"
        assert coll.count() == 2
    assert rep.chunks_skipped == 2  # the reruns embedded nothing


def test_prune_keeps_everything_under_a_missing_root(tmp_path, put, store, collection_name, counting):
    d = tmp_path / "share"
    put(d / "a.txt", "alpha text about search")
    put(d / "sub" / "b.txt", "beta text about vectors")
    ingest(d, collection=collection_name, store=store, provider=counting)
    os.rename(d, tmp_path / "elsewhere")  # the folder is gone (an unmounted share looks the same)
    rep = ingest(d, collection=collection_name, store=store, provider=counting, prune=True)
    assert rep.rows_pruned == 0
    assert rep.sources_pruned == 0
    assert store.collection(collection_name).count() == 2
    assert any(n["source"] == str(d) and n["message"].startswith("not pruned") for n in rep.notices)
    assert any("does not exist" in f["reason"] for f in rep.failures)


def test_prune_keeps_everything_under_a_root_that_yields_no_file(tmp_path, put, store, collection_name, counting):
    d = tmp_path / "docs"
    a = put(d / "a.txt", "alpha text about search")
    ingest(d, collection=collection_name, store=store, provider=counting)
    a.unlink()
    rep = ingest(d, collection=collection_name, store=store, provider=counting, prune=True)
    assert rep.rows_pruned == 0
    assert store.collection(collection_name).count() == 1
    assert any("yielded no file" in n["message"] for n in rep.notices)
    # with another file there, the deleted one is pruned as before
    put(d / "b.txt", "beta text about vectors")
    rep = ingest(d, collection=collection_name, store=store, provider=counting, prune=True)
    assert (rep.sources_pruned, rep.rows_pruned) == (1, 1)
    assert set(store.collection(collection_name).sources()) == {str(d / "b.txt")}


def test_source_is_gone_only_for_file_not_found(tmp_path):
    present = tmp_path / "here.txt"
    present.write_text("x")
    assert source_is_gone(str(tmp_path / "deleted.txt")) is True
    assert source_is_gone(str(present)) is False
    loop = tmp_path / "loop"
    os.symlink(loop, loop)  # stat() of anything under it: ELOOP, not "no such file"
    unreachable = str(loop / "x.txt")
    assert not os.path.exists(unreachable)  # what the old check asked: it would have pruned
    assert source_is_gone(unreachable) is False
    assert source_is_gone(str(present / "child.txt")) is False  # ENOTDIR: not a FileNotFoundError


def test_json_file_over_the_size_limit_is_skipped(tmp_path, put):
    p = put(tmp_path / "big.json", '[{"id": "a", "text": "' + "x" * 300 + '"}]')
    [f] = load_file(p, LoadOptions(max_file_bytes=100))
    assert isinstance(f, Failure)
    assert "over the" in f.reason
    assert "limit" in f.reason
    [doc] = load_file(p, LoadOptions(max_file_bytes=10_000))
    assert isinstance(doc, Document)
