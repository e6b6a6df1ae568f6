"""LlamaIndex drop-ins: :class:`ObembedEmbedding` (any obembed model) and :class:`ObembedVectorStore` (an obembed
collection in embedded seekdb or on a server).

::

    from llama_index.core import StorageContext, VectorStoreIndex
    from obembed.integrations.llama_index import ObembedEmbedding, ObembedVectorStore
    emb = ObembedEmbedding("st:all-MiniLM-L6-v2")
    vs = ObembedVectorStore(emb, "notes", target="./kb.db")
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=vs),
                                            embed_model=emb)
    # later, in another process:
    index = VectorStoreIndex.from_vector_store(ObembedVectorStore(emb, "notes", target="./kb.db"), embed_model=emb)

Needs ``pip install 'obembed[llamaindex]'``. Nodes are stored whole (text in ``content``, the node with its
relationships in the JSON metadata, ``ref_doc_id`` in obembed's ``source`` column), so an index reopens from the
store alone. Behaviour (metadata mapping, filters, hybrid, MMR) is obembed's (:mod:`obembed.store.documents`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidFilterError, InvalidInputError, MissingDependencyError
from ..providers.base import Provider
from ..store import Store
from ..store.base import Hit
from ..store.documents import DocumentCollection
from ..store.filters import escape_like
from ._common import model_identity, open_store

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode, NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise MissingDependencyError("llama-index-core", "llamaindex", "the LlamaIndex integration") from exc

__all__ = ["ObembedEmbedding", "ObembedVectorStore", "metadata_filters_to_dict"]

DEFAULT_COLLECTION = "llama_index"
SUPPORTED_MODES = (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.TEXT_SEARCH,
                   VectorStoreQueryMode.MMR)


class ObembedEmbedding(BaseEmbedding):
    """A LlamaIndex ``BaseEmbedding`` over any obembed model spec (``st:``, ``hf:``, ``ollama:``, ``openai:`` ...).

    ``model_name``: a spec such as ``st:BAAI/bge-m3`` (default ``OBEMBED_MODEL``, else ``st:all-MiniLM-L6-v2``);
    ``options`` go to :func:`obembed.load`; or pass a loaded ``provider=``. Queries get the model's query prompt,
    texts its document prompt; the async methods run the model in a worker thread.
    """

    _provider: Provider = PrivateAttr()

    def __init__(self, model_name: str | None = None, *, provider: Provider | None = None,
                 embed_batch_size: int | None = None, **options: Any) -> None:
        if provider is None:
            import obembed

            provider = obembed.load(model_name, **options)
        elif model_name is not None or options:
            raise InvalidInputError("pass either provider= or a model spec (with options), not both")
        # the provider batches by its own limits: hand it large batches
        super().__init__(model_name=provider.spec,
                         embed_batch_size=embed_batch_size or max(1, min(2048, int(provider.batch_size))))
        self._provider = provider

    @classmethod
    def class_name(cls) -> str:
        return "ObembedEmbedding"

    @property
    def provider(self) -> Provider:
        return self._provider

    def _get_query_embedding(self, query: str) -> list[float]:
        out: list[float] = self._provider.embed_query(query).tolist()
        return out

    def _get_text_embedding(self, text: str) -> list[float]:
        out: list[float] = self._provider.embed_documents([text])[0].tolist()
        return out

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        out: list[list[float]] = self._provider.embed_documents(texts).tolist()
        return out

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


# -------------------------------------------------------------------------------------------------- filters
def _one_filter(f: MetadataFilter) -> dict[str, Any]:
    op = FilterOperator(f.operator)
    key, v = f.key, f.value
    simple = {FilterOperator.EQ: "$eq", FilterOperator.GT: "$gt", FilterOperator.LT: "$lt",
              FilterOperator.GTE: "$gte", FilterOperator.LTE: "$lte", FilterOperator.IN: "$in",
              FilterOperator.ANY: "$any", FilterOperator.ALL: "$all", FilterOperator.CONTAINS: "$contains"}
    if op in simple:
        return {key: {simple[op]: v}}
    if op in (FilterOperator.NE, FilterOperator.NIN):  # LlamaIndex: a missing field is "not equal" too
        return {"$or": [{key: {"$ne" if op == FilterOperator.NE else "$nin": v}}, {key: {"$exists": False}}]}
    if op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        if not isinstance(v, str):
            raise InvalidFilterError(f"filter on {key!r}: {op.value} needs a string, got {v!r}")
        return {key: {"$like" if op == FilterOperator.TEXT_MATCH else "$ilike": f"%{escape_like(v)}%"}}
    if op == FilterOperator.IS_EMPTY:
        return {key: {"$is_empty": True}}
    raise InvalidFilterError(f"filter on {key!r}: operator {op.value!r} is not supported")  # pragma: no cover


def metadata_filters_to_dict(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """LlamaIndex ``MetadataFilters`` (any operator, AND/OR/NOT, nested) as obembed's field-filter dict."""
    if filters is None:
        return None
    parts: list[dict[str, Any]] = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            sub = metadata_filters_to_dict(f)
            if sub:
                parts.append(sub)
        elif isinstance(f, MetadataFilter):
            parts.append(_one_filter(f))
        else:  # pragma: no cover - pydantic validates the list
            raise InvalidFilterError(f"not a filter: {f!r}")
    if not parts:
        return None
    cond = FilterCondition(filters.condition or FilterCondition.AND)
    if cond == FilterCondition.AND:
        return {"$and": parts}
    if cond == FilterCondition.OR:
        return {"$or": parts}
    return {"$not": {"$or": parts}}  # NOT: none of the filters matches (LlamaIndex's reading)


