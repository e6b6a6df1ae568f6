"""Ingest into a collection with a sparse column: dense + sparse from one model pass (a BGE-M3-shaped model the
test builds, ``st:FOLDER?sparse=true``), ``obembed ingest --sparse`` / ``obembed search --mode sparse|hybrid`` on
the session's embedded seekdb, results against a brute-force computation, and the errors that say what to do."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _models import build_bge_m3
from hypothesis import given, settings
from hypothesis import strategies as st

import obembed
from obembed.ingest import ingest
from obembed.providers.sparse import sparse_dot

RECORDS = [
    "the cat sat on the mat", "a dog sat on the table", "vector search in the database",
    "ocean base is a fast database", "hello world", "the red cat is slow", "blue ocean and red table",
    "search the vector table fast", "the dog is blue", "hello vector world", "a slow database table",
    "cat and dog on the mat",
]


@pytest.fixture(scope="module")
def m3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bge_m3(tmp_path_factory.mktemp("bge-m3-ingest"))


@pytest.fixture(scope="module")
def m3_sparse(m3):
    p = obembed.load(f"st:{m3}", sparse=True)
    p.dimension  # noqa: B018 - load now
    return p


@pytest.fixture
def corpus(tmp_path, put):
    lines = "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(RECORDS))
    return put(tmp_path / "c" / "docs.jsonl", lines).parent


class ForwardCounter:
    """Counts forward passes of the real model (a hook on its transformer)."""

    def __init__(self, provider: Any) -> None:
        self.n = 0
        self.handle = provider.st_model[0].auto_model.register_forward_hook(self._hook)

    def _hook(self, *args: Any) -> None:
        self.n += 1


def test_one_pass_writes_dense_and_sparse(store, m3_sparse, corpus, make_collection_name):
    counter = ForwardCounter(m3_sparse)
    try:
        plain = ingest(corpus, collection=make_collection_name("m3dense"), store=store, provider=m3_sparse)
        dense_passes, counter.n = counter.n, 0
        name = make_collection_name("m3sparse")
        report = ingest(corpus, collection=name, store=store, provider=m3_sparse, sparse=True)
        both_passes = counter.n
    finally:
        counter.handle.remove()
    assert report.chunks_embedded == plain.chunks_embedded == len(RECORDS)
    assert report.ok
    assert both_passes == dense_passes  # the sparse vectors cost no second pass of the model
    coll = store.collection(name)
    assert coll.has_sparse
    rows = coll.get(sorted(coll.hashes()), include_vectors=True)
    assert len(rows) == len(RECORDS)
    want = m3_sparse.embed_sparse([r["content"] for r in rows])
    dense = m3_sparse.embed_documents([r["content"] for r in rows])
    for r, w, d in zip(rows, want, dense, strict=True):
        assert r["sparse"].keys() == w.keys()
        assert w
        # stored as float32; the batch's padding moves the last digits (as it does for dense vectors)
        assert all(math.isclose(r["sparse"][i], w[i], rel_tol=1e-5, abs_tol=1e-5) for i in w), (r["sparse"], w)
        np.testing.assert_allclose(r["vector"], d, atol=1e-5)
    # a rerun embeds nothing and changes nothing
    again = ingest(corpus, collection=name, store=store, provider=m3_sparse, sparse=True)
    assert again.chunks_embedded == 0
    assert again.chunks_skipped == len(RECORDS)


def test_cli_ingest_sparse_and_search_modes(cli, store, store_args, m3, m3_sparse, corpus, make_collection_name):
    name = make_collection_name("m3cli")
    spec = f"st:{m3}?sparse=true"
    res = cli("ingest", str(corpus), "-c", name, "--sparse", "-m", spec, *store_args, "--json")
    assert json.loads(res.stdout)["chunks_embedded"] == len(RECORDS)
    coll = store.collection(name)
    stored = {r["id"]: r for r in coll.get(sorted(coll.hashes()), include_vectors=True)}

    query = "database vector table"
    q = m3_sparse.embed_sparse([query], "query")[0]
    scores = sorted(((sparse_dot(q, r["sparse"]), rid) for rid, r in stored.items()), key=lambda t: -t[0])
    brute = [rid for s, rid in scores if s > 0][:5]
    res = cli("search", query, "-c", name, "--mode", "sparse", "-k", "5", *store_args, "--json")
    out = json.loads(res.stdout)
    assert out["mode"] == "sparse"
    assert [h["id"] for h in out["hits"]] == brute  # the collection's recorded model gives the query's weights
    assert [h["score"] for h in out["hits"]] == pytest.approx([s for s, _ in scores[:len(brute)]], rel=1e-5)

    res = cli("search", query, "-c", name, "--mode", "hybrid", "--weight", "dense=1", "--weight", "sparse=1", "-k",
              "3", *store_args, "--json")
    hybrid = json.loads(res.stdout)
    assert hybrid["weights"] == {"dense": 1.0, "sparse": 1.0}
    assert len(hybrid["hits"]) == 3
    legs = [store.collection(name).search(query, 40, mode=m) for m in ("dense", "sparse")]
    fused: dict[str, float] = {}
    for hits in legs:
        for rank, h in enumerate(hits, 1):
            fused[h.id] = fused.get(h.id, 0.0) + 1.0 / (60 + rank)
    assert [h["id"] for h in hybrid["hits"]] == sorted(fused, key=lambda i: -fused[i])[:3]

    res = cli("collections", "show", name, *store_args)
    assert "sparse: yes" in res.stdout


def test_errors_say_how(cli, store, store_args, m3, corpus, make_collection_name):
    name = make_collection_name("nosparse")
    res = cli("ingest", str(corpus), "-c", name, "--sparse", *store_args, ok=False)  # MiniLM: no sparse output
    assert res.exit_code == 1
    assert "gives no sparse vectors" in res.output
    assert "sparse=true" in res.output
    assert not store.has_collection(name)
    cli("ingest", str(corpus), "-c", name, "-m", f"st:{m3}?sparse=true", *store_args)  # no --sparse: dense only
    res = cli("search", "cat", "-c", name, "--mode", "sparse", *store_args, ok=False)
    assert res.exit_code == 1
    assert "has no sparse vector column" in res.output
    assert "sparse=True" in res.output
    assert "obembed ingest PATH -c NEW_NAME --sparse" in res.output
    res = cli("ingest", str(corpus), "-c", name, "--sparse", *store_args, ok=False)
    assert "has no sparse vector column" in res.output

    sparse_name = make_collection_name("withsparse")
    cli("ingest", str(corpus), "-c", sparse_name, "--sparse", "-m", f"st:{m3}?sparse=true", *store_args)
    res = cli("ingest", str(corpus), "-c", sparse_name, "-m", f"st:{m3}", *store_args, ok=False)
    assert "has a sparse vector column" in res.output
    assert "sparse=true" in res.output
    res = cli("search", "cat", "-c", sparse_name, "--weight", "sparse=1", *store_args, ok=False)
    assert "--mode hybrid" in res.output


class BadSparse:
    """The real provider, whose sparse output for texts containing ``poison`` is replaced by ``bad`` (the
    stand-in for a third-party provider that returns values the store refuses)."""

    def __init__(self, inner: Any, bad: dict[Any, Any]) -> None:
        self._inner = inner
        self.bad = bad

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def embed_both(self, texts: list[str], **kw: Any) -> Any:
        res = self._inner.embed_both(texts, **kw)
        res.extra["sparse"] = [self.bad if "poison" in t else s for t, s in zip(texts, res.extra["sparse"],
                                                                                   strict=True)]
        return res


bad_vectors = st.one_of(
    st.fixed_dictionaries({st.just(5): st.one_of(st.just(float("nan")), st.just(float("inf")),
                                                 st.floats(max_value=-1e-3, allow_nan=False))}),
    st.dictionaries(st.one_of(st.integers(max_value=-1), st.integers(min_value=500_000), st.text(max_size=3)),
                    st.just(0.5), min_size=1, max_size=2))


@settings(max_examples=4)
@given(bad=bad_vectors)
def test_a_bad_sparse_vector_fails_its_chunk_only(store, m3_sparse, tmp_path_factory, make_collection_name, bad):
    d = tmp_path_factory.mktemp("poison")
    (d / "a.txt").write_text("the cat sat on the mat", encoding="utf-8")
    (d / "b.txt").write_text("poison vector table", encoding="utf-8")
    name = make_collection_name("poison")
    report = ingest(d, collection=name, store=store, provider=BadSparse(m3_sparse, bad), sparse=True)
    assert report.chunks_failed == 1
    assert report.chunks_embedded == 1
    (failure,) = report.failures
    assert failure["source"].endswith("b.txt")
    assert "sparse" in failure["reason"]
    assert sorted(store.collection(name).sources()) == [str(d / "a.txt")]
    store.drop_collection(name)
