"""The LangChain adapter beyond the standard suite: filters, hybrid, MMR, retrievers, metadata round-trip, model
identity, async that does not block, bad input (clear errors, nothing stored lost). Real embedded seekdb (the
session store), the bundled MiniLM where meaning matters, LangChain's deterministic embedder elsewhere."""

from __future__ import annotations

import asyncio
import json
import operator
import threading

import pytest

pytest.importorskip("langchain_core", reason="the LangChain adapter needs `pip install 'obembed[langchain]'`")

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

from obembed.errors import DimensionMismatchError, InvalidFilterError, InvalidInputError
from obembed.integrations.langchain import ObembedEmbeddings, ObembedRetriever, ObembedVectorStore

PETS = [
    ("The cat sleeps on the warm windowsill all afternoon.", {"kind": "pet", "year": 2019, "lang": "en",
                                                              "tags": ["cat", "home"]}),
    ("A dog fetches the ball in the park.", {"kind": "pet", "year": 2021, "lang": "en", "tags": ["dog"]}),
    ("Kittens play with a ball of yarn.", {"kind": "pet", "year": 2023, "lang": "en", "tags": ["cat"]}),
    ("The stock market fell sharply on Monday.", {"kind": "news", "year": 2022, "lang": "en", "tags": []}),
    ("Die Katze schläft auf dem Sofa.", {"kind": "pet", "year": 2020, "lang": "de", "tags": ["cat"]}),
    ("Interest rates rose again this quarter.", {"kind": "news", "year": 2024, "lang": "en"}),
]


@pytest.fixture(scope="module")
def emb(minilm):
    return ObembedEmbeddings(provider=minilm)


@pytest.fixture(scope="module")
def pets_name(module_collections):
    return module_collections("lc_pets")


@pytest.fixture(scope="module")
def pets(store, emb, pets_name):
    """A collection of six documents, the year a typed column, the rest JSON metadata (read-only in tests)."""
    vs = ObembedVectorStore(emb, pets_name, store=store, columns={"year": "int"})
    vs.add_texts([t for t, _ in PETS], [m for _, m in PETS], ids=[f"p{i}" for i in range(len(PETS))])
    return vs


@pytest.fixture(scope="module")
def fake_name(module_collections):
    return module_collections("lc_fake")


@pytest.fixture
def fake(store, fake_name):
    """An empty store over LangChain's deterministic embedder (emptied after each test)."""
    vs = ObembedVectorStore(DeterministicFakeEmbedding(size=8), fake_name, store=store)
    yield vs
    vs.delete()


def ids(docs):
    return [d.id for d in docs]


# ------------------------------------------------------------------------------------------------ searching
def test_similarity_search_finds_the_meaning_and_scores_are_distances(pets):
    docs = pets.similarity_search("a sleeping kitty", k=2)
    assert docs[0].id == "p0"
    scored = pets.similarity_search_with_score("a sleeping kitty", k=6)
    dists = [s for _, s in scored]
    assert dists == sorted(dists)  # distances: lower is closer
    rel = pets.similarity_search_with_relevance_scores("a sleeping kitty", k=2)
    assert rel[0][0].id == "p0"
    assert 0.0 < rel[0][1] <= 1.0


def test_same_ids_as_obembeds_own_api(store, pets, pets_name):
    """The adapter's collection is a normal obembed collection: obembed rebuilds its model from the metadata and
    ranks the same query the same way."""
    coll = store.collection(pets_name)
    assert coll.spec == "st:all-MiniLM-L6-v2"
    own = [h.id for h in coll.search("markets and money", k=4)]
    assert ids(pets.similarity_search("markets and money", k=4)) == own
    assert ids(pets.similarity_search("markets and money", k=4, exact=True)) == own  # the policy is exact here


def test_metadata_round_trips_typed_and_json(pets, store, pets_name):
    got = pets.get_by_ids(["p1", "p5", "missing"])
    assert [d.id for d in got] == ["p1", "p5"]
    assert got[0].metadata == PETS[1][1]
    assert got[1].metadata == PETS[5][1]
    row = store.collection(pets_name).get(["p1"])[0]
    assert row["year"] == 2021
    assert "year" not in row["metadata"]
    assert row["metadata"]["tags"] == ["dog"]


