"""The vector store: collections (one OceanBase/seekdb table each) of vectors beside scalar data.

::

    from obembed.store import connect
    with connect("./kb") as store:                     # embedded seekdb in a folder; or connect("mysql://...")
        coll = store.create_collection("docs", 384, columns={"lang": "varchar(8)"}, fulltext=True)
        coll.upsert([{"id": "a", "vector": v, "content": "...", "lang": "en"}])
        coll.search(v, k=5, where={"lang": "en"})

Modules: ``seekdb`` (Store, connect), ``collection`` (reads, writes, search), ``search`` (the exact-or-index
policy, RRF fusion), ``session`` (connection, error mapping), ``engine`` (embedded seekdb), ``dsn``, ``rows``
(value encoding), ``schema`` (DDL), ``filters`` (where=), ``base`` (Hit and the typed contracts).
"""

from __future__ import annotations

from .base import Hit, ProviderFactory, QueryModel, VectorCollection, VectorStore
from .collection import Collection
from .dsn import parse_dsn, redact_dsn
from .filters import compile_where
from .search import EXACT_MAX_ROWS, rrf_fuse, use_exact
from .seekdb import Store, connect

__all__ = [
    "EXACT_MAX_ROWS",
    "Collection",
    "Hit",
    "ProviderFactory",
    "QueryModel",
    "Store",
    "VectorCollection",
    "VectorStore",
    "compile_where",
    "connect",
    "parse_dsn",
    "redact_dsn",
    "rrf_fuse",
    "use_exact",
]
