"""search(rerank=) and hybrid_search(rerank=) on the real embedded seekdb with the bundled MiniLM and the
test-built cross-encoder, compared with a brute-force computation in numpy."""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import obembed
from obembed.errors import ConfigError, InvalidInputError, ProviderResponseError
from obembed.providers.rerank import RerankHit, load_reranker

pytestmark = pytest.mark.seekdb

DATA = next((p / "shared" / "data" / "debian-descriptions" for p in Path(__file__).resolve().parents
             if (p / "shared" / "data" / "debian-descriptions").is_dir()), None)
QUERY = "tools to check and repair a file system"


def corpus(n: int = 40) -> list[tuple[str, str]]:
    assert DATA is not None, "the shared Debian descriptions are needed"
    with gzip.open(DATA / "en_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for _, line in zip(range(3000), f, strict=False)]
    rng = np.random.default_rng(7)
    picked = [docs[i] for i in rng.choice(len(docs), n, replace=False)]
    return [(d["id"], d["text"][:300]) for d in picked]


@pytest.fixture(scope="module")
def reranker(tiny_cross_encoder: Path) -> Any:
    return load_reranker(f"cross-encoder:{tiny_cross_encoder}").load()


@pytest.fixture(scope="module")
def reference(tiny_cross_encoder: Path) -> Any:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_cross_encoder), device="cpu", local_files_only=True)


@pytest.fixture
def filled(store: Any, collection_name: str, minilm: Any) -> tuple[Any, list[tuple[str, str]], np.ndarray]:
    docs = corpus()
    coll = store.create_collection(collection_name, minilm, fulltext=True, columns={"grp": "int"})
    vecs = minilm.embed_documents([t for _, t in docs])
    coll.upsert([{"id": i, "content": t, "vector": v, "grp": n % 2}
                 for n, ((i, t), v) in enumerate(zip(docs, vecs, strict=True))])
    return coll, docs, vecs


def expected(reference: Any, query: str, cand: list[tuple[str, str]], k: int) -> list[tuple[str, float]]:
    """The k best candidates by CrossEncoder.predict, ties in first-stage order."""
    scores = np.asarray(reference.predict([(query, t) for _, t in cand], show_progress_bar=False), np.float64)
    order = np.lexsort((np.arange(len(cand)), -scores))[:k]
    return [(cand[i][0], float(scores[i])) for i in order]


def test_search_rerank_matches_brute_force(filled: Any, reranker: Any, reference: Any, minilm: Any) -> None:
    coll, docs, vecs = filled
    qv = minilm.embed_query(QUERY)
    cos = vecs @ qv
    first = [docs[i] for i in np.argsort(-cos, kind="stable")[:20]]  # the exact first stage, in numpy
    hits = coll.search(QUERY, k=5, rerank=reranker, candidates=20, exact=True)
    want = expected(reference, QUERY, first, 5)
    assert [h.id for h in hits] == [i for i, _ in want]
    for h, (_, s) in zip(hits, want, strict=True):
        assert h.rerank_score == pytest.approx(s, abs=1e-6)
        assert h.score == pytest.approx(float(cos[[d[0] for d in docs].index(h.id)]), abs=1e-4)  # first stage
    plain = coll.search(QUERY, k=5, exact=True)
    assert all(h.rerank_score is None for h in plain)
    assert [h.id for h in plain] == [d[0] for d in first[:5]]


def test_rerank_first_stage_uses_the_given_vector(filled: Any, reranker: Any, reference: Any) -> None:
    """vector= (a query vector made beforehand, as the server and eval do) is what the first stage searches with:
    the model is not called again, and the reranker still reads the text."""
    coll, docs, vecs = filled
    other = vecs[3]  # a document's own vector: a first stage unrelated to QUERY's text
    order = np.argsort(-(vecs @ other), kind="stable")[:10]
    first = [docs[i] for i in order]
    hits = coll.search(QUERY, k=4, rerank=reranker, candidates=10, exact=True, vector=other)
    assert [h.id for h in hits] == [i for i, _ in expected(reference, QUERY, first, 4)]
    assert [h.id for h in coll.search(QUERY, k=10, exact=True, vector=other)] == [d[0] for d in first]