# -------------------------------------------------------------------------------------------------- store
class ObembedVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over one obembed collection.

    ``embed_model``: :class:`ObembedEmbedding` (its model is recorded with the collection), an obembed spec string,
    or any LlamaIndex ``BaseEmbedding`` (recorded by class and model name). ``collection_name`` is opened if it
    exists (refused, naming both models, if another model wrote it), else created with ``columns`` (typed metadata
    fields), ``fulltext`` (for hybrid and text search), ``index`` and ``distance``. ``target``: a folder or a DSN
    (default ``OBEMBED_DSN`` or ``./obembed.db``), or pass an open obembed ``store=``.

    Query modes: ``default`` (vector), ``hybrid`` (vector + full-text by RRF; ``alpha`` weighs the vector side),
    ``text_search`` (full-text only), ``mmr``. Filters: every ``FilterOperator`` with AND/OR/NOT, nested.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    collection_name: str = DEFAULT_COLLECTION

    _store: Store = PrivateAttr()
    _owns_store: bool = PrivateAttr(default=False)
    _docs: DocumentCollection = PrivateAttr()
    _embed_model: BaseEmbedding = PrivateAttr()

    def __init__(
        self,
        embed_model: BaseEmbedding | str,
        collection_name: str = DEFAULT_COLLECTION,
        *,
        target: str | os.PathLike[str] | None = None,
        store: Store | None = None,
        columns: Mapping[str, str] | None = None,
        fulltext: bool | str = True,
        index: str | None = "hnsw",
        distance: str | None = None,
    ) -> None:
        super().__init__(stores_text=True, collection_name=collection_name)
        model = ObembedEmbedding(embed_model) if isinstance(embed_model, str) else embed_model
        if not isinstance(model, BaseEmbedding):
            raise InvalidInputError(f"embed_model must be a LlamaIndex BaseEmbedding or an obembed model spec, not "
                                    f"a {type(embed_model).__name__}")
        self._embed_model = model
        self._store, self._owns_store = open_store(target, store)
        try:
            identity = model_identity("llama_index", model, model.get_query_embedding)
            coll = self._store.get_or_create_collection(collection_name, identity, columns=columns,
                                                        fulltext=fulltext, index=index, distance=distance)
        except BaseException:
            self.close()
            raise
        # LlamaIndex's own keys (ref_doc_id ...) live in the JSON; ref_doc_id also in the source column
        self._docs = DocumentCollection(coll, source_key=None)

    @classmethod
    def class_name(cls) -> str:
        return "ObembedVectorStore"

    @property
    def client(self) -> Store:
        """The obembed store."""
        return self._store

    @property
    def collection(self) -> Any:
        """The obembed collection."""
        return self._docs.collection

    def close(self) -> None:
        """Close the store if this vector store opened it."""
        if self._owns_store:
            self._store.close()

    # ------------------------------------------------------------------------------------------- writing
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Upsert nodes (with their embeddings) by node id; every node is checked before anything is written."""
        if not nodes:
            return []
        vectors = []
        for i, n in enumerate(nodes):
            if n.embedding is None:
                raise InvalidInputError(f"node {i} (id {n.node_id!r}) has no embedding; embed it first "
                                        "(VectorStoreIndex does, with its embed_model)", index=i)
            vectors.append(n.embedding)
        return self._docs.upsert(
            [n.node_id for n in nodes],
            [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes],
            vectors,
            [node_to_metadata_dict(n, remove_text=True, flat_metadata=self.flat_metadata) for n in nodes],
            sources=[n.ref_doc_id for n in nodes],
        )

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of a source document."""
        self._docs.delete(sources=[ref_doc_id])

    def delete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                     **delete_kwargs: Any) -> None:
        """Delete nodes by id and/or filters (both: the nodes matching both)."""
        flt = metadata_filters_to_dict(filters)
        if node_ids is None and flt is None:
            raise InvalidInputError("delete_nodes needs node_ids or filters; clear() deletes every node")
        self._docs.delete(node_ids, flt)

    def clear(self) -> None:
        """Delete every node (the collection and its model stay)."""
        self._docs.clear()

    # ------------------------------------------------------------------------------------------- reading
    def _node(self, hit: Hit | Mapping[str, Any]) -> BaseNode:
        md = self._docs.metadata_of(hit)
        content = hit.content if isinstance(hit, Hit) else hit.get("content")
        if "_node_content" in md:
            return metadata_dict_to_node(md, text=content or "")
        # a row written by obembed itself (`obembed ingest`): a plain text node, its source as the document
        node_id = hit.id if isinstance(hit, Hit) else hit["id"]
        source = hit.source if isinstance(hit, Hit) else hit.get("source")
        node = TextNode(id_=node_id, text=content or "", metadata=md)
        if source:
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=source)
        return node

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """Nodes by id (in the order asked) and/or matching filters; neither: every node."""
        flt = metadata_filters_to_dict(filters)
        if node_ids is not None and flt is None:
            return [self._node(r) for r in self._docs.get(node_ids)]
        rows = [r for batch in self._docs.iter_rows(flt, ids=node_ids) for r in batch]
        if node_ids is not None:
            order = {n: i for i, n in enumerate(node_ids)}
            rows.sort(key=lambda r: order.get(r["id"], len(order)))
        return [self._node(r) for r in rows]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Run a query: ``similarity_top_k`` nodes by mode (default, hybrid, text_search, mmr), filtered by
        ``filters``, ``doc_ids`` (ref_doc_ids) and ``node_ids``."""
        mode = VectorStoreQueryMode(query.mode)
        if mode not in SUPPORTED_MODES:
            raise InvalidInputError(f"query mode {mode.value!r} is not supported; use one of "
                                    f"{[m.value for m in SUPPORTED_MODES]}")
        k = int(query.similarity_top_k)
        flt = metadata_filters_to_dict(query.filters)
        # an empty list means "no restriction": VectorStoreIndex passes node_ids=[] when the store keeps the nodes
        restrict: dict[str, Any] = {"ids": query.node_ids or None, "sources": query.doc_ids or None}
        if mode == VectorStoreQueryMode.TEXT_SEARCH:
            hits = self._docs.text_search(self._text(query, mode), k, flt, **restrict)
        else:
            if query.query_embedding is None:
                raise InvalidInputError(f"a {mode.value} query needs query_embedding (the retriever embeds the "
                                        "query with its embed_model)")
            if mode == VectorStoreQueryMode.HYBRID:
                alpha = 0.5 if query.alpha is None else float(query.alpha)
                weights = (2 * alpha, 2 * (1 - alpha))  # alpha 1: vector only, 0: full-text only, 0.5: even
                hits = self._docs.hybrid_search(self._text(query, mode), query.query_embedding,
                                                int(query.hybrid_top_k or k), flt, weights, **restrict)
            elif mode == VectorStoreQueryMode.MMR:
                lam = 0.5 if query.mmr_threshold is None else float(query.mmr_threshold)
                fetch_k = int(kwargs.get("mmr_prefetch_k") or max(20, 4 * k))
                hits = self._docs.mmr_search(query.query_embedding, k, fetch_k, lam, flt, **restrict)
            else:
                hits = self._docs.search(query.query_embedding, k, flt, **restrict)
        return VectorStoreQueryResult(nodes=[self._node(h) for h in hits], similarities=[float(h.score) for h in hits],
                                      ids=[h.id for h in hits])

    @staticmethod
    def _text(query: VectorStoreQuery, mode: VectorStoreQueryMode) -> str:
        if not query.query_str or not query.query_str.strip():
            raise InvalidInputError(f"a {mode.value} query needs query_str (the words to match)")
        return query.query_str

    # ------------------------------------------------------------------------------------------- async
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
                            **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aget_nodes(self, node_ids: list[str] | None = None,
                         filters: MetadataFilters | None = None) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)