@pytest.mark.parametrize(("flt", "expected"), [
    ({"kind": "news"}, {"p3", "p5"}),
    ({"year": {"$gte": 2022}}, {"p2", "p3", "p5"}),
    ({"year": {"$between": [2020, 2021]}}, {"p1", "p4"}),
    ({"lang": {"$in": ["de"]}}, {"p4"}),
    ({"lang": {"$nin": ["en"]}}, {"p4"}),
    ({"kind": "pet", "lang": {"$ne": "en"}}, {"p4"}),
    ({"$or": [{"year": {"$lt": 2020}}, {"lang": "de"}]}, {"p0", "p4"}),
    ({"$and": [{"kind": "pet"}, {"$not": {"lang": "de"}}]}, {"p0", "p1", "p2"}),
    ({"tags": {"$contains": "cat"}}, {"p0", "p2", "p4"}),
    ({"tags": {"$any": ["dog", "home"]}}, {"p0", "p1"}),
    ({"tags": {"$all": ["cat", "home"]}}, {"p0"}),
    ({"tags": {"$is_empty": True}}, {"p3", "p5"}),
    ({"tags": {"$exists": False}}, {"p5"}),
    ({"kind": {"$like": "ne%"}}, {"p3", "p5"}),
    ({"kind": {"$ilike": "NE%"}}, {"p3", "p5"}),
    ("year >= 2023", {"p2", "p5"}),  # an obembed expression string passes through
])
def test_langchain_filter_operators(pets, flt, expected):
    assert set(ids(pets.similarity_search("anything at all", k=6, filter=flt))) == expected


def test_filter_values_are_bound_never_pasted(pets):
    """A value full of SQL is a value: it matches nothing, and the collection is untouched."""
    assert pets.similarity_search("cat", k=6, filter={"kind": "pet' OR '1'='1"}) == []
    assert pets.similarity_search("cat", k=6, filter={"lang": {"$in": ["en'); DROP TABLE x; --"]}}) == []
    assert len(pets.similarity_search("cat", k=6)) == 6


def test_hybrid_search_type_and_retrievers(pets):
    hybrid = pets.hybrid_search_with_score("yarn", k=3)
    assert hybrid[0][0].id == "p2"  # the only text with "yarn": found by full-text and vector side
    assert all(a[1] >= b[1] for a, b in itertools.pairwise(hybrid))  # RRF scores, best first
    r = pets.as_retriever(search_type="hybrid", search_kwargs={"k": 2, "filter": {"kind": "pet"}})
    assert isinstance(r, ObembedRetriever)
    got = r.invoke("yarn")
    assert got[0].id == "p2"
    assert all(d.metadata["kind"] == "pet" for d in got)
    assert ids(pets.search("yarn", "hybrid", k=2, filter={"kind": "pet"})) == ids(got)
    sim = pets.as_retriever(search_kwargs={"k": 1, "filter": {"lang": "de"}}).invoke("cat")
    assert ids(sim) == ["p4"]
    thr = pets.as_retriever(search_type="similarity_score_threshold",
                            search_kwargs={"score_threshold": 0.99, "k": 3}).invoke("cat")
    assert thr == []  # no text is that close to "cat"
    with pytest.raises(ValueError, match="hybrid"):
        pets.as_retriever(search_type="nonsense")


def test_mmr_prefers_diverse_results(pets):
    plain = ids(pets.similarity_search("cats", k=3))
    diverse = ids(pets.max_marginal_relevance_search("cats", k=3, fetch_k=6, lambda_mult=0.0))
    assert diverse[0] == plain[0]  # the first pick is the most relevant
    assert diverse != plain
    assert len(set(diverse)) == 3
    mmr = pets.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 6}).invoke("cats")
    assert len(mmr) == 2
    assert mmr[0].id == plain[0]