def test_rerank_spec_through_the_stores_factory(store: Any, filled: Any, reranker: Any, reference: Any,
                                                tiny_cross_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    coll, _, _ = filled
    spec = f"cross-encoder:{tiny_cross_encoder}"
    with pytest.raises(ConfigError, match="load_reranker"):
        coll.search(QUERY, k=3, rerank=spec)  # the session store was opened without a reranker factory
    monkeypatch.setattr(store, "reranker_factory", obembed.load_reranker)  # what obembed.connect() sets
    monkeypatch.setattr(store, "_rerankers", {})
    by_spec = coll.search(QUERY, k=3, rerank=spec, candidates=10, exact=True)
    by_obj = coll.search(QUERY, k=3, rerank=reranker, candidates=10, exact=True)
    assert [h.id for h in by_spec] == [h.id for h in by_obj]
    assert [h.rerank_score for h in by_spec] == pytest.approx([h.rerank_score for h in by_obj], abs=1e-6)
    assert store.reranker(spec) is store.reranker(spec)  # built once per store


def test_hybrid_rerank_orders_the_fused_candidates(filled: Any, reranker: Any, reference: Any) -> None:
    coll, docs, _ = filled
    text = dict(docs)
    fused = coll.hybrid_search(QUERY, k=12, candidates=12, exact=True)  # the first stage alone: the fused top 12
    hits = coll.hybrid_search(QUERY, k=4, rerank=reranker, candidates=12, exact=True)
    want = expected(reference, QUERY, [(h.id, text[h.id]) for h in fused], 4)
    assert [h.id for h in hits] == [i for i, _ in want]
    rrf = {h.id: h.score for h in fused}
    assert all(h.score == pytest.approx(rrf[h.id]) for h in hits)  # score stays the RRF score


def test_filter_applies_to_the_first_stage(filled: Any, reranker: Any) -> None:
    coll, _, _ = filled
    hits = coll.search(QUERY, k=6, rerank=reranker, where={"grp": 1}, exact=True)
    assert len(hits) == 6
    assert all(h.columns["grp"] == 1 for h in hits)


def test_empty_first_stage_gives_an_empty_result(filled: Any, reranker: Any) -> None:
    class Never:
        spec = "never"

        def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> list[RerankHit]:
            raise AssertionError("a reranker must not be called without candidates")

    coll, _, _ = filled
    assert coll.search(QUERY, k=3, rerank=Never(), where={"grp": 7}) == []


def test_bad_arguments(filled: Any, reranker: Any, minilm: Any) -> None:
    coll, _, _ = filled
    with pytest.raises(InvalidInputError, match="fewer than k"):
        coll.search(QUERY, k=10, rerank=reranker, candidates=5)
    with pytest.raises(InvalidInputError, match="applies with rerank"):
        coll.search(QUERY, k=10, candidates=50)
    with pytest.raises(InvalidInputError, match="query text"):
        coll.search(minilm.embed_query(QUERY), k=3, rerank=reranker)
    with pytest.raises(ConfigError, match="spec string or a reranker"):
        coll.search(QUERY, k=3, rerank=42)


def test_rows_without_content_are_named(store: Any, make_collection_name: Any, reranker: Any, minilm: Any) -> None:
    coll = store.create_collection(make_collection_name("nocontent"), minilm)
    coll.upsert([{"id": "a", "vector": minilm.embed_query("x"), "content": "file system repair"},
                 {"id": "b", "vector": minilm.embed_query("y")}])
    with pytest.raises(InvalidInputError, match="row 'b' has no text content"):
        coll.search(QUERY, k=1, rerank=reranker, candidates=2)


class Corrupt:
    """A third-party reranker whose answer is a correct ranking with one corruption applied."""

    spec = "corrupt"

    def __init__(self, kind: str, at: int) -> None:
        self.kind, self.at = kind, at

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> list[Any]:
        good = [RerankHit(i, float(len(d) % 7)) for i, d in enumerate(documents)]
        good = sorted(good, key=lambda h: (-h.score, h.index))[:top_n]
        at = self.at % len(good)
        if self.kind == "fewer":
            return good[:-1]
        if self.kind == "more":
            return [*good, good[0]]
        if self.kind == "dup":
            good[at] = RerankHit(good[(at + 1) % len(good)].index, good[at].score)
        elif self.kind == "out":
            good[at] = RerankHit(len(documents) + at, good[at].score)
        elif self.kind == "neg":
            good[at] = RerankHit(-1, good[at].score)
        elif self.kind == "nan":
            good[at] = RerankHit(good[at].index, math.nan)
        return good


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["fewer", "more", "dup", "out", "neg", "nan"]), at=st.integers(0, 10),
       k=st.integers(2, 6))
def test_a_bad_reranker_answer_reorders_nothing(filled: Any, kind: str, at: int, k: int) -> None:
    coll, _, _ = filled
    before = coll.count()
    with pytest.raises(ProviderResponseError, match="nothing was reordered"):
        coll.search(QUERY, k=k, rerank=Corrupt(kind, at), candidates=k + 3, exact=True)
    assert coll.count() == before
