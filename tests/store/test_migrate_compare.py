"""`collections migrate --compare / --sample-queries`: obembed's eval on both models over the collection's own rows
(real embedded seekdb or OBEMBED_TEST_DSN, the bundled MiniLM and MiniLM truncated to 128 dimensions)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

import obembed
from obembed.cli import main
from obembed.errors import InvalidInputError
from obembed.migration_compare import compare_models, comparison_dataset, format_comparison

TEXTS = [f"{w} package number {i}: a {w} tool for the command line with {n} options and a manual page"
         for i, (w, n) in enumerate(zip(["editor", "database", "compiler", "browser", "mailer", "shell"] * 4,
                                        range(24), strict=True))]


@pytest.fixture(scope="module")
def mini128():
    return obembed.load("st:all-MiniLM-L6-v2", truncate_dim=128)


def _fill(store, name: str, model) -> Any:
    coll = store.create_collection(name, model)
    coll.upsert([{"id": f"p{i:02d}", "content": t, "vector": v}
                 for i, (t, v) in enumerate(zip(TEXTS, model.embed_documents(TEXTS), strict=True))])
    coll.upsert([{"id": "bare", "vector": model.embed_query("no content")}])  # no content: not in the corpus
    return coll


def test_compare_on_synthetic_queries_runs_eval_on_both_models(store, collection_name, minilm, mini128):
    coll = _fill(store, collection_name, minilm)
    ds = comparison_dataset(coll, n_queries=8, seed=3)
    assert sorted(d.id for d in ds.corpus) == [f"p{i:02d}" for i in range(24)]
    by_id = {d.id: d.text for d in ds.corpus}
    assert len(ds.queries) == 8
    for q in ds.queries:  # a window of the relevant row's own words
        (rid,) = ds.qrels[q.id]
        assert f" {q.text} " in f" {' '.join(by_id[rid].split())} "
        assert 4 <= len(q.text.split()) <= 12
    before = {c["name"] for c in store.list_collections()}

    report = compare_models(coll, mini128, sample_queries=8, seed=3, n_resamples=50)
    assert report["comparison"]["collection"] == collection_name
    assert [m["dimension"] for m in report["models"]] == [384, 128]
    assert report["models"][0]["label"].endswith("answers now")
    assert report["models"][1]["label"].endswith("migration target")
    assert report["dataset"]["documents"] == 24
    for m in report["models"]:
        runs = {r["search"]: r for r in m["runs"]}
        assert set(runs) == {"numpy exact", "store exact", "hnsw ef=64"}
        # the store's exact search over the rows it loaded ranks like numpy over the same vectors
        assert runs["store exact"]["metrics"]["recall@10"]["mean"] == pytest.approx(
            runs["numpy exact"]["metrics"]["recall@10"]["mean"])
        assert runs["hnsw ef=64"]["latency"]["n"] == 8
        assert m["index_bytes"]["vectors"] == 24 * m["dimension"] * 4
    assert report["paired"][0]["versus"] == report["models"][0]["label"]
    assert {c["name"] for c in store.list_collections()} == before  # the temporary collections are gone
    table = format_comparison(report)
    assert "recall@10" in table
    assert "answers now" in table
    assert "migration target" in table


def test_compare_with_a_queries_file_and_bad_files(store, store_test_dsn, collection_name, minilm, tmp_path):
    _fill(store, collection_name, minilm)
    db = ["--dsn", store_test_dsn] if store_test_dsn else ["--db", str(store.path)]
    qfile = tmp_path / "queries.jsonl"
    qfile.write_text("".join(json.dumps({"id": f"q{i}", "text": f"a {w} tool", "relevant": [f"p{i:02d}"]}) + "\n"
                             for i, w in enumerate(["editor", "database", "compiler"]))
                     + json.dumps({"id": "qx", "text": "nothing", "relevant": ["not-a-row"]}) + "\n")
    runner = CliRunner()
    res = runner.invoke(main, ["collections", "migrate", collection_name, *db, "-m", "st:all-MiniLM-L6-v2",
                               "-o", "truncate_dim=64", "--compare", str(qfile), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["dataset"]["queries"] == 3
    assert rep["dataset"]["dropped_queries"] == 1  # names no row of the collection
    assert [m["dimension"] for m in rep["models"]] == [384, 64]
    assert store.collection(collection_name).migration is None  # comparing migrates nothing

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "q", "text": "x", "relevant": ["nope"]}) + "\n")
    with pytest.raises(InvalidInputError, match=r"no query in .*bad.jsonl names a row"):
        comparison_dataset(store.collection(collection_name), queries=bad)
    res = runner.invoke(main, ["collections", "migrate", collection_name, *db, "--sample-queries", "3"])
    assert res.exit_code == 2
    assert "need --model" in res.output
    res = runner.invoke(main, ["collections", "migrate", collection_name, *db, "-m", "st:all-MiniLM-L6-v2",
                               "--compare", str(qfile), "--sample-queries", "3"])
    assert res.exit_code == 2
    assert "not both" in res.output