def test_async_variants_match_sync(pets):
    async def run():
        return (await pets.asimilarity_search("a sleeping kitty", k=3),
                await pets.asimilarity_search_with_score("a sleeping kitty", k=3),
                await pets.amax_marginal_relevance_search("cats", k=2, fetch_k=6),
                await pets.ahybrid_search("yarn", k=2),
                await pets.as_retriever(search_type="hybrid", search_kwargs={"k": 2}).ainvoke("yarn"),
                await pets.aget_by_ids(["p2"]))

    a, b, c, d, e, f = asyncio.run(run())
    assert ids(a) == ids(pets.similarity_search("a sleeping kitty", k=3))
    assert [s for _, s in b] == pytest.approx([s for _, s in pets.similarity_search_with_score("a sleeping kitty", 3)])
    assert ids(c) == ids(pets.max_marginal_relevance_search("cats", k=2, fetch_k=6))
    assert ids(d) == ids(e) == ids(pets.hybrid_search("yarn", k=2))
    assert f[0].metadata == PETS[2][1]


def test_async_embedding_does_not_block_the_event_loop(minilm):
    """The model runs in a worker thread: the embedding call here waits until a coroutine on the event loop has
    run; if aembed_* blocked the loop, that coroutine could never run and the call would time out."""
    loop_ran = threading.Event()

    class Gated(ObembedEmbeddings):
        def embed_documents(self, texts):
            assert loop_ran.wait(timeout=20), "the event loop was blocked while embedding"
            return super().embed_documents(texts)

        def embed_query(self, text):
            assert loop_ran.wait(timeout=20), "the event loop was blocked while embedding"
            return super().embed_query(text)

    emb = Gated(provider=minilm)

    async def run():
        async def tick():
            await asyncio.sleep(0)
            loop_ran.set()

        docs, _ = await asyncio.gather(emb.aembed_documents(["a", "b"]), tick())
        loop_ran.clear()
        query, _ = await asyncio.gather(emb.aembed_query("c"), tick())
        return docs, query

    docs, query = asyncio.run(run())
    assert len(docs) == 2
    assert len(query) == 384
    assert docs[0] == pytest.approx(emb.embed_documents(["a"])[0], abs=1e-6)


def test_from_documents_upserts_by_id_and_deletes(store, emb, module_collections):
    name = module_collections("lc_fromdocs")
    docs = [Document(page_content="alpha text", metadata={"n": 1}, id="a"),
            Document(page_content="beta text", metadata={"n": 2})]
    vs = ObembedVectorStore.from_documents(docs, emb, collection_name=name, store=store)
    got = vs.similarity_search("alpha", k=5)
    assert {d.page_content for d in got} == {"alpha text", "beta text"}
    assert "a" in ids(got)
    vs.add_documents([Document(page_content="alpha changed", metadata={"n": 9}, id="a")])
    assert vs.get_by_ids(["a"])[0] == Document(id="a", page_content="alpha changed", metadata={"n": 9})
    assert store.collection(name).count() == 2
    vs.delete(filter={"n": 9})
    assert "a" not in ids(vs.similarity_search("alpha", k=5))
    assert store.collection(name).count() == 1


def test_texts_from_a_real_splitter(store, emb, module_collections, tmp_path):
    """The usual RAG path: load a file, split it with LangChain's splitter, store, retrieve."""
    splitters = pytest.importorskip("langchain_text_splitters")
    text = "\n\n".join(f"Section {i}. " + ("Cats purr. " if i == 3 else "Weather is mild. ") * 20 for i in range(6))
    f = tmp_path / "notes.txt"
    f.write_text(text, encoding="utf-8")
    chunks = splitters.RecursiveCharacterTextSplitter(chunk_size=300, chunk_overlap=0).create_documents(
        [f.read_text(encoding="utf-8")], metadatas=[{"source": str(f)}])
    vs = ObembedVectorStore.from_documents(chunks, emb, collection_name=module_collections("lc_split"), store=store)
    top = vs.as_retriever(search_kwargs={"k": 1}).invoke("purring cats")[0]
    assert "Cats purr" in top.page_content
    assert top.metadata == {"source": str(f)}
    # "source" lands in obembed's source column, so obembed's own tools list it
    assert list(vs.collection.sources()) == [str(f)]


