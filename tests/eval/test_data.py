"""Loaders: BEIR files (with/without qrels header, gzip), the debian "relevant" form, bad lines."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from shared_data import DEBIAN

from obembed.errors import InvalidInputError
from obembed.eval import load_corpus, load_dataset, load_qrels, load_queries

DATA = Path(__file__).parent / "data"


def test_beir_form_with_header_and_titles():
    ds = load_dataset(DATA / "corpus.jsonl", DATA / "queries.jsonl", DATA / "qrels.tsv")
    assert [d.id for d in ds.corpus] == [f"d{i}" for i in range(1, 9)]
    assert ds.corpus[0].text.startswith("Cats. Cats are small")  # title prepended
    assert ds.qrels["q1"] == {"d1": 2, "d2": 1}  # graded
    assert [q.id for q in ds.queries] == ["q1", "q2", "q3", "q4"]  # q5 has no judgement: left out
    assert ds.dropped_queries == 1
    assert ds.name == "data"  # BEIR "queries.jsonl": named after the folder
    no_title = load_corpus(DATA / "corpus.jsonl", use_title=False)
    assert no_title[0].text.startswith("Cats are small")


def test_qrels_without_header_trec_and_gzip(tmp_path):
    plain = tmp_path / "q.tsv"
    plain.write_text("q1\td1\t1\nq1\td2\t0\nq2\td3\t3\n")
    assert load_qrels(plain) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 3}}
    trec = tmp_path / "q.trec"
    trec.write_text("q1 0 d1 1\nq2 0 d3 2\n")
    assert load_qrels(trec) == {"q1": {"d1": 1}, "q2": {"d3": 2}}
    gz = tmp_path / "qrels.tsv.gz"
    with gzip.open(gz, "wt") as f:
        f.write("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert load_qrels(gz) == {"q1": {"d1": 1}}
    cgz = tmp_path / "corpus.jsonl.gz"
    with open(DATA / "corpus.jsonl", "rb") as src, gzip.open(cgz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert len(load_corpus(cgz)) == 8


def test_debian_form_relevant_in_queries():
    ds = load_dataset(DEBIAN / "ja_corpus.jsonl.gz", DEBIAN / "ja_queries.jsonl.gz")
    assert len(ds.corpus) == 2820
    assert len(ds.queries) == 500
    assert all(len(v) == 1 for v in ds.qrels.values())
    assert ds.missing_docs == 0
    assert ds.name == "ja_queries"


def test_graded_relevant_object(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"id": "q", "text": "t", "relevant": {"a": 2, "b": 1}}) + "\n")
    _, qrels = load_queries(q)
    assert qrels == {"q": {"a": 2, "b": 1}}


@pytest.mark.parametrize(("content", "match"), [
    ('{"id": "a", "text": "x"}\nnot json\n', r"line 2 is not JSON"),
    ('{"text": "no id"}\n', r'line 1 has no usable "id"'),
    ('{"id": "a", "text": "  "}\n', r"line 1 \(id 'a'\) has an empty \"text\""),
    ('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', r"id 'a' was already used on line 1"),
    ('["a", "b"]\n', r"line 1 is a JSON list"),
    ('{"id": "a", "text": 5}\n', r'"text" is a int'),
    ("", r"holds no documents"),
])
def test_bad_corpus_lines_name_file_and_line(tmp_path, content, match):
    p = tmp_path / "corpus.jsonl"
    p.write_text(content)
    with pytest.raises(InvalidInputError, match=match) as info:
        load_corpus(p)
    assert "corpus.jsonl" in str(info.value)


@pytest.mark.parametrize(("content", "match"), [
    ("q1\td1\n", r"line 1 has 2 fields"),
    ("q1\td1\t1\nq2\td2\thigh\n", r"line 2: score 'high' is not a number"),
    ("query-id\tcorpus-id\tscore\n", r"holds no judgements"),
])
def test_bad_qrels_lines(tmp_path, content, match):
    p = tmp_path / "qrels.tsv"
    p.write_text(content)
    with pytest.raises(InvalidInputError, match=match):
        load_qrels(p)


def test_bad_queries_and_missing_files(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text('{"id": "q1", "text": "t", "relevant": 7}\n')
    with pytest.raises(InvalidInputError, match=r'line 1: "relevant" must be'):
        load_queries(q)
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_corpus(tmp_path / "nope.jsonl")
    q.write_text('{"id": "q1", "text": "t"}\n')
    with pytest.raises(InvalidInputError, match="pass --qrels"):
        load_dataset(DATA / "corpus.jsonl", q)
    other = tmp_path / "qrels.tsv"
    other.write_text("zz\td1\t1\n")
    with pytest.raises(InvalidInputError, match="do the qrels belong"):
        load_dataset(DATA / "corpus.jsonl", q, other)
