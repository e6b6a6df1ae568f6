"""Search behaviour on the real engine: index use (EXPLAIN), read-your-writes, filtered k, load-then-index,
text queries through a provider, vector-space refusal, hybrid search on Japanese text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from _fakes import HashProvider

from obembed.errors import DimensionMismatchError, InvalidInputError

pytestmark = pytest.mark.seekdb

DATA = next((p / "shared" / "data" / "debian-descriptions" for p in Path(__file__).resolve().parents
             if (p / "shared" / "data" / "debian-descriptions").is_dir()),
            Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "debian-descriptions")
"""The real Debian slices (the workplace's shared/ folder, found from the checkout or a worktree beside it)."""


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize(("distance", "fn"), [("cosine", "cosine_distance"), ("l2", "l2_distance"),
                                              ("ip", "negative_inner_product")])
def test_explain_uses_the_vector_index(store, make_collection_name, distance, fn):
    coll = store.create_collection(make_collection_name(distance), 16, distance=distance,
                                   columns={"grp": "int"})
    rng = np.random.default_rng(0)
    vecs = unit(rng, 50, 16)
    coll.upsert([{"id": str(i), "vector": v, "grp": i % 5} for i, v in enumerate(vecs)])
    plan = coll.explain(k=5)
    assert "VECTOR INDEX SCAN" in plan
    assert fn in plan
    assert "VECTOR INDEX" in coll.explain(k=5, where={"grp": 1})  # filtered: the adaptive index scan
    assert "VECTOR INDEX" not in coll.explain(k=5, exact=True)
    # the ranking matches numpy for this distance
    q = vecs[3] * 0.7 + vecs[4] * 0.3
    if distance == "l2":
        want = np.argsort(np.linalg.norm(vecs - q, axis=1))[:5]
    else:
        want = np.argsort(-(vecs @ q))[:5]
    assert [h.id for h in coll.search(q, k=5)] == [str(i) for i in want]
    top = coll.search(q, k=1)[0]
    if distance == "ip":
        assert top.score == pytest.approx(float(vecs[want[0]] @ q), abs=1e-4)


def test_read_your_writes(store, collection_name):
    """INDEX-organised tables keep HNSW synchronously: rows are found right after upsert returns."""
    coll = store.create_collection(collection_name, 32)
    rng = np.random.default_rng(1)
    coll.upsert([{"id": f"base{i}", "vector": v} for i, v in enumerate(unit(rng, 300, 32))])
    for round_ in range(5):
        fresh = unit(rng, 20, 32)
        coll.upsert([{"id": f"new{round_}_{i}", "vector": v} for i, v in enumerate(fresh)])
        for i, v in enumerate(fresh):
            hits = coll.search(v, k=1)  # approximate, straight after the write
            assert hits[0].id == f"new{round_}_{i}"
            assert hits[0].distance == pytest.approx(0.0, abs=1e-5)
    assert "VECTOR INDEX SCAN" in coll.explain()
    assert store.stats["exact_fallbacks"] == 0 or store.stats["searches"] > 100


@pytest.mark.parametrize("n_match", [3, 10, 30])
def test_filtered_search_returns_k_when_k_rows_match(store, collection_name, n_match):
    coll = store.create_collection(collection_name, 16, columns={"grp": "int"})
    rng = np.random.default_rng(2)
    n = 2000
    vecs = unit(rng, n, 16)
    match = set(rng.choice(n, n_match, replace=False).tolist())
    coll.upsert([{"id": f"{i:05d}", "vector": v, "grp": 1 if i in match else 0, "metadata": {"m": i in match}}
                 for i, v in enumerate(vecs)], batch_size=500)
    k = 10
    for where in ({"grp": 1}, {"metadata.m": True}):
        for _ in range(3):
            q = unit(rng, 1, 16)[0]
            hits = coll.search(q, k=k, where=where)
            want = sorted(match, key=lambda i: -float(vecs[i] @ q))[:k]
            assert len(hits) == min(k, n_match)
            assert {h.id for h in hits} == {f"{i:05d}" for i in want}


def test_short_approximate_result_falls_back_to_exact(store, collection_name):
    coll = store.create_collection(collection_name, 8)
    rng = np.random.default_rng(3)
    coll.upsert([{"id": str(i), "vector": v} for i, v in enumerate(unit(rng, 4, 8))])
    before = store.stats["exact_fallbacks"]
    hits = coll.search(unit(rng, 1, 8)[0], k=10, exact=False)  # the index; fewer rows than k: it answers short
    assert len(hits) == 4
    assert store.stats["exact_fallbacks"] == before + 1


def test_load_then_index(store, collection_name):
    coll = store.create_collection(collection_name, 24, index=None)
    assert not coll.has_index
    assert "VECTOR INDEX" not in coll.explain()
    rng = np.random.default_rng(4)
    vecs = unit(rng, 500, 24)
    coll.upsert([{"id": str(i), "vector": v} for i, v in enumerate(vecs)], batch_size=250)
    exact_before = [h.id for h in coll.search(vecs[10], k=5)]
    coll.create_index("hnsw", index_params={"ef_search": 200})
    assert coll.has_index
    assert "VECTOR INDEX SCAN" in coll.explain()
    assert store.collection(coll.name).metadata["index_params"]["ef_search"] == 200
    # the engine ignores an index's own ef_search (it uses the session's 64): the store passes it per query
    assert "PARAMETERS(ef_search=200)" in coll.search_sql(10)[0]
    assert "PARAMETERS(ef_search=50)" in coll.search_sql(10, ef_search=50)[0]
    assert [h.id for h in coll.search(vecs[10], k=5)] == exact_before
    coll.upsert([{"id": "late", "vector": vecs[10]}])  # later writes go through the built index
    assert {h.id for h in coll.search(vecs[10], k=2)} == {"10", "late"}


@pytest.mark.parametrize("index", ["hnsw_sq", "hnsw_bq", "ivf_flat"])
def test_other_index_types(store, make_collection_name, index):
    coll = store.create_collection(make_collection_name(index), 16, index=index)
    rng = np.random.default_rng(5)
    vecs = unit(rng, 200, 16)
    coll.upsert([{"id": str(i), "vector": v} for i, v in enumerate(vecs)])
    assert coll.metadata["index_type"] == index
    assert "VECTOR INDEX" in coll.explain()
    assert coll.search(vecs[17], k=3)[0].id == "17"
    if index.startswith("ivf"):
        with pytest.raises(InvalidInputError, match="ef_search applies to HNSW"):
            coll.search(vecs[17], k=3, ef_search=64)


def test_text_queries_and_space_refusal(store, collection_name, minilm):
    coll = store.create_collection(collection_name, minilm, columns={"lang": "varchar(8)"})
    assert coll.metadata["spec"] == minilm.spec
    assert coll.metadata["space"] == minilm.space
    assert coll.metadata["provider"]["dimension"] == 384
    assert coll.metadata["provider"]["space"] == minilm.space
    texts = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A kitten is sleeping on a rug."]
    vecs = minilm.embed_documents(texts)
    coll.upsert([{"id": f"d{i}", "vector": v, "content": t, "lang": "en"} for i, (t, v) in
                 enumerate(zip(texts, vecs, strict=True))])
    hits = coll.search("finance news", k=1)
    assert hits[0].id == "d1"

    other = HashProvider()
    with pytest.raises(DimensionMismatchError) as ei:
        store.collection(coll.name, provider=other)
    msg = str(ei.value)
    assert minilm.spec in msg
    assert "hash:hash-384" in msg
    assert "new collection" in msg
    with pytest.raises(DimensionMismatchError, match="384-d"):
        coll.attach(HashProvider("hash-8", dim=8))
    with pytest.raises(DimensionMismatchError, match=r"another vector space"):
        store.create_collection(coll.name, other, exists_ok=True)

    # reopened without a provider: the model is rebuilt from the metadata row (provider_factory=obembed.load)
    reopened = store.collection(coll.name)
    assert [h.id for h in reopened.search("a small cat resting", k=2)] in (["d2", "d0"], ["d0", "d2"])
    assert reopened.provider.space == minilm.space
    assert store.collection(coll.name).provider is reopened.provider  # built once per store


def _ja_sample(n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    corpus = {}
    with gzip.open(DATA / "ja_corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            corpus[r["id"]] = r["text"]
    queries = []
    with gzip.open(DATA / "ja_queries.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            queries.append((q["text"], q["relevant"][0]))
            if len(queries) == n:
                break
    return [(rel, corpus[rel][:160]) for _, rel in queries], queries


def test_hybrid_search_japanese(store, collection_name, minilm):
    """Real Japanese Debian descriptions: ngram full-text + MiniLM vectors fused with RRF."""
    docs, queries = _ja_sample(12)
    coll = store.create_collection(collection_name, minilm, fulltext=True, columns={"lang": "varchar(8)"})
    assert coll.metadata["fulltext"] == "ngram"
    vecs = minilm.embed_documents([t for _, t in docs])
    coll.upsert([{"id": i, "vector": v, "content": t, "lang": "ja"} for (i, t), v in zip(docs, vecs, strict=True)])
    qvecs = minilm.embed_queries([q for q, _ in queries])
    vec_at3 = hyb_at3 = hyb_w_at1 = 0
    for (q, rel), qv in zip(queries, qvecs, strict=True):
        vec_at3 += rel in [h.id for h in coll.search(qv, k=3)]
        hits = coll.hybrid_search(q, k=3, vector=qv)
        assert len(hits) == 3
        assert hits[0].score >= hits[1].score >= hits[2].score
        hyb_at3 += rel in [h.id for h in hits]
        hyb_w_at1 += coll.hybrid_search(q, k=1, vector=qv, weights=(1.0, 3.0))[0].id == rel
    # MiniLM is an English model: alone it finds few Japanese answers; the full-text side lifts hybrid clearly
    assert hyb_at3 > vec_at3
    assert hyb_at3 >= 8
    assert hyb_w_at1 >= 7
    # filters apply to both sides
    assert coll.hybrid_search(queries[0][0], k=3, where={"lang": "en"}) == []
    # text-only path (the vector is embedded from the text by the collection's provider)
    assert coll.hybrid_search(queries[0][0], k=1)[0].id in {d for d, _ in docs}
