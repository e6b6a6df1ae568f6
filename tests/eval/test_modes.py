"""Search modes in ``obembed eval``: dense, full-text, sparse, hybrid with weights and a reranked row, each through
the real embedded seekdb, on real Debian descriptions with the bundled MiniLM and a cross-encoder built from it,
checked against independent computations (numpy cosine ranking, metric formulas, RRF, CrossEncoder.predict)."""

from __future__ import annotations

import json
import math
import re
import uuid
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from obembed.errors import ConfigError
from obembed.eval import StoreOptions, evaluate, load_dataset
from obembed.eval.modes import HYBRID_LEGS, SEARCH_MODES, SearchMode, expand_modes, parse_mode
from obembed.store.search import rrf_fuse

pytestmark = pytest.mark.seekdb

DATA = Path(__file__).parent / "data"
N_DOCS, N_QUERIES, K, CAND = 50, 10, 10, 10
MODES = ["dense", "fulltext", "sparse", "hybrid", "hybrid:dense=1,fulltext=0.5", "dense+rerank"]
_WORD = re.compile(r"\w+")


class WordSparse:
    """The bundled MiniLM with a sparse output of the test's own: hashed word counts (crc32 of each lower-case word
    modulo 2^15, weight 1 + log(count)). The eval plumbing of sparse rows does not depend on which model made the
    sparse vectors; the real sparse models are too slow for the suite."""

    sparse_dimension = 1 << 15

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_sparse(self, items: list[str], kind: str = "document") -> list[dict[int, float]]:
        out = []
        for t in items:
            counts = Counter(zlib.crc32(w.encode()) % self.sparse_dimension for w in _WORD.findall(t.lower()))
            out.append({i: 1.0 + math.log(c) for i, c in counts.items()})
        return out


@pytest.fixture(scope="module")
def small(debian_small: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """10 English queries, their relevant documents, filled to 50 documents, texts cut to 400 characters."""
    corpus_path, queries_path = debian_small
    docs = [json.loads(x) for x in corpus_path.open(encoding="utf-8")]
    qs = [json.loads(x) for x in queries_path.open(encoding="utf-8")][:N_QUERIES]
    need = {r for q in qs for r in q["relevant"]}
    keep = [d for d in docs if d["id"] in need]
    keep += [d for d in docs if d["id"] not in need][: N_DOCS - len(keep)]
    for d in keep:
        d["text"] = d["text"][:400]
    root = tmp_path_factory.mktemp("modes")
    c, q = root / "corpus.jsonl", root / "queries.jsonl"
    c.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in keep), encoding="utf-8")
    q.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in qs), encoding="utf-8")
    return c, q


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path, builders: Any) -> Path:
    return builders.build_cross_encoder(tmp_path_factory.mktemp("ce") / "minilm-ce", minilm_path)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vectors")


@pytest.fixture(scope="module")
def report(small: tuple[Path, Path], store: Any, minilm: Any, cross_encoder: Path, cache: Path) -> dict[str, Any]:
    ds = load_dataset(*small)
    assert (len(ds.corpus), len(ds.queries)) == (N_DOCS, N_QUERIES)
    opts = StoreOptions(store=store, modes=MODES, rerank=f"cross-encoder:{cross_encoder}", candidates=CAND, k=K,
                        prefix=f"evm_{uuid.uuid4().hex[:6]}", fulltext="space")
    rep = evaluate(ds, ["st:all-MiniLM-L6-v2"], provider_factory=lambda spec: WordSparse(minilm), store=opts,
                   keep_rankings=True, n_resamples=200, cache_dir=str(cache))
    assert not [c for c in store.list_collections() if c["name"].startswith(opts.prefix)]  # cleaned up
    return rep


def _runs(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["search"]: r for r in report["models"][0]["runs"]}


