"""Searching an ingested collection: what ``obembed search`` runs (vector, filtered, hybrid)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInputError

__all__ = ["EXACT_MAX_ROWS", "search"]

EXACT_MAX_ROWS = 20_000
"""Up to this many rows, ``search`` scans exactly by default (SEEKDB.md: ~220 ms per query at 100k × 384,
so a few ms here); above it, the HNSW index answers."""

log = logging.getLogger(__name__)


def search(
    store: Any,
    collection: str,
    query: str,
    *,
    k: int = 10,
    where: str | Mapping[str, Any] | None = None,
    hybrid: bool = False,
    provider: Any = None,
    exact: bool | None = None,
    ef_search: int | None = None,
) -> list[Any]:
    """The ``k`` best chunks of ``collection`` for a text ``query``.

    ``where``: a filter, as a dict (``{"lang": "ja"}``) or a validated expression string
    (``"lang = 'ja' AND year >= 2020"``; compiled to bound parameters by the store, never pasted into SQL).
    ``hybrid``: fuse full-text and vector results (reciprocal rank fusion); needs a FULLTEXT index
    (``obembed ingest`` creates one by default). ``provider``: the model for the query; by default the one
    recorded with the collection (rebuilt by the store's provider factory). ``exact``: ``True`` scans every
    row (exact), ``False`` uses the vector index, ``None`` (default) scans collections of at most
    :data:`EXACT_MAX_ROWS` rows (a few milliseconds there, and exact: HNSW loses recall on crowded vectors,
    e.g. MiniLM on Japanese text) and uses the index above. ``ef_search``: the HNSW search breadth.
    """
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("the search query is empty; pass a non-empty text")
    coll = store.collection(collection, provider=provider)
    if isinstance(where, str) and not where.strip():
        where = None
    if hybrid:
        return list(coll.hybrid_search(query, k=k, where=where))
    if exact is None:
        exact = ef_search is None and coll.count() <= EXACT_MAX_ROWS
    return list(coll.search(query, k=k, where=where, exact=exact, ef_search=ef_search))