# ------------------------------------------------------------------------------------------------ identity
def test_refuses_a_collection_of_another_model_naming_both(store, pets_name):
    with pytest.raises(DimensionMismatchError) as e:
        ObembedVectorStore(DeterministicFakeEmbedding(size=384), pets_name, store=store)
    msg = str(e.value)
    assert "st:all-MiniLM-L6-v2" in msg
    assert "DeterministicFakeEmbedding" in msg


def test_wrong_dimension_embeddings_refused_nothing_written(store, fake, fake_name, monkeypatch):
    fake.add_texts(["kept"], ids=["k1"])
    with pytest.raises(DimensionMismatchError, match="8-d"):
        ObembedVectorStore(DeterministicFakeEmbedding(size=5), fake_name, store=store)

    class Broken(DeterministicFakeEmbedding):  # an embedder that changed its mind: 5-d vectors now
        def embed_documents(self, texts):
            return [v[:5] for v in super().embed_documents(texts)]

    monkeypatch.setattr(fake, "embedding", Broken(size=8))
    with pytest.raises(DimensionMismatchError, match="5 dimensions"):
        fake.add_texts(["new one", "kept"], ids=["n1", "k1"])
    assert [d.page_content for d in fake.get_by_ids(["k1", "n1"])] == ["kept"]


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_filters_are_clear_errors(pets):
    with pytest.raises(InvalidFilterError, match=r"unknown operator '\$regex'.*\$eq"):
        pets.similarity_search("x", filter={"kind": {"$regex": "n.*"}})
    with pytest.raises(InvalidFilterError, match=r"unknown filter operator '\$nor'"):
        pets.similarity_search("x", filter={"$nor": [{"kind": "pet"}]})
    with pytest.raises(InvalidFilterError, match=r"'colour' is neither a declared column \(declared: year\).*kind"):
        pets.similarity_search("x", filter={"colour": "red"})
    with pytest.raises(InvalidFilterError, match="not a metadata field name"):
        pets.similarity_search("x", filter={"kind; DROP": "x"})
    with pytest.raises(InvalidFilterError, match="applies to list values"):
        pets.similarity_search("x", filter={"year": {"$contains": 2020}})


def test_duplicate_ids_in_one_call_refused_before_embedding(fake):
    fake.add_texts(["first"], ids=["d1"])
    calls = []
    real = fake.embedding.embed_documents
    fake.embedding.__dict__["embed_documents"] = lambda texts: calls.append(texts) or real(texts)
    with pytest.raises(InvalidInputError, match=r"id 'd1' appears twice in one call \(items 0 and 2\)"):
        fake.add_texts(["x", "y", "z"], ids=["d1", "d2", "d1"])
    assert calls == []  # refused before the model was called
    assert [d.page_content for d in fake.get_by_ids(["d1", "d2"])] == ["first"]


def test_metadata_json_cannot_hold_is_refused_naming_item_and_fix(fake):
    import datetime

    fake.add_texts(["first"], [{"a": 1}], ids=["m1"])
    with pytest.raises(InvalidInputError, match=r"document 1 \(id 'm2'\): metadata\['when'\].*declare a typed column"):
        fake.add_texts(["ok", "bad"], [{"a": 2}, {"when": datetime.date(2024, 1, 1)}], ids=["m1", "m2"])
    assert fake.get_by_ids(["m1", "m2"]) == [Document(id="m1", page_content="first", metadata={"a": 1})]


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                         st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3), max_leaves=8)
bad_values = st.one_of(st.just(float("nan")), st.just(float("inf")), st.binary(min_size=1, max_size=4),
                       st.sets(st.integers(), min_size=1, max_size=2), st.dates())
