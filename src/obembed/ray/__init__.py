"""Scale out on Ray: embed a corpus with an actor pool and write it into OceanBase / seekdb exactly once.

::

    import ray
    import obembed.ray as obray

    ds = ray.data.read_parquet("s3://bucket/chunks/")                 # columns: id, text, ...
    ds = obray.embed(ds, model="st:all-MiniLM-L6-v2", concurrency=4)   # adds "embedding"
    obray.write_collection(ds, "docs", dsn="mysql://root@db:2881/kb", content_column="text")

    report = obray.ingest(["docs/"], "docs", dsn="mysql://root@db:2881/kb")   # = obembed ingest --engine ray

Needs the ``ray`` extra (``pip install 'obembed[ray]'``) and a seekdb server or OceanBase (a DSN): an
embedded seekdb folder belongs to one process. See ``docs/scale-out.md``.
"""

from __future__ import annotations

from ..errors import MissingDependencyError

__all__ = ["CollectionSink", "WriteStats", "embed", "ingest", "need_dsn_message", "write_collection"]


def _require_ray() -> None:
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("ray[data]", "ray", "obembed.ray") from exc


_require_ray()

from .embed import embed  # noqa: E402
from .ingest import ingest  # noqa: E402
from .sink import CollectionSink, WriteStats, need_dsn_message, write_collection  # noqa: E402

