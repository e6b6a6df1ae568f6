"""LangChain drop-ins: :class:`ObembedEmbeddings` (any obembed model) and :class:`ObembedVectorStore` (an obembed
collection in embedded seekdb or on a server).

::

    from obembed.integrations.langchain import ObembedEmbeddings, ObembedVectorStore
    emb = ObembedEmbeddings("st:all-MiniLM-L6-v2")
    vs = ObembedVectorStore.from_texts(["a cat", "a dog"], emb, metadatas=[{"kind": "pet"}] * 2, target="./kb.db")
    vs.similarity_search("kitten", k=1, filter={"kind": "pet"})
    vs.as_retriever(search_type="hybrid", search_kwargs={"k": 4})

Needs ``pip install 'obembed[langchain]'``. The behaviour (metadata mapping, filter translation, hybrid, MMR) is
obembed's own (:mod:`obembed.store.documents`); this module only speaks LangChain's types. See docs/frameworks.md.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ..errors import InvalidInputError, MissingDependencyError
from ..providers.base import Provider
from ..store import Store
from ..store.base import Hit
from ..store.documents import DocumentCollection, check_ids
from ._common import model_identity, open_store

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise MissingDependencyError("langchain-core", "langchain", "the LangChain integration") from exc

__all__ = ["ObembedEmbeddings", "ObembedRetriever", "ObembedVectorStore"]

DEFAULT_COLLECTION = "langchain"


class ObembedEmbeddings(Embeddings):
    """A LangChain ``Embeddings`` over any obembed model spec (``st:``, ``hf:``, ``ollama:``, ``openai:`` ...).

    ``model``: a spec such as ``st:BAAI/bge-m3`` (default: ``OBEMBED_MODEL``, else ``st:all-MiniLM-L6-v2``);
    ``options`` go to :func:`obembed.load`; or pass an already loaded ``provider=``. Queries get the model's query
    prompt, documents its document prompt. The async methods run the model in a worker thread, so they never
    block the event loop.
    """

    def __init__(self, model: str | None = None, *, provider: Provider | None = None, **options: Any) -> None:
        if provider is not None:
            if model is not None or options:
                raise InvalidInputError("pass either provider= or a model spec (with options), not both")
            self.provider = provider
        else:
            import obembed

            self.provider = obembed.load(model, **options)
        self.model: str = self.provider.spec

    def __repr__(self) -> str:
        return f"ObembedEmbeddings({self.provider!r})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        out: list[list[float]] = self.provider.embed_documents(texts).tolist()
        return out

    def embed_query(self, text: str) -> list[float]:
        out: list[float] = self.provider.embed_query(text).tolist()
        return out

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)


class ObembedRetriever(VectorStoreRetriever):
    """``VectorStoreRetriever`` that also knows ``search_type="hybrid"`` (vector + full-text, RRF)."""

    allowed_search_types: ClassVar[Sequence[str]] = ("similarity", "similarity_score_threshold", "mmr", "hybrid")

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        if self.search_type == "hybrid":
            store = self.vectorstore
            assert isinstance(store, ObembedVectorStore)
            return store.hybrid_search(query, **(self.search_kwargs | kwargs))
        return super()._get_relevant_documents(query, run_manager=run_manager, **kwargs)

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        if self.search_type == "hybrid":
            store = self.vectorstore
            assert isinstance(store, ObembedVectorStore)
            return await store.ahybrid_search(query, **(self.search_kwargs | kwargs))
        return await super()._aget_relevant_documents(query, run_manager=run_manager, **kwargs)


class ObembedVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over one obembed collection.

    ``embedding``: :class:`ObembedEmbeddings` (its model is recorded with the collection, so ``obembed search``
    and the server can query it) or any LangChain ``Embeddings`` (recorded by class name and dimension).
    ``collection_name``: opened if it exists (refused, naming both models, if another model wrote it), else created
    with ``columns`` (typed metadata fields, e.g. ``{"year": "int"}``), ``fulltext`` (needed for hybrid search;
    ``True`` = ngram parser, good for Chinese/Japanese), ``index`` and ``distance``.
    ``target``: a folder (embedded seekdb) or a DSN (``mysql://user:pass@host:2881/db``); default ``OBEMBED_DSN``
    or ``./obembed.db``. Or pass an open obembed ``store=`` (several vector stores can share it).

    Filters are LangChain-style dicts over metadata fields: ``{"year": {"$gte": 2020}, "$or": [{"lang": "en"},
    {"lang": "de"}]}`` with ``$eq $ne $lt $lte $gt $gte $in $nin $like $ilike $between $exists $contains $any
    $all $is_empty $and $or $not`` (values are bound, never pasted into SQL), or an obembed filter expression string.
    ``similarity_search_with_score`` returns the engine's distance (lower is closer).
    """

    def __init__(
        self,
        embedding: Embeddings,
        collection_name: str = DEFAULT_COLLECTION,
        *,
        target: str | os.PathLike[str] | None = None,
        store: Store | None = None,
        columns: Mapping[str, str] | None = None,
        fulltext: bool | str = True,
        index: str | None = "hnsw",
        distance: str | None = None,
    ) -> None:
        if not isinstance(embedding, Embeddings):
            raise InvalidInputError(f"embedding must be a LangChain Embeddings, not a {type(embedding).__name__}")
        self.embedding = embedding
        self.store, self._owns_store = open_store(target, store)
        try:
            identity = model_identity("langchain", embedding, embedding.embed_query)
            self._provider: Provider | None = identity if isinstance(identity, Provider) else None
            collection = self.store.get_or_create_collection(
                collection_name, identity, columns=columns, fulltext=fulltext, index=index, distance=distance)
        except BaseException:
            self.close()
            raise
        self.collection = collection
        self.documents = DocumentCollection(collection, source_key="source")

    def __repr__(self) -> str:
        return f"ObembedVectorStore({self.collection!r}, {self.store!r})"

    def close(self) -> None:
        """Close the store if this vector store opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> ObembedVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    # ------------------------------------------------------------------------------------------- embedding
    def _embed_texts(self, texts: list[str]) -> Any:
        if self._provider is not None:
            return self._provider.embed_documents(texts)
        return np.asarray(self.embedding.embed_documents(texts), dtype=np.float32)

    def _embed_query(self, text: str) -> Any:
        if self._provider is not None:
            return self._provider.embed_query(text)
        return self.embedding.embed_query(text)

    # ------------------------------------------------------------------------------------------- writing
    def add_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None, *,
                  ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        """Embed and upsert texts (an existing id is replaced); ids are generated (uuid4) where missing."""
        if kwargs:
            raise InvalidInputError(f"add_texts: unknown argument(s) {sorted(kwargs)}")
        texts = list(texts)
        given: list[str | None] = list(ids) if ids is not None else [None] * len(texts)
        if len(given) != len(texts):
            raise InvalidInputError(f"add_texts got {len(given)} ids for {len(texts)} texts; pass one id per text")
        # LangChain passes None for documents without an id: those get a uuid4
        full_ids = check_ids([i if i is not None else str(uuid.uuid4()) for i in given])
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidInputError(f"add_texts got {len(metadatas)} metadatas for {len(texts)} texts")
        if not texts:
            return []
        # check rows before the (costly) embedding: bad metadata must not cost a model call
        self.documents.rows(full_ids, texts, [None] * len(texts), metadatas)
        vectors = self._embed_texts(texts)
        return self.documents.upsert(full_ids, texts, vectors, metadatas)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete by ids (unknown ids are no error); ``ids=None`` deletes every document; ``filter=`` by field."""
        flt = kwargs.pop("filter", None)
        if kwargs:
            raise InvalidInputError(f"delete: unknown argument(s) {sorted(kwargs)}")
        if ids is None and flt is None:
            self.documents.clear()
        else:
            self.documents.delete(ids, flt)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents by id, in the order asked; missing ids are left out."""
        return [self._doc_from_row(r) for r in self.documents.get(list(ids))]

    # ------------------------------------------------------------------------------------------- reading
    def _doc_from_row(self, row: Mapping[str, Any]) -> Document:
        return Document(id=row["id"], page_content=row.get("content") or "", metadata=self.documents.metadata_of(row))

    def _doc(self, hit: Hit) -> Document:
        return Document(id=hit.id, page_content=hit.content or "", metadata=self.documents.metadata_of(hit))

    def similarity_search(self, query: str, k: int = 4, filter: Any = None,
                          **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Any = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """Documents with the engine's distance (lower is closer)."""
        return self.similarity_search_with_score_by_vector(self._embed_query(query), k, filter=filter, **kwargs)

    def similarity_search_with_score_by_vector(self, embedding: Any, k: int = 4, filter: Any = None,
                                               exact: bool | None = None,
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        """``exact``: ``True`` scans every row, ``False`` uses the vector index, ``None`` (default) obembed's
        policy (exact up to 20,000 rows, the index above)."""
        if kwargs:
            raise InvalidInputError(f"similarity search: unknown argument(s) {sorted(kwargs)}")
        hits = self.documents.search(embedding, k, filter, exact=exact)
        return [(self._doc(h), float(h.distance if h.distance is not None else 0.0)) for h in hits]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: Any = None,
                                    **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, filter=filter, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        d = self.collection.distance
        if d == "l2":
            return self._euclidean_relevance_score_fn
        if d == "ip":
            return self._max_inner_product_relevance_score_fn
        return self._cosine_relevance_score_fn

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      filter: Any = None, **kwargs: Any) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(self._embed_query(query), k, fetch_k, lambda_mult,
                                                            filter=filter, **kwargs)

    def max_marginal_relevance_search_by_vector(self, embedding: Any, k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, filter: Any = None,
                                                **kwargs: Any) -> list[Document]:
        if kwargs:
            raise InvalidInputError(f"max_marginal_relevance_search: unknown argument(s) {sorted(kwargs)}")
        return [self._doc(h) for h in self.documents.mmr_search(embedding, k, fetch_k, lambda_mult, filter)]

    def hybrid_search(self, query: str, k: int = 4, filter: Any = None,
                      weights: tuple[float, float] = (1.0, 1.0), **kwargs: Any) -> list[Document]:
        """Vector and full-text search fused by reciprocal rank fusion; ``weights`` = (vector, full-text)."""
        return [d for d, _ in self.hybrid_search_with_score(query, k, filter=filter, weights=weights, **kwargs)]

    def hybrid_search_with_score(self, query: str, k: int = 4, filter: Any = None,
                                 weights: tuple[float, float] = (1.0, 1.0),
                                 **kwargs: Any) -> list[tuple[Document, float]]:
        """Hybrid search with the fused RRF score (higher is better)."""
        if kwargs:
            raise InvalidInputError(f"hybrid_search: unknown argument(s) {sorted(kwargs)}")
        hits = self.documents.hybrid_search(query, self._embed_query(query), k, filter, weights)
        return [(self._doc(h), float(h.score)) for h in hits]

    async def ahybrid_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return await asyncio.to_thread(self.hybrid_search, query, k, **kwargs)

    def search(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        """``search_type``: ``similarity``, ``similarity_score_threshold``, ``mmr`` or ``hybrid``."""
        if search_type == "hybrid":
            return self.hybrid_search(query, **kwargs)
        return super().search(query, search_type, **kwargs)

    async def asearch(self, query: str, search_type: str, **kwargs: Any) -> list[Document]:
        if search_type == "hybrid":
            return await self.ahybrid_search(query, **kwargs)
        return await super().asearch(query, search_type, **kwargs)

    def as_retriever(self, **kwargs: Any) -> ObembedRetriever:
        """A retriever; ``search_type`` one of ``similarity`` (default), ``similarity_score_threshold``, ``mmr``,
        ``hybrid``; ``search_kwargs`` such as ``{"k": 4, "filter": {...}}``."""
        tags = kwargs.pop("tags", None) or [*self._get_retriever_tags()]
        return ObembedRetriever(vectorstore=self, tags=tags, **kwargs)

    # ------------------------------------------------------------------------------------------- async
    # LangChain's defaults run the sync methods in an executor; these are explicit so that every one of them
    # (including the ones LangChain implements in terms of others) takes exactly one worker-thread hop.
    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None, *,
                         ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add_texts, list(texts), metadatas, ids=ids, **kwargs)

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        return await asyncio.to_thread(self.delete, ids, **kwargs)

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return await asyncio.to_thread(self.get_by_ids, ids)

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return await asyncio.to_thread(self.similarity_search, query, k, **kwargs)

    async def asimilarity_search_with_score(self, *args: Any, **kwargs: Any) -> list[tuple[Document, float]]:
        return await asyncio.to_thread(self.similarity_search_with_score, *args, **kwargs)

    async def asimilarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                           **kwargs: Any) -> list[Document]:
        return await asyncio.to_thread(self.similarity_search_by_vector, embedding, k, **kwargs)

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                             lambda_mult: float = 0.5, **kwargs: Any) -> list[Document]:
        return await asyncio.to_thread(self.max_marginal_relevance_search, query, k, fetch_k, lambda_mult, **kwargs)

    # ------------------------------------------------------------------------------------------- constructors
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict[str, Any]] | None = None, *,
                   ids: list[str] | None = None, **kwargs: Any) -> ObembedVectorStore:
        """Open (or create) ``collection_name`` (default ``langchain``) and add ``texts``; other ``kwargs`` as for
        the constructor (``target=``, ``store=``, ``columns=`` ...)."""
        vs = cls(embedding, **kwargs)
        try:
            vs.add_texts(texts, metadatas, ids=ids)
        except BaseException:
            vs.close()
            raise
        return vs

    @classmethod
    async def afrom_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict[str, Any]] | None = None,
                          *, ids: list[str] | None = None, **kwargs: Any) -> ObembedVectorStore:
        return await asyncio.to_thread(lambda: cls.from_texts(texts, embedding, metadatas, ids=ids, **kwargs))
