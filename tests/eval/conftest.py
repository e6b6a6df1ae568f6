"""Fixtures of the eval tests: a small seeded sub-slice of the standard Debian en slice."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from shared_data import SHARED

SLICER = SHARED / "tools" / "debian_slice.py"


@pytest.fixture(scope="session")
def debian_small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """30 en queries with their relevant documents, filled to 120 documents from the standard `en 3000` slice.

    The slice comes from the set's own script (debian_slice.py en 3000, as BASELINES.md used); the subset is
    seeded, so every run evaluates the same 120 documents and 30 queries.
    """
    root = tmp_path_factory.mktemp("debian")
    subprocess.run([sys.executable, str(SLICER), "en", "3000", str(root / "en")], check=True, capture_output=True)
    docs = [json.loads(x) for x in (root / "en" / "corpus.jsonl").open(encoding="utf-8")]
    queries = [json.loads(x) for x in (root / "en" / "en_queries.jsonl").open(encoding="utf-8")]
    rng = random.Random(8)
    qs = rng.sample(queries, 30)
    need = {r for q in qs for r in q["relevant"]}
    keep = [d for d in docs if d["id"] in need]
    rest = [d for d in docs if d["id"] not in need]
    keep += rng.sample(rest, 120 - len(keep))
    corpus, qfile = root / "small_corpus.jsonl", root / "small_queries.jsonl"
    corpus.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in keep), encoding="utf-8")
    qfile.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in qs), encoding="utf-8")
    return corpus, qfile
