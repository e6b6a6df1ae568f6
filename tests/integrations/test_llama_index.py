"""The LlamaIndex adapter, tested against its vector store contract (add / query / delete / filters / persist and
reopen) on the real embedded seekdb, and end to end (files -> VectorStoreIndex -> retriever) with the bundled
MiniLM."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("llama_index.core", reason="the LlamaIndex adapter needs `pip install 'obembed[llamaindex]'`")

from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from obembed.errors import DimensionMismatchError, InvalidFilterError, InvalidInputError
from obembed.integrations.llama_index import ObembedEmbedding, ObembedVectorStore

TEXTS = [
    ("n0", "doc-a", "The cat sleeps on the warm windowsill.", {"kind": "pet", "year": 2019, "tags": ["cat", "home"],
                                                               "author": "Ann Lee"}),
    ("n1", "doc-a", "A dog fetches the ball in the park.", {"kind": "pet", "year": 2021, "tags": ["dog"],
                                                            "author": "Bob"}),
    ("n2", "doc-b", "Kittens play with a ball of yarn.", {"kind": "pet", "year": 2023, "tags": ["cat"],
                                                          "author": "ann lee"}),
    ("n3", "doc-c", "The stock market fell sharply on Monday.", {"kind": "news", "year": 2022, "tags": [],
                                                                 "author": ""}),
    ("n4", "doc-c", "Interest rates rose again this quarter.", {"kind": "news", "year": 2024}),
]


@pytest.fixture(scope="module")
def emb(minilm):
    return ObembedEmbedding(provider=minilm)


def make_nodes(emb, rows=TEXTS):
    nodes = []
    for nid, ref, text, md in rows:
        n = TextNode(id_=nid, text=text, metadata=dict(md))
        n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=ref)
        nodes.append(n)
    vecs = emb.get_text_embedding_batch([n.get_content() for n in nodes])
    for n, v in zip(nodes, vecs, strict=True):
        n.embedding = v
    return nodes


@pytest.fixture(scope="module")
def coll_name(module_collections):
    return module_collections("li_contract")


@pytest.fixture
def vs(store, emb, coll_name):
    """A store holding the five nodes (typed ``year`` column); emptied after each test."""
    v = ObembedVectorStore(emb, coll_name, store=store, columns={"year": "int"})
    v.add(make_nodes(emb))
    yield v
    v.clear()


def q(emb, text, k=5, **kw):
    return VectorStoreQuery(query_embedding=emb.get_query_embedding(text), query_str=text, similarity_top_k=k, **kw)


def mf(*filters, condition=FilterCondition.AND):
    return MetadataFilters(filters=list(filters), condition=condition)


# ------------------------------------------------------------------------------------------------ contract
def test_add_then_query_returns_whole_nodes(vs, emb):
    res = vs.query(q(emb, "a sleeping kitty", k=3))
    assert res.ids[0] == "n0"
    assert res.similarities == sorted(res.similarities, reverse=True)
    node = res.nodes[0]
    assert node.get_content() == TEXTS[0][2]
    assert node.metadata == TEXTS[0][3]
    assert node.ref_doc_id == "doc-a"
    assert node.embedding is None  # not shipped back with results


def test_delete_by_ref_doc_id_removes_that_documents_nodes_only(vs, emb):
    vs.delete("doc-a")
    assert set(vs.query(q(emb, "anything", k=5)).ids) == {"n2", "n3", "n4"}
    vs.delete("no-such-doc")  # no error
    assert len(vs.get_nodes()) == 3


def test_delete_nodes_get_nodes_clear(vs, emb):
    got = vs.get_nodes(node_ids=["n3", "missing", "n1"])
    assert [n.node_id for n in got] == ["n3", "n1"]
    assert got[1].metadata == TEXTS[1][3]
    assert {n.node_id for n in vs.get_nodes(filters=mf(MetadataFilter(key="kind", value="news")))} == {"n3", "n4"}
    assert [n.node_id for n in vs.get_nodes(node_ids=["n4", "n0", "n3"],
                                            filters=mf(MetadataFilter(key="kind", value="news")))] == ["n4", "n3"]
    vs.delete_nodes(node_ids=["n0"])
    vs.delete_nodes(filters=mf(MetadataFilter(key="year", value=2022, operator=FilterOperator.GTE)))
    assert {n.node_id for n in vs.get_nodes()} == {"n1"}
    with pytest.raises(InvalidInputError, match="clear"):
        vs.delete_nodes()
    vs.clear()
    assert vs.get_nodes() == []
    assert vs.query(q(emb, "cat")).ids == []


def test_upsert_by_node_id_replaces(vs, emb):
    (node,) = make_nodes(emb, [("n1", "doc-z", "A dog sleeps.", {"kind": "pet", "year": 2030})])
    vs.add([node])
    (got,) = vs.get_nodes(node_ids=["n1"])
    assert got.get_content() == "A dog sleeps."
    assert got.metadata == {"kind": "pet", "year": 2030}
    assert got.ref_doc_id == "doc-z"
    assert len(vs.get_nodes()) == 5


F = MetadataFilter
OP = FilterOperator


@pytest.mark.parametrize(("filters", "expected"), [
    (mf(F(key="kind", value="news")), {"n3", "n4"}),
    (mf(F(key="year", value=2021, operator=OP.GT)), {"n2", "n3", "n4"}),
    (mf(F(key="year", value=2021, operator=OP.LT)), {"n0"}),
    (mf(F(key="year", value=2021, operator=OP.GTE)), {"n1", "n2", "n3", "n4"}),
    (mf(F(key="year", value=2021, operator=OP.LTE)), {"n0", "n1"}),
    (mf(F(key="kind", value="pet", operator=OP.NE)), {"n3", "n4"}),
    (mf(F(key="author", value="Bob", operator=OP.NE)), {"n0", "n2", "n3", "n4"}),  # missing counts as "not Bob"
    (mf(F(key="year", value=[2019, 2024], operator=OP.IN)), {"n0", "n4"}),
    (mf(F(key="author", value=["Bob", ""], operator=OP.NIN)), {"n0", "n2", "n4"}),
    (mf(F(key="tags", value=["dog", "home"], operator=OP.ANY)), {"n0", "n1"}),
    (mf(F(key="tags", value=["cat", "home"], operator=OP.ALL)), {"n0"}),
    (mf(F(key="tags", value="cat", operator=OP.CONTAINS)), {"n0", "n2"}),
    (mf(F(key="author", value="ann", operator=OP.TEXT_MATCH)), {"n2"}),
    (mf(F(key="author", value="ANN", operator=OP.TEXT_MATCH_INSENSITIVE)), {"n0", "n2"}),
    (mf(F(key="author", value="100%", operator=OP.TEXT_MATCH)), set()),  # % is a character, not a wildcard
    (mf(F(key="tags", value=None, operator=OP.IS_EMPTY)), {"n3", "n4"}),
    (mf(F(key="kind", value="pet"), F(key="year", value=2020, operator=OP.GT)), {"n1", "n2"}),
    (mf(F(key="year", value=2019), F(key="kind", value="news"), condition=FilterCondition.OR), {"n0", "n3", "n4"}),
    (mf(F(key="kind", value="news"), F(key="year", value=2019), condition=FilterCondition.NOT), {"n1", "n2"}),
    (mf(F(key="kind", value="pet"),
        mf(F(key="year", value=2019), F(key="tags", value="dog", operator=OP.CONTAINS),
           condition=FilterCondition.OR)), {"n0", "n1"}),
    (mf(mf(F(key="kind", value="news"), condition=FilterCondition.NOT),
        mf(F(key="year", value=2023, operator=OP.GTE))), {"n2"}),
])
def test_every_filter_operator_and_condition(vs, emb, filters, expected):
    assert set(vs.query(q(emb, "anything", k=5, filters=filters)).ids) == expected
    assert {n.node_id for n in vs.get_nodes(filters=filters)} == expected


def test_doc_ids_and_node_ids_restrict_a_query(vs, emb):
    assert set(vs.query(q(emb, "cat", k=5, doc_ids=["doc-a", "doc-b"])).ids) == {"n0", "n1", "n2"}
    assert set(vs.query(q(emb, "cat", k=5, node_ids=["n3", "n0"])).ids) == {"n0", "n3"}


def test_modes_hybrid_text_search_mmr(vs, emb):
    hybrid = vs.query(q(emb, "yarn", k=2, mode=VectorStoreQueryMode.HYBRID))
    assert hybrid.ids[0] == "n2"
    text = vs.query(q(emb, "market", k=5, mode=VectorStoreQueryMode.TEXT_SEARCH))
    assert text.ids[0] == "n3"  # full-text relevance (the ngram parser also scores partial overlaps)
    assert text.similarities == sorted(text.similarities, reverse=True)
    text_only = vs.query(VectorStoreQuery(query_str="yarn", similarity_top_k=3, mode=VectorStoreQueryMode.TEXT_SEARCH))
    assert text_only.ids[0] == "n2"  # no embedding needed
    plain = vs.query(q(emb, "cats", k=3)).ids
    mmr = vs.query(q(emb, "cats", k=3, mode=VectorStoreQueryMode.MMR, mmr_threshold=0.0)).ids
    assert mmr[0] == plain[0]
    assert mmr != plain
    vec_only = vs.query(q(emb, "yarn", k=3, mode=VectorStoreQueryMode.HYBRID, alpha=1.0)).ids
    assert vec_only == vs.query(q(emb, "yarn", k=3)).ids
    with pytest.raises(InvalidInputError, match="not supported"):
        vs.query(q(emb, "x", mode=VectorStoreQueryMode.SVM))


def test_async_variants(vs, emb):
    async def run():
        res = await vs.aquery(q(emb, "a sleeping kitty", k=2))
        nodes = await vs.aget_nodes(node_ids=["n1"])
        await vs.adelete("doc-c")
        await vs.adelete_nodes(node_ids=["n0"])
        left = await vs.aget_nodes()
        vecs = await emb.aget_text_embedding_batch(["a", "b"])
        qv = await emb.aget_query_embedding("a")
        return res, nodes, left, vecs, qv

    res, nodes, left, vecs, qv = asyncio.run(run())
    assert res.ids[0] == "n0"
    assert nodes[0].node_id == "n1"
    assert {n.node_id for n in left} == {"n1", "n2"}
    assert np.allclose(vecs[0], emb.get_text_embedding("a"), atol=1e-6)
    assert len(qv) == 384


def test_embedding_is_obembeds_model(emb, minilm):
    assert emb.model_name == "st:all-MiniLM-L6-v2"
    assert np.allclose(emb.get_query_embedding("kitten"), minilm.embed_query("kitten"), atol=1e-6)
    assert np.allclose(emb.get_text_embedding_batch(["a cat", "a dog"]), minilm.embed_documents(["a cat", "a dog"]),
                       atol=1e-6)


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_clear_errors_nothing_lost(vs, emb, store, coll_name):
    before = {n.node_id: n.get_content() for n in vs.get_nodes()}
    with pytest.raises(InvalidFilterError, match=r"'colour' is neither a declared column \(declared: year\)"):
        vs.query(q(emb, "x", filters=mf(F(key="colour", value="red"))))
    nodes = make_nodes(emb, [("x1", "d", "one", {}), ("x2", "d", "two", {})])
    nodes[1].embedding = nodes[1].embedding[:100]
    with pytest.raises(DimensionMismatchError, match=r"row 1 \(id 'x2'\): the vector has 100 dimensions"):
        vs.add(nodes)
    dup = make_nodes(emb, [("n0", "d", "changed", {}), ("n0", "d", "twice", {})])
    with pytest.raises(InvalidInputError, match=r"id 'n0' appears twice in one call"):
        vs.add(dup)
    bare = TextNode(id_="x3", text="no vector")
    with pytest.raises(InvalidInputError, match="has no embedding"):
        vs.add([bare])
    with pytest.raises(DimensionMismatchError, match=r"st:all-MiniLM-L6-v2.*MockEmbedding|MockEmbedding.*MiniLM"):
        ObembedVectorStore(MockEmbedding(embed_dim=384), coll_name, store=store)
    assert {n.node_id: n.get_content() for n in vs.get_nodes()} == before


def test_reads_a_collection_obembed_wrote_itself(store, minilm, emb, module_collections):
    """Rows ingested by obembed (no LlamaIndex node inside) come back as text nodes with their source."""
    name = module_collections("li_native")
    coll = store.create_collection(name, minilm, fulltext=True)
    texts = ["Cats purr when content.", "Rain is expected tomorrow."]
    coll.upsert([{"id": f"r{i}", "vector": v, "content": t, "source": "notes.md", "chunk": i,
                  "metadata": {"lang": "en"}} for i, (t, v) in enumerate(zip(texts, minilm.embed_documents(texts),
                                                                                 strict=True))])
    vs = ObembedVectorStore(emb, name, store=store)
    res = vs.query(q(emb, "purring cat", k=1))
    assert res.ids == ["r0"]
    assert res.nodes[0].get_content() == texts[0]
    assert res.nodes[0].ref_doc_id == "notes.md"
    assert res.nodes[0].metadata == {"lang": "en"}


# ------------------------------------------------------------------------------------------------ end to end
def test_index_from_files_then_reopen_after_a_restart(tmp_path, emb):
    """Files -> SimpleDirectoryReader -> SentenceSplitter -> VectorStoreIndex in an embedded store of its own;
    the store is closed (its engine stops), reopened, and VectorStoreIndex.from_vector_store retrieves the same
    nodes, with their relationships, from the store alone."""
    docs_dir = tmp_path / "docs"
    docs_dir.mkdir()
    # distinct sentences: identical chunks would tie, and ties may come back in any order
    (docs_dir / "cats.txt").write_text(" ".join(f"Cat number {i} purrs and sleeps {i + 3} hours a day."
                                                for i in range(12)), encoding="utf-8")
    (docs_dir / "money.txt").write_text(" ".join(f"In quarter {i} interest rates and inflation moved the bond "
                                                 "market." for i in range(12)), encoding="utf-8")
    (docs_dir / "rain.txt").write_text(" ".join(f"Forecast {i}: heavy rain and strong wind for {i + 2} hours "
                                                "tonight." for i in range(12)), encoding="utf-8")
    folder = tmp_path / "kb.db"
    documents = SimpleDirectoryReader(str(docs_dir)).load_data()
    vs = ObembedVectorStore(emb, "notes", target=folder)
    try:
        index = VectorStoreIndex.from_documents(
            documents, storage_context=StorageContext.from_defaults(vector_store=vs), embed_model=emb,
            transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0)])
        first = index.as_retriever(similarity_top_k=2).retrieve("which animal purrs?")
        assert first[0].node.metadata["file_name"] == "cats.txt"
        n_nodes = len(vs.get_nodes())
        assert n_nodes > 3  # split into several chunks
        money_doc = next(d for d in documents if d.metadata["file_name"] == "money.txt")
        index.delete_ref_doc(money_doc.doc_id)
        assert all(n.metadata["file_name"] != "money.txt" for n in vs.get_nodes())
        kept = len(vs.get_nodes())
    finally:
        vs.close()

    again = ObembedVectorStore(emb, "notes", target=folder)
    try:
        index2 = VectorStoreIndex.from_vector_store(again, embed_model=emb)
        hits = index2.as_retriever(similarity_top_k=2).retrieve("which animal purrs?")
        assert [h.node.node_id for h in hits] == [h.node.node_id for h in first]
        assert hits[0].node.get_content() == first[0].node.get_content()
        assert hits[0].node.ref_doc_id == first[0].node.ref_doc_id
        assert hits[0].node.relationships.keys() == first[0].node.relationships.keys()
        assert len(again.get_nodes()) == kept
        hybrid = index2.as_retriever(similarity_top_k=1, vector_store_query_mode="hybrid").retrieve("rain wind")
        assert hybrid[0].node.metadata["file_name"] == "rain.txt"
        flt = index2.as_retriever(similarity_top_k=5, filters=mf(F(key="file_name", value="rain.txt"))).retrieve(
            "which animal purrs?")
        assert flt
        assert all(h.node.metadata["file_name"] == "rain.txt" for h in flt)
    finally:
        again.close()