def test_every_mode_is_a_row_and_the_modes_rank_differently(report: dict[str, Any]) -> None:
    runs = _runs(report)
    names = ["dense", "fulltext", "sparse", "hybrid:dense=1,sparse=1,fulltext=1", "hybrid:dense=1,fulltext=0.5",
             "dense+rerank"]
    assert list(runs) == ["numpy exact", *names]  # plain hybrid shows the legs it fused
    assert report["modes"] == [*MODES[:3], "hybrid", "hybrid:dense=1,fulltext=0.5", "dense+rerank"]
    rankings = {n: runs[n]["rankings"] for n in names}
    qids = list(rankings["dense"])
    assert len(qids) == N_QUERIES
    for a in ("dense", "fulltext", "sparse"):
        for b in ("dense", "fulltext", "sparse"):
            if a < b:
                assert any(rankings[a][q] != rankings[b][q] for q in qids), (a, b)
    for n in names:
        r = runs[n]
        assert r["latency"]["n"] == N_QUERIES
        assert r["latency"]["p95_ms"] >= r["latency"]["p50_ms"] > 0
        assert r["queries"] == N_QUERIES
        if n != "dense":  # paired against the first mode, on the same queries
            p = r["paired"]
            assert p["versus"] == "dense"
            for m in ("recall@10", "mrr@10", "ndcg@10"):
                delta = r["metrics"][m]["mean"] - runs["dense"]["metrics"][m]["mean"]
                assert p[m]["delta"] == pytest.approx(delta, abs=1e-12)
                assert p[m]["ci_low"] <= p[m]["delta"] <= p[m]["ci_high"]
    assert "paired" not in runs["dense"]
    assert runs["dense+rerank"]["candidates"] == CAND


def test_dense_row_equals_a_brute_force_numpy_ranking(report: dict[str, Any], small: tuple[Path, Path],
                                                     minilm: Any) -> None:
    ds = load_dataset(*small)
    d = minilm.embed([x.text for x in ds.corpus], kind="document").vectors.astype(np.float64)
    q = minilm.embed([x.text for x in ds.queries], kind="query").vectors.astype(np.float64)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    ids = [x.id for x in ds.corpus]
    dense = _runs(report)["dense"]
    per: dict[str, list[float]] = {"recall@1": [], "recall@10": [], "mrr@10": [], "ndcg@10": []}
    same = 0
    for i, query in enumerate(ds.queries):
        ranked = [ids[j] for j in np.argsort(-(q[i] @ d.T), kind="stable")][:K]
        same += ranked == dense["rankings"][query.id]
        rel = {doc for doc, g in ds.qrels[query.id].items() if g > 0}
        hits = [r for r, doc in enumerate(ranked, 1) if doc in rel]
        per["recall@1"].append(len(rel & set(ranked[:1])) / len(rel))
        per["recall@10"].append(len(rel & set(ranked)) / len(rel))
        per["mrr@10"].append(1 / hits[0] if hits else 0.0)
        ideal = sum(1 / math.log2(r + 1) for r in range(1, min(len(rel), K) + 1))
        per["ndcg@10"].append(sum(1 / math.log2(r + 1) for r in hits) / ideal)
    assert same >= N_QUERIES - 1  # float32 in the engine, float64 here: one near-tie may swap
    for m, vals in per.items():
        assert dense["metrics"][m]["mean"] == pytest.approx(float(np.mean(vals)), abs=1 / N_QUERIES + 1e-9), m
    assert dense["overlap_with_exact@10"] >= 0.99
    assert dense["metrics"]["recall@100"] is None  # beyond k = 10: not reported


def test_hybrid_rows_equal_rrf_of_the_separate_rows(report: dict[str, Any]) -> None:
    runs = _runs(report)
    for name, legs in (("hybrid:dense=1,sparse=1,fulltext=1", {"dense": 1.0, "sparse": 1.0, "fulltext": 1.0}),
                       ("hybrid:dense=1,fulltext=0.5", {"dense": 1.0, "fulltext": 0.5})):
        assert runs[name]["weights"] == legs
        for qid, got in runs[name]["rankings"].items():
            want = rrf_fuse([(runs[leg]["rankings"][qid], w) for leg, w in legs.items()], K)
            assert got == [i for i, _ in want], (name, qid)


