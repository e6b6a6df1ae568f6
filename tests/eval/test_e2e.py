"""End to end: the evaluation pipeline on real Debian descriptions with the bundled MiniLM, against an
independent reference (sentence-transformers + numpy + metric formulas written out here), through the
real store; and the ``obembed eval`` command producing table, JSON, PNG and HTML.

The full-size check against BASELINES.md (3,000 documents, ~10 CPU-minutes) lives in
``benchmarks/eval_debian.py``; its figures are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from obembed.eval import METRICS, StoreOptions, evaluate, load_dataset

DATA = Path(__file__).parent / "data"


def _reference(minilm_path: Path, corpus: list[dict], queries: list[dict]
               ) -> tuple[dict[str, list[float]], list[list[str]]]:
    """What BASELINES.md describes, computed without obembed: ST encode (normalised), cosine, full sort."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path), device="cpu")
    d = model.encode([x["text"] for x in corpus], normalize_embeddings=True, convert_to_numpy=True)
    q = model.encode([x["text"] for x in queries], normalize_embeddings=True, convert_to_numpy=True)
    scores = q.astype(np.float64) @ d.astype(np.float64).T
    ids = [x["id"] for x in corpus]
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    top10 = []
    for i, query in enumerate(queries):
        ranked = [ids[j] for j in np.argsort(-scores[i], kind="stable")]
        top10.append(ranked[:10])
        rel = set(query["relevant"])
        first = next((r for r, doc in enumerate(ranked, 1) if doc in rel), None)
        for k in (1, 10, 100):
            out[f"recall@{k}"].append(len(rel & set(ranked[:k])) / len(rel))
        out["mrr@10"].append(1 / first if first and first <= 10 else 0.0)
        # one relevant document per query (binary grade 1): nDCG@10 = 1 / log2(rank + 1)
        out["ndcg@10"].append(1 / math.log2(first + 1) if first and first <= 10 else 0.0)
    return out, top10


def test_pipeline_equals_independent_reference(debian_small, minilm, minilm_path, store):
    corpus_path, queries_path = debian_small
    corpus = [json.loads(x) for x in corpus_path.open(encoding="utf-8")]
    queries = [json.loads(x) for x in queries_path.open(encoding="utf-8")]
    ds = load_dataset(corpus_path, queries_path)
    assert (len(ds.corpus), len(ds.queries)) == (120, 30)

    report = evaluate(ds, ["st:all-MiniLM-L6-v2"], provider_factory=lambda spec: minilm, keep_rankings=True,
                      store=StoreOptions(store=store, indexes=("hnsw",), ef_search=(64,), prefix="evaltest"))
    ref, ref_top10 = _reference(minilm_path, corpus, queries)

    model = report["models"][0]
    exact = model["runs"][0]
    assert exact["search"] == "numpy exact"
    for m in METRICS:
        # same rankings, same per-query figures: equal to float precision
        assert model["per_query"][m] == pytest.approx(ref[m], abs=1e-6), m
        assert exact["metrics"][m]["mean"] == pytest.approx(float(np.mean(ref[m])), abs=1e-9), m
        assert exact["metrics"][m]["ci_low"] <= exact["metrics"][m]["mean"] <= exact["metrics"][m]["ci_high"]
    # not just the metrics: the whole top 10 of every query is the reference's (as sets: the provider batches
    # differently from a plain encode(), so two near-tied neighbours may swap places, never leave the top 10)
    got_top10 = [exact["rankings"][q["id"]][:10] for q in queries]
    same = sum(set(a) == set(b) for a, b in zip(got_top10, ref_top10, strict=True))
    assert same >= len(queries) - 1
    assert sum(a == b for a, b in zip(got_top10, ref_top10, strict=True)) >= len(queries) - 3
    assert exact["metrics"]["recall@10"]["mean"] >= 0.8  # MiniLM does well here (BASELINES: 0.954 on 3,000)

    runs = {r["search"]: r for r in model["runs"]}
    assert set(runs) == {"numpy exact", "store exact", "hnsw ef=64"}
    # the store's exact scan finds what numpy finds (float32 in the engine vs float64 here: near-ties may swap)
    assert runs["store exact"]["overlap_with_exact@10"] >= 0.99
    assert runs["store exact"]["metrics"]["recall@10"]["mean"] == pytest.approx(
        exact["metrics"]["recall@10"]["mean"], abs=0.034)  # at most one query of 30 may differ
    assert runs["hnsw ef=64"]["overlap_with_exact@10"] >= 0.95
    for name in ("store exact", "hnsw ef=64"):
        assert runs[name]["latency"]["n"] == 30
        assert runs[name]["latency"]["p50_ms"] > 0
    assert runs["hnsw ef=64"]["build_seconds"] >= 0
    assert model["index_bytes"]["vectors"] == 120 * 384 * 4
    assert model["encode"]["docs_per_s"] > 0
    assert model["encode"]["documents"] == 120
    # the evaluation cleaned up after itself
    assert not [c for c in store.list_collections() if c["name"].startswith("evaltest_")]


