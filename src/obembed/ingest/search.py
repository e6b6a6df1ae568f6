"""Searching an ingested collection: what ``obembed search`` runs (vector, filtered, hybrid)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError
from ..store.base import Hit, QueryModel, RerankModel, VectorStore
from ..store.search import EXACT_MAX_ROWS

__all__ = ["EXACT_MAX_ROWS", "search"]

log = logging.getLogger(__name__)


def search(
    store: VectorStore,
    collection: str,
    query: str,
    *,
    k: int = 10,
    where: str | Mapping[str, Any] | None = None,
    hybrid: bool = False,
    provider: QueryModel | None = None,
    exact: bool | None = None,
    ef_search: int | None = None,
    rerank: str | RerankModel | None = None,
    candidates: int | None = None,
    mode: str | None = None,
    weights: Mapping[str, float] | None = None,
) -> list[Hit]:
    """The ``k`` best chunks of ``collection`` for a text ``query``.

    ``where``: a filter, as a dict (``{"lang": "ja"}``) or a validated expression string
    (``"lang = 'ja' AND year >= 2020"``; compiled to bound parameters by the store, never pasted into SQL).
    ``hybrid``: fuse full-text and vector results (reciprocal rank fusion); needs a FULLTEXT index
    (``obembed ingest`` creates one by default). ``provider``: the model for the query; by default the one
    recorded with the collection (rebuilt by the store's provider factory). ``exact``: ``True`` scans every
    row (exact), ``False`` uses the vector index, ``None`` (default): the store's policy
    (:meth:`obembed.store.Collection.search`: exact up to :data:`EXACT_MAX_ROWS` rows, the index above).
    ``ef_search``: the HNSW search breadth. ``rerank``: a reranker spec (``cross-encoder:...``,
    ``dashscope-rerank:gte-rerank-v2`` ...) or object: the first stage returns ``candidates`` rows (default
    ``max(4k, 40)``) and the reranker orders them; hits carry ``rerank_score`` beside ``score``.
    ``mode``: ``"dense"`` (default), ``"sparse"`` (the sparse column: the query through the model's sparse
    output), ``"fulltext"`` or ``"hybrid"`` (RRF over every leg the collection has, or those in ``weights``,
    e.g. ``{"dense": 1, "sparse": 1, "fulltext": 0.5}``); ``hybrid=True`` is the dense + full-text hybrid of
    :meth:`~obembed.store.Collection.hybrid_search`.
    """
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("the search query is empty; pass a non-empty text")
    coll = store.collection(collection, provider=provider)
    if isinstance(where, str) and not where.strip():
        where = None
    if hybrid and mode not in (None, "hybrid"):
        raise InvalidInputError(f"hybrid=True and mode={mode!r} disagree; pass one of them")
    if weights is not None and mode != "hybrid":
        raise InvalidInputError("weights= weigh the legs of mode='hybrid'; pass mode='hybrid' too")
    if mode is not None and mode != "dense":
        modes: Any = coll  # Collection.search's mode/weights (the VectorCollection protocol names dense search only)
        return list(modes.search(query, k=k, where=where, exact=exact, mode=mode, weights=weights, rerank=rerank,
                                 candidates=candidates))
    if hybrid:
        return list(coll.hybrid_search(query, k=k, where=where, exact=exact, rerank=rerank, candidates=candidates))
    return list(coll.search(query, k=k, where=where, exact=exact, ef_search=ef_search, rerank=rerank,
                            candidates=candidates))