def test_rerank_row_reorders_the_dense_candidates_by_the_cross_encoder(report: dict[str, Any], small: tuple[Path, Path],
                                                                      cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    ds = load_dataset(*small)
    text = {d.id: d.text for d in ds.corpus}
    runs = _runs(report)
    ce = CrossEncoder(str(cross_encoder), device="cpu", local_files_only=True)
    moved = 0
    for query in ds.queries[:4]:  # four queries: the reference scoring costs as much as the row itself
        first = runs["dense"]["rankings"][query.id][:CAND]
        got = runs["dense+rerank"]["rankings"][query.id]
        scores = np.asarray(ce.predict([(query.text, text[i]) for i in first], show_progress_bar=False))
        want = [first[j] for j in np.lexsort((np.arange(len(first)), -scores))]
        assert got == want
        moved += got != first
    assert moved  # the reranker changed an order, so the row shows something the dense row does not
    assert report["rerank"] == {"spec": f"cross-encoder:{cross_encoder}", "candidates": CAND}


def test_table_png_and_html_show_the_modes(report: dict[str, Any], tmp_path: Path) -> None:
    from PIL import Image

    from obembed.eval import format_table, write_html, write_json, write_png

    table = format_table(report)
    assert re.search(r"hybrid:dense=1,fulltext=0\.5\s+10\s", table)
    assert "fulltext vs dense (paired): recall@1" in table
    assert "p95 ms" in table
    write_png(report, tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as im:
        assert im.format == "PNG"
        assert im.width > 400
    html = write_html(report, tmp_path / "m.html").read_text(encoding="utf-8")
    assert "Search modes: quality against latency" in html
    assert "dense+rerank" in html
    back = json.loads(write_json(report, tmp_path / "m.json").read_text(encoding="utf-8"))
    assert [r["search"] for r in back["models"][0]["runs"]] == list(_runs(report))


def test_sparse_modes_on_a_model_without_sparse_output_are_left_out_with_the_reason(
        small: tuple[Path, Path], store: Any, minilm: Any, cache: Path) -> None:
    ds = load_dataset(*small)
    opts = StoreOptions(store=store, modes=["fulltext", "sparse", "hybrid", "hybrid:sparse=1,dense=1"], k=K,
                        prefix=f"evm_{uuid.uuid4().hex[:6]}")
    rep = evaluate(ds, ["st:all-MiniLM-L6-v2"], provider_factory=lambda spec: minilm, store=opts, n_resamples=50,
                   cache_dir=str(cache))
    model = rep["models"][0]
    assert [r["search"] for r in model["runs"]] == ["numpy exact", "fulltext", "hybrid:dense=1,fulltext=1"]
    assert [s["mode"] for s in model["modes"]["skipped"]] == ["sparse", "hybrid:dense=1,sparse=1"]
    assert all("no sparse output" in s["reason"] for s in model["modes"]["skipped"])


def test_bad_modes_fail_before_anything_is_encoded(store: Any) -> None:
    ds = load_dataset(DATA / "corpus.jsonl", DATA / "queries.jsonl", DATA / "qrels.tsv")

    def never(spec: str) -> Any:
        raise AssertionError("a model was loaded before the modes were checked")

    for modes, rerank, match in ((["hybird"], None, r"'hybird' is not a mode; use dense, sparse, fulltext"),
                                 (["dense+rerank"], None, r"needs? .*reranker|asks for a reranker.*--rerank SPEC"),
                                 (["dense", "dense"], None, r"'dense' is given twice"),
                                 (["dense", " Dense"], "cross-encoder:x", r"'dense' is given twice")):
        with pytest.raises(ConfigError, match=match):
            evaluate(ds, ["st:x"], provider_factory=never, store=StoreOptions(store=store, modes=modes, rerank=rerank))
    with pytest.raises(ConfigError, match="add --mode"):
        evaluate(ds, ["st:x"], provider_factory=never, store=StoreOptions(store=store, rerank="cross-encoder:x"))


def test_parse_mode_examples() -> None:
    assert SEARCH_MODES == __import__("obembed.store.search", fromlist=["x"]).SEARCH_MODES
    assert HYBRID_LEGS == __import__("obembed.store.search", fromlist=["x"]).HYBRID_LEGS
    assert parse_mode(" Hybrid:fulltext=0.5, dense=1 +rerank") == SearchMode(
        "hybrid", (("dense", 1.0), ("fulltext", 0.5)), True)
    assert parse_mode("hybrid:fulltext=.5,dense=1").name == "hybrid:dense=1,fulltext=0.5"
    assert parse_mode("sparse").legs(sparse=True) == {"sparse": 1.0}
    assert parse_mode("hybrid").legs(sparse=False) == {"dense": 1.0, "fulltext": 1.0}
    assert parse_mode("hybrid:dense=1,sparse=0").legs(sparse=True) == {"dense": 1.0}
    assert [m.name for m in expand_modes(["dense", "fulltext"], reranker=True)] == [
        "dense", "dense+rerank", "fulltext", "fulltext+rerank"]
    assert [m.name for m in expand_modes(["dense", "fulltext+rerank"], reranker=True)] == ["dense", "fulltext+rerank"]
    for bad, fix in (("dense:dense=1", "weights apply to hybrid only"), ("hybrid:dense", "LEG=WEIGHT"),
                     ("hybrid:dense=-1", "LEG=WEIGHT"), ("hybrid:dense=0,fulltext=0", "every weight is 0"),
                     ("hybrid:dense=1,dense=2", "given twice"), ("dense+rerank+rerank", "only '+rerank'"),
                     ("hybrid:bm25=1", "LEG=WEIGHT"), ("", "empty")):
        with pytest.raises(ConfigError, match=re.escape(fix)):
            parse_mode(bad)
    for bad in ("hybrid:dense=1,dense=2", "hybrid:dense=1e999"):  # every refusal shows a mode that works
        with pytest.raises(ConfigError, match=re.escape("hybrid:dense=1,fulltext=0.5")):
            parse_mode(bad)


@given(st.one_of(
    st.text(max_size=30),
    st.builds(lambda m, legs, rr: m + (":" + ",".join(legs) if legs is not None else "") + rr,
              st.sampled_from([*SEARCH_MODES, "Dense", "bm25", " hybrid "]),
              st.none() | st.lists(st.builds(lambda leg, w: f"{leg}={w}", st.sampled_from([*HYBRID_LEGS, "x", ""]),
                                             st.sampled_from(["1", "0", "0.5", "-1", "nan", "inf", "1e3", "", "a"])),
                                   max_size=4),
              st.sampled_from(["", "+rerank", "+RERANK", "+x", "+rerank+rerank"]))))
def test_any_mode_string_parses_to_a_canonical_mode_or_fails_naming_it_and_the_fix(text: str) -> None:
    try:
        mode = parse_mode(text)
    except ConfigError as exc:
        msg = str(exc)
        assert "hybrid:dense=1,fulltext=0.5" in msg  # the fix, with an example
        assert repr(text) in msg or not text.strip()  # the input as given
        return
    assert mode.mode in SEARCH_MODES
    assert parse_mode(mode.name) == mode  # the canonical name means the same mode
    if mode.weights is not None:
        assert all(leg in HYBRID_LEGS and w >= 0 and math.isfinite(w) for leg, w in mode.weights)
        assert any(w > 0 for _, w in mode.weights)


class _SharedStore:
    """The session store handed to the CLI (one embedded seekdb per process); its close() leaves it open."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def close(self) -> None:
        pass


def test_cli_eval_modes_writes_table_json_and_refuses_a_bad_mode(tmp_path: Path, store: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from obembed.cli import main

    monkeypatch.setattr("obembed.store.connect", lambda dsn=None, **kw: _SharedStore(store))

    bad = CliRunner().invoke(main, ["eval", "--corpus", str(DATA / "corpus.jsonl"), "--queries",
                                    str(DATA / "queries.jsonl"), "--qrels", str(DATA / "qrels.tsv"),
                                    "-m", "st:all-MiniLM-L6-v2", "--mode", "dense", "--mode", "hybrid:dense=one"])
    assert bad.exit_code != 0
    assert "'hybrid:dense=one'" in bad.output
    assert "LEG=WEIGHT" in bad.output
    assert "Traceback" not in bad.output
    out = tmp_path / "modes.json"
    res = CliRunner().invoke(main, ["eval", "--corpus", str(DATA / "corpus.jsonl"), "--queries",
                                    str(DATA / "queries.jsonl"), "--qrels", str(DATA / "qrels.tsv"),
                                    "-m", "st:all-MiniLM-L6-v2", "--mode", "dense", "--mode", "fulltext",
                                    "--mode", "hybrid:dense=1,fulltext=0.5", "--fulltext-parser", "space",
                                    "--db-path", str(tmp_path / "db"), "--resamples", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert re.search(r"\bfulltext\s+4\s", res.stdout)
    rep = json.loads(out.read_text(encoding="utf-8"))
    assert [r["search"] for r in rep["models"][0]["runs"]] == ["numpy exact", "dense", "fulltext",
                                                               "hybrid:dense=1,fulltext=0.5"]
    assert rep["models"][0]["runs"][2]["paired"]["versus"] == "dense"


def test_few_candidates_rerank_rows_keep_that_many(store: Any, minilm: Any, cross_encoder: Path) -> None:
    ds = load_dataset(DATA / "corpus.jsonl", DATA / "queries.jsonl", DATA / "qrels.tsv")
    opts = StoreOptions(store=store, modes=["fulltext", "fulltext+rerank"], rerank=f"cross-encoder:{cross_encoder}",
                        candidates=3, prefix=f"evm_{uuid.uuid4().hex[:6]}", fulltext="space")
    rep = evaluate(ds, ["st:all-MiniLM-L6-v2"], provider_factory=lambda spec: minilm, store=opts, n_resamples=50,
                   keep_rankings=True)
    runs = _runs(rep)
    assert runs["fulltext+rerank"]["k"] == 3
    for qid, ranked in runs["fulltext+rerank"]["rankings"].items():
        assert sorted(ranked) == sorted(runs["fulltext"]["rankings"][qid][:3])  # the first 3, reordered
    assert rep["rerank"]["candidates"] == 3
    assert runs["fulltext+rerank"]["metrics"]["recall@10"] is None  # beyond the 3 rows kept