class _SharedStore:
    """The session store handed to the CLI; its close() must not close the session's store."""

    def __init__(self, store):
        self._store = store
        self.opened_with: dict = {}

    def __getattr__(self, name):
        return getattr(self._store, name)

    def close(self) -> None:
        pass


@pytest.fixture
def cli_store(store, monkeypatch):
    shared = _SharedStore(store)

    def fake_connect(dsn=None, **kwargs):
        shared.opened_with = {"dsn": dsn, **kwargs}
        return shared

    monkeypatch.setattr("obembed.store.connect", fake_connect)
    return shared


def test_cli_eval_table_json_png_html(tmp_path, cli_store, monkeypatch):
    from PIL import Image

    from obembed.cli import main

    monkeypatch.setenv("OBEMBED_DSN", "mysql://root@127.0.0.1:1/prod")  # eval must not create tables there

    outs = [tmp_path / "r.json", tmp_path / "chart.png", tmp_path / "page.html"]
    args = ["eval", "--corpus", str(DATA / "corpus.jsonl"), "--queries", str(DATA / "queries.jsonl"),
            "--qrels", str(DATA / "qrels.tsv"), "-m", "st:all-MiniLM-L6-v2",
            "-m", "st:all-MiniLM-L6-v2?truncate_dim=64&label=mini-64", "--ef-search", "16,64",
            "--db-path", str(tmp_path / "db"), "--resamples", "200", "--store-queries", "3"]
    for o in outs:
        args += ["--out", str(o)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert cli_store.opened_with["path"] == str(tmp_path / "db")
    assert cli_store.opened_with["dsn"] is None
    table = res.stdout
    assert re.search(r"st:all-MiniLM-L6-v2\s+numpy exact\s+4\s", table)
    assert re.search(r"store exact\s+3\s", table)
    for row in ("store exact", "hnsw ef=16", "hnsw ef=64", "mini-64"):
        assert row in table
    assert "mini-64 vs st:all-MiniLM-L6-v2 (paired)" in table

    report = json.loads(outs[0].read_text())
    assert [m["label"] for m in report["models"]] == ["st:all-MiniLM-L6-v2", "mini-64"]
    assert [m["dimension"] for m in report["models"]] == [384, 64]
    assert report["dataset"]["queries"] == 4
    assert report["dataset"]["dropped_queries"] == 1
    assert report["bootstrap"]["resamples"] == 200
    # numpy scores every query; the store a seeded sample of 3 (--store-queries)
    assert [r["queries"] for r in report["models"][0]["runs"]] == [4, 3, 3, 3]
    assert report["models"][0]["runs"][1]["latency"]["n"] == 3
    # the fixture is easy: every query finds a relevant document in the top 10
    assert report["models"][0]["runs"][0]["metrics"]["recall@10"]["mean"] == 1.0

    with Image.open(outs[1]) as img:
        w, h = img.size
        assert w >= 600
        assert h >= 300
        lo, hi = img.convert("L").getextrema()
        assert hi - lo > 100  # something drawn, not a blank canvas

    page = outs[2].read_text()
    assert "<svg" in page
    assert "mini-64" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    embedded = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
                          .group(1).replace("<\\/", "</"))
    assert embedded["models"][1]["runs"][0]["metrics"] == report["models"][1]["runs"][0]["metrics"]


def test_cli_eval_json_stdout_no_store_and_bad_input(tmp_path):
    from obembed.cli import main

    base = ["eval", "--corpus", str(DATA / "corpus.jsonl"), "--queries", str(DATA / "queries.jsonl"),
            "--qrels", str(DATA / "qrels.tsv"), "--no-store", "--resamples", "100"]
    res = CliRunner().invoke(main, [*base, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [r["search"] for r in data["models"][0]["runs"]] == ["numpy exact"]
    assert data["models"][0]["spec"] == "st:all-MiniLM-L6-v2"  # the default model

    bad = tmp_path / "c.jsonl"
    bad.write_text('{"id": "a", "text": "ok"}\n{"id": "b"\n')
    res = CliRunner().invoke(main, ["eval", "--corpus", str(bad), "--queries", str(DATA / "queries.jsonl"),
                                    "--no-store"])
    assert res.exit_code == 1
    assert "c.jsonl line 2 is not JSON" in res.output
    res = CliRunner().invoke(main, [*base, "--ef-search", "64,abc"])
    assert res.exit_code == 2
    assert "comma-separated list of integers" in res.output
    res = CliRunner().invoke(main, [*base, "--index", "hnsw,flat"])
    assert res.exit_code == 2
    assert "hnsw, hnsw_sq, hnsw_bq" in res.output
    res = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "x.txt")])
    assert res.exit_code == 2
    assert ".json, .png or .html" in res.output
