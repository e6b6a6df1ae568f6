"""`obembed search --rerank SPEC [--candidates N]` through click's runner on the session's embedded seekdb."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from obembed.cli import main
from obembed.providers.rerank import load_reranker

pytestmark = pytest.mark.seekdb

TEXTS = {
    "e2fsprogs": "ext2/ext3/ext4 file system utilities: e2fsck checks and repairs a file system",
    "xfsprogs": "utilities for managing the XFS file system, including repair",
    "gimp": "GNU Image Manipulation Program: edit photos and draw images",
    "postgres": "PostgreSQL is an object-relational SQL database server",
    "vim": "Vi IMproved, a highly configurable text editor",
    "btrfs-progs": "checksumming copy on write file system utilities",
}


@pytest.fixture
def filled(store: Any, collection_name: str, minilm: Any, store_test_dsn: str | None) -> list[str]:
    coll = store.create_collection(collection_name, minilm, fulltext=True)
    vecs = minilm.embed_documents(list(TEXTS.values()))
    coll.upsert([{"id": i, "content": t, "vector": v} for (i, t), v in zip(TEXTS.items(), vecs, strict=True)])
    return ["--dsn", store_test_dsn] if store_test_dsn else ["--db", str(store.path)]


def test_search_rerank_cli_equals_the_library(store: Any, filled: list[str], collection_name: str,
                                              tiny_cross_encoder: Path) -> None:
    spec = f"cross-encoder:{tiny_cross_encoder}"
    runner = CliRunner()
    q = "repair a file system"
    res = runner.invoke(main, ["search", q, "-c", collection_name, *filled, "-k", "3", "--rerank", spec,
                               "--candidates", "5", "--exact", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    want = store.collection(collection_name).search(q, k=3, rerank=load_reranker(spec), candidates=5, exact=True)
    assert [h["id"] for h in out["hits"]] == [h.id for h in want]
    assert [h["rerank_score"] for h in out["hits"]] == pytest.approx([h.rerank_score for h in want], abs=1e-6)
    assert out["rerank"] == spec

    res = runner.invoke(main, ["search", q, "-c", collection_name, *filled, "-k", "2", "--hybrid", "--rerank", spec],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["#", "rerank", "score", "source", "chunk", "text"]
    assert len(lines) == 4


def test_candidates_needs_rerank_and_bad_specs_are_one_line(filled: list[str], collection_name: str) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["search", "x", "-c", collection_name, *filled, "--candidates", "5"])
    assert res.exit_code == 2
    assert "--rerank" in res.output
    res = runner.invoke(main, ["search", "x", "-c", collection_name, *filled, "--rerank", "nope:m"])
    assert res.exit_code == 1
    assert "unknown provider backend 'nope'" in res.output
    assert "Traceback" not in res.output