keys = st.text(alphabet="abcdefghij_", min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(md=st.dictionaries(keys, json_values, max_size=4), bad=st.one_of(st.none(), bad_values),
       text=st.text(min_size=1, max_size=40).filter(lambda s: s.strip()))
def test_property_metadata_stored_exactly_or_refused_nothing_lost(fake, md, bad, text):
    """Any metadata is stored and read back exactly (JSON-equal), or refused with an error naming the document;
    what was stored before is never changed."""
    fake.add_texts(["before"], [{"v": 1}], ids=["keep"])
    meta = dict(md)
    if bad is not None:
        meta["zz_bad"] = bad
    if bad is not None:
        with pytest.raises(InvalidInputError, match=r"document 0 \(id 'new'\): metadata\['zz_bad'\]"):
            fake.add_texts([text], [meta], ids=["new"])
        assert fake.get_by_ids(["new"]) == []
    else:
        fake.add_texts([text], [meta], ids=["new"])
        got = fake.get_by_ids(["new"])[0]
        assert got.page_content == text
        assert json.dumps(got.metadata, sort_keys=True) == json.dumps(meta, sort_keys=True)
    assert fake.get_by_ids(["keep"]) == [Document(id="keep", page_content="before", metadata={"v": 1})]
    fake.delete(["new"])


FIELDS = {"a": st.integers(0, 4), "b": st.sampled_from(["x", "y", "z"])}
DOCS = [{"a": i % 5, "b": "xyz"[i % 3]} for i in range(12)]


@st.composite
def filters(draw, depth=0):
    if depth < 2 and draw(st.booleans()):
        op = draw(st.sampled_from(["$and", "$or", "$not"]))
        if op == "$not":
            return {"$not": draw(filters(depth + 1))}
        return {op: draw(st.lists(filters(depth + 1), min_size=1, max_size=3))}
    field = draw(st.sampled_from([*FIELDS, "c"]))  # "c": never stored
    op = draw(st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$regex"]))
    value_st = FIELDS.get(field, st.integers(0, 4))
    value = draw(st.lists(value_st, max_size=3)) if op in ("$in", "$nin") else draw(value_st)
    return {field: {op: value}}


_OPS = {"$eq": operator.eq, "$ne": operator.ne, "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt,
        "$lte": operator.le, "$in": lambda x, v: x in v, "$nin": lambda x, v: x not in v}


def _matches(doc, flt):
    for key, cond in flt.items():
        if key == "$and":
            ok = all(_matches(doc, f) for f in cond)
        elif key == "$or":
            ok = any(_matches(doc, f) for f in cond)
        elif key == "$not":
            ok = not _matches(doc, cond)
        else:
            (op, v), = cond.items()
            ok = _OPS[op](doc[key], v)
        if not ok:
            return False
    return True


def _uses(flt, what):
    """Whether the filter names ``what`` as a field or an operator anywhere."""
    return any(k == what or (isinstance(v, dict) and _uses(v, what))
               or (isinstance(v, list) and any(isinstance(f, dict) and _uses(f, what) for f in v))
               for k, v in flt.items())


@pytest.fixture(scope="module")
def grid(store, module_collections):
    vs = ObembedVectorStore(DeterministicFakeEmbedding(size=8), module_collections("lc_grid"), store=store,
                            columns={"a": "int"})  # one typed column, one JSON field
    vs.add_texts([f"doc {i}" for i in range(len(DOCS))], DOCS, ids=[f"g{i:02d}" for i in range(len(DOCS))])
    return vs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=filters())
def test_property_filters_select_what_python_selects_or_name_the_problem(grid, flt):
    """Every LangChain filter over these documents returns exactly the documents Python's reading of it selects;
    an unknown operator or an unknown field is an InvalidFilterError naming it."""
    if _uses(flt, "$regex") or _uses(flt, "c"):
        with pytest.raises(InvalidFilterError, match=r"\$regex|'c'"):
            grid.similarity_search("doc", k=len(DOCS), filter=flt)
        return
    got = {d.id for d in grid.similarity_search("doc", k=len(DOCS), filter=flt)}
    assert got == {f"g{i:02d}" for i, d in enumerate(DOCS) if _matches(d, flt)}
