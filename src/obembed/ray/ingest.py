"""``ingest(paths, collection, dsn=..., address=...)``: ``obembed ingest`` with the embedding on a Ray cluster.

::

    driver: walk/load/chunk/hash (the local pipeline's own producer) ─► changed chunks ─► Ray Dataset
    cluster:                                     embed actors (model once per actor) ─► CollectionSink
    driver: stale rows of changed files deleted, --prune, the vector index of a new collection

The driver runs the local ingest's producer unchanged, so ids, content hashes, chunking, the incremental
rule (a chunk whose id holds the same hash is not embedded) and failure handling are the local pipeline's;
only the chunks to embed travel to the cluster. The report is the local :class:`IngestReport`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, InvalidInputError
from ..ingest.embedder import EmbedTask
from ..ingest.loaders import Failure, LoadOptions
from ..ingest.model_choice import CorpusSample, choose_ingest_model, choose_ingest_parser
from ..ingest.pipeline import _STOP, Ingestor, IngestReport, Policy, _Aborted, _FileDone, open_collection
from ._db import DEFAULT_RETRY_S, connected, dsn_or_settings
from .embed import DEFAULT_BLOCK_ROWS, embed, load_bulk_provider
from .sink import write_collection

__all__ = ["RayIngestor", "ingest"]

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 100_000
"""Chunks per Ray job: what the driver holds at once. Each job starts the actor pool (a model load per actor)."""


class RayIngestor(Ingestor):
    """One ingest run whose embedding and writing run as a Ray Data job (see :func:`ingest`)."""

    def __init__(self, coll: Any, provider: Any, *, dsn: str, model: str | None = None,
                 model_options: Mapping[str, Any] | None = None, database: str | None = None,
                 concurrency: int | tuple[int, int] | None = None, num_cpus: float | None = None,
                 num_gpus: float | None = None, write_concurrency: int | None = None,
                 retry_s: float = DEFAULT_RETRY_S, block_delay_s: float = 0.0, address: str | None = None,
                 window: int = DEFAULT_WINDOW, index: str = "hnsw", **kwargs: Any) -> None:
        super().__init__(coll, provider, **kwargs)
        self.dsn = dsn
        self.model = model or getattr(provider, "spec", None)
        self.model_options = dict(model_options or {})
        self.database = database
        self.concurrency = concurrency
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.write_concurrency = write_concurrency
        self.retry_s = retry_s
        self.block_delay_s = block_delay_s
        self.address = address
        if window < 1:
            raise ConfigError(f"window={window} must be ≥ 1")
        self.window = window
        self.index = index
        self.index_seconds = 0.0

    def run(self, paths: Sequence[str | os.PathLike[str]]) -> IngestReport:
        t0 = time.perf_counter()
        self.roots = [os.path.abspath(os.fspath(p)) for p in paths]
        self.existing = self.coll.hashes()
        self.existing_sources = self.coll.sources()
        self.seen_sources = set()
        self.root_files = {}
        self.walk_failed = set()
        # the local producer, unchanged, in its thread; what it queues is what this run embeds, ``window``
        # chunks per Ray job (the driver holds one window of texts, not the corpus)
        self.q1 = queue.Queue(maxsize=self.window)
        producer = threading.Thread(target=self._guard, args=(self._producer,), name="ingest-producer", daemon=True)
        producer.start()
        done: list[_FileDone] = []
        started = False
        try:
            finished = False
            while not finished:
                tasks: list[EmbedTask] = []
                while len(tasks) < self.window:
                    item = self._get(self.q1)
                    if item is _STOP:
                        finished = True
                        break
                    if isinstance(item, _FileDone):
                        done.append(item)
                    elif isinstance(item, EmbedTask) and item.image:
                        self.report.chunks_failed += 1
                        self._fail(Failure(item.source, "image: --engine ray embeds texts; ingest images with the "
                                                        "local engine (obembed ingest without --engine ray)"))
                    elif isinstance(item, EmbedTask):
                        tasks.append(item)
                if tasks:  # nothing changed: no cluster needed at all
                    if not started:
                        started = ensure_ray(self.address)
                        if self.concurrency is None:
                            self.concurrency = default_actors(self.num_cpus, self.num_gpus)
                    self._embed_and_write(tasks)
        except _Aborted:
            pass
        except BaseException:
            self.abort.set()
            raise
        finally:
            producer.join()
            if started:
                import ray

                ray.shutdown()
        if self.errors:
            raise self.errors[0]
        if not self.coll.has_index:  # load first, then the index once (a new collection, or a stopped run)
            t1 = time.perf_counter()
            self.coll.create_index(self.index)
            self.index_seconds = time.perf_counter() - t1
        self._build_pending_fulltext()  # likewise the FULLTEXT index of a new collection
        # stale rows of changed files, then --prune: the local writer's own code, after every row is written
        self.q2 = queue.Queue()
        for d in done:
            self.q2.put(d)
        self.q2.put(_STOP)
        self._writer()
        self.report.seconds = time.perf_counter() - t0
        return self.report

    def _embed_and_write(self, tasks: list[EmbedTask]) -> None:
        import ray.data

        ctx = ray.data.DataContext.get_current()  # obembed reports progress itself (the report, --progress)
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        rows = []
        for t in tasks:
            row: dict[str, Any] = {"id": t.id, "content": t.text, "source": t.source, "chunk": t.index,
                                   "content_hash": t.hash,
                                   "metadata": json.dumps(t.metadata, ensure_ascii=False, default=str)}
            for c in self.coll.columns:
                row[c] = t.columns.get(c)
            rows.append(row)
        blocks = max(1, math.ceil(len(rows) / self.batch_size))
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        ds = embed(ds, model=self.model, text_column="content", options=self.model_options,
                   concurrency=self.concurrency, num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                   batch_size=self.batch_size, on_error="report", block_delay_s=self.block_delay_s)
        t0 = time.perf_counter()
        stats = write_collection(ds, self.coll.name, dsn=self.dsn, model=self.provider, index=None,
                                 error_column="embedding_error", truncated_column="embedding_truncated",
                                 database=self.database, retry_s=self.retry_s, concurrency=self.write_concurrency,
                                 rows_per_write=self.batch_size)
        self.report.embed_seconds += time.perf_counter() - t0
        self.report.write_seconds += stats.write_seconds
        self.report.chunks_embedded += stats.rows_written
        self.report.chunks_truncated += stats.rows_truncated
        self.progress("embedded", stats.rows_written)
        for f in sorted(stats.failures, key=lambda f: (str(f.get("source")), f.get("chunk") or 0)):
            self.report.chunks_failed += 1
            self._fail(Failure(str(f.get("source")), f"chunk {f.get('chunk')}: {f['reason']}"))


LOCAL_RAY_ENV = {"RAY_worker_niceness": "0"}
"""Environment of a local Ray that obembed starts (a variable the user set wins). Ray runs its workers at nice 15,
which on one machine puts every write task behind the database engine (nice 0) whenever the engine is busy:
measured on 2 cores, the sink wrote at 0.82x the store's own upsert with workers at 15, and at 0.96x, 0.79x and
0.95x in three runs at 0 (benchmarks/RESULTS.md, "Quiet reruns 2"). On a cluster the workers share their
machines with nothing that matters; there the cluster's own setting applies."""


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None, **init_kwargs: Any) -> bool:
    """Connect to the Ray cluster at ``address`` (``ray://host:10001``, ``auto``), or start a local one (workers
    at normal priority: :data:`LOCAL_RAY_ENV`); an already initialised Ray is used as it is. Returns True when
    this call started or connected it (then the caller shuts it down). ``init_kwargs`` go to ``ray.init``."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, **init_kwargs}
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    if address is not None:
        ray.init(address=address, **kwargs)
        return True
    # the raylet (and so every worker) takes this process's environment when it starts
    saved = {k: os.environ.get(k) for k in LOCAL_RAY_ENV}
    for k, v in LOCAL_RAY_ENV.items():
        os.environ.setdefault(k, v)
    try:
        ray.init(**kwargs)
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
    return True


def ingest(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    collection: str,
    *,
    dsn: str | None = None,
    address: str | None = None,
    model: str | None = None,
    model_options: Mapping[str, Any] | None = None,
    provider: Any = None,
    columns: Mapping[str, str] | None = None,
    text_field: str = "text",
    id_field: str | None = "id",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    truncate: Policy = "chunk",
    chunk_tokens: int | None = None,
    overlap: int = 32,
    prune: bool = False,
    batch_size: int = DEFAULT_BLOCK_ROWS,
    max_file_bytes: int = 20 * 1024 * 1024,
    fulltext: bool | str = "auto",
    database: str | None = None,
    concurrency: int | tuple[int, int] | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    retry_s: float = DEFAULT_RETRY_S,
    progress: Any = None,
    window: int = DEFAULT_WINDOW,
    block_delay_s: float = 0.0,
    auto_model: bool = True,
) -> IngestReport:
    """Ingest files and folders into ``collection`` of the database at ``dsn``, embedding on Ray.

    The same ids, content hashes, chunking, incremental rule and report as :func:`obembed.ingest.ingest`
    (a rerun embeds only what changed). ``address``: the Ray cluster (``ray://head:10001``, ``auto``;
    default: the running one, else a local one started for this call and stopped after it). Files are
    read on the driver. ``model``: chosen as ``obembed ingest`` does (one function,
    :func:`obembed.ingest.model_choice.choose_ingest_model`): the one given, else an existing collection's
    own (another model is refused, naming both), else the default, or the offline multilingual model for a
    Chinese/Japanese/Korean corpus (``auto_model=False``: refused, the choice explained). ``concurrency``
    embedding actors (default: one per free CPU, or per GPU with ``num_gpus``) each load ``model`` once.
    ``batch_size`` texts per actor call, sorted by token count.
    ``window``: chunks per Ray job (the driver holds one window's texts). A collection without a vector index
    (a new one) gets its HNSW index once, after the load. ``fulltext``: as in :func:`obembed.ingest.ingest`
    (``"auto"``: the parser from a sample of the files).
    """
    import obembed

    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if not paths:
        raise InvalidInputError("ingest needs at least one path (a file or a folder)")
    dsn = dsn_or_settings(dsn)
    with connected(dsn, database) as store:
        sample = CorpusSample(paths, LoadOptions(text_field=text_field, id_field=id_field, include=tuple(include),
                                                 exclude=tuple(exclude)))
        fulltext, parser = choose_ingest_parser(store, collection, sample, fulltext)
        if parser is not None and parser.warning:
            log.warning("%s", parser.warning)
        if provider is None:
            # the local ingest's rule (one function): --model, else the collection's own model and options,
            # else the default unless the corpus is Chinese/Japanese/Korean
            choice = choose_ingest_model(store, collection, sample, model, default=obembed.get_settings().model,
                                         auto=auto_model)
            for line in (choice.reason, choice.warning):
                if line:
                    log.warning("%s", line)
            model = choice.spec
            model_options = {**choice.options, **dict(model_options or {})}
            provider = load_bulk_provider(model, model_options)
        spec = model or getattr(provider, "requested_spec", None) or provider.spec
        # an existing collection: its model checked (another model is refused, naming both); a new one is created
        # as the sink would: no vector index yet, built after the load
        if store.has_collection(collection):
            coll = open_collection(store, collection, provider, columns=columns, fulltext=fulltext)
        else:
            coll = store.create_collection(collection, provider, columns=dict(columns or {}) or None,
                                           fulltext=fulltext, index=None, exists_ok=True, defer_fulltext=True)
        opts = LoadOptions(text_field=text_field, id_field=id_field, columns=dict(coll.columns),
                           include=tuple(include), exclude=tuple(exclude), max_file_bytes=max_file_bytes)
        run = RayIngestor(coll, provider, dsn=dsn, address=address, model=spec, model_options=model_options,
                          database=database, concurrency=concurrency, num_cpus=num_cpus, num_gpus=num_gpus,
                          retry_s=retry_s, block_delay_s=block_delay_s, window=window, options=opts,
                          policy=truncate, chunk_tokens=chunk_tokens, overlap=overlap, batch_size=batch_size,
                          prune=prune, progress=progress)
        return run.run(list(paths))


def default_actors(num_cpus: float | None, num_gpus: float | None) -> int:
    """Embedding actors that fit the cluster: one per GPU share with ``num_gpus``; else one per ``num_cpus``
    (default 1) CPUs, leaving one CPU for the write tasks and the driver."""
    import ray

    res = ray.cluster_resources()
    if num_gpus:
        return max(1, int(res.get("GPU", 0) / num_gpus))
    cpus = float(res.get("CPU", 1))
    return max(1, int((cpus - 1) / (num_cpus or 1)))
