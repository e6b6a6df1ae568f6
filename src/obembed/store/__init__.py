"""The vector store: collections (one OceanBase/seekdb table each) of vectors beside scalar data.

::

    from obembed.store import connect
    with connect(path="./obembed.db") as store:        # embedded seekdb; or connect("mysql://...")
        coll = store.create_collection("docs", 384, columns={"lang": "varchar(8)"}, fulltext=True)
        coll.upsert([{"id": "a", "vector": v, "content": "...", "lang": "en"}])
        coll.search(v, k=5, where={"lang": "en"})
"""

from __future__ import annotations

from .base import Hit
from .filters import compile_where
from .seekdb import Collection, Store, connect, parse_dsn

__all__ = ["Collection", "Hit", "Store", "compile_where", "connect", "parse_dsn"]
