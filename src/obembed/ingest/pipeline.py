"""The ingest pipeline: producer (walk, load, chunk, hash) → embedder → writer, with bounded queues.

::

    walk/load/chunk ──q1 (bounded)──► embed (large batches) ──q2 (bounded)──► upsert / delete stale rows
       thread "producer"                 thread "embedder"                      thread "writer"

* The embedder takes batches of ``batch_size`` chunks, orders each batch's texts by length and embeds it in
  slices of ``write_every``: the writer stores one slice while the model embeds the next, and the rows left
  to store when the model is done are one slice of the shortest texts, not a whole batch.
* Idempotent by construction: a chunk's id is ``sha256(source, record key, chunk index)`` and its
  content hash covers the text, metadata and column values. At the start the collection's ``{id: hash}``
  and ``{source: rows}`` are read once; a chunk whose id holds the same hash is skipped (not embedded).
* Changed files: when a source has more rows stored than this run produces for it, the writer deletes the
  stored ids this run no longer produces (after the file's new rows are written). ``prune=True`` deletes
  every row of sources under the ingested folders that no longer exist.
* Crash-safe: rows are written with upserts by id; every decision is recomputed from the table at the next
  start, so a run killed at any point and rerun ends with exactly the table an uninterrupted run makes.
* A new collection's FULLTEXT index is built over its first load, not kept row by row (a build costs the engine
  a fraction). The writer starts it once every row but the last slice's is stored, while the model embeds that
  slice in pieces with one thread fewer (the build is one engine thread); the pieces' rows are indexed as they
  are written. Built after the load instead, it would leave a core idle for the build's 1.5-4 s.
* Failures (a bad file, a bad line, a chunk the model refused) are collected in the report; the run goes on.
  A source with a failure keeps its stored rows (nothing stored is lost because of bad input).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError, InvalidInputError, StoreError
from ..images import image_id
from ..protocols import EmbeddingProvider
from ..settings import get_settings
from ..store.schema import SOURCE_MAX
from .chunking import Chunk, Chunker
from .embedder import ChunkEmbedder, EmbedTask, make_token_counter
from .ids import chunk_id, content_hash, file_sha256
from .loaders import Document, Failure, LoadOptions, Notice, load_file, walk
from .prune import prune_missing, source_is_gone
from .report import IngestReport, ProgressFn

__all__ = ["IngestReport", "Ingestor", "chunk_id", "content_hash", "count_files", "ingest", "open_collection",
           "source_is_gone"]

log = logging.getLogger(__name__)

Policy = Literal["truncate", "chunk", "error"]



# ---------------------------------------------------------------------------------------------- queue items
@dataclass
class _FileDone:
    source: str
    new_ids: set[str] | None
    """Ids this run produces for the source; None = don't touch its stored rows (it had failures)."""
    changed: bool


@dataclass
class _Rows:
    rows: list[dict[str, Any]]


_STOP = object()
_BUILD_FULLTEXT = object()
"""The writer builds the new collection's pending FULLTEXT index now (every earlier row is stored)."""


class _Aborted(Exception):
    pass


class Ingestor:
    """One ingest run into one collection (see :func:`ingest`)."""

    def __init__(
        self,
        coll: Any,
        provider: EmbeddingProvider,
        *,
        options: LoadOptions | None = None,
        policy: Policy = "chunk",
        chunk_tokens: int | None = None,
        overlap: int = 32,
        batch_size: int = 1024,
        prune: bool = False,
        progress: ProgressFn | None = None,
        queue_batches: int = 2,
        write_every: int = 256,
    ) -> None:
        if policy not in ("truncate", "chunk", "error"):
            raise ConfigError(f"truncate={policy!r} is not a policy; use truncate, chunk or error")
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size} must be ≥ 1")
        if write_every < 1:
            raise ConfigError(f"write_every={write_every} must be ≥ 1")
        self.coll = coll
        self.provider = provider
        self.opts = options or LoadOptions()
        self.policy = policy
        self.batch_size = batch_size
        self.write_every = min(write_every, batch_size)
        """Rows handed to the writer at a time: the model embeds a batch in slices of this many texts."""
        self.prune = prune
        self.progress = progress or (lambda event, n: None)
        self._counter: Callable[[Sequence[str]], list[int]] | None = None
        limit = provider.max_input_tokens
        self.limit: int | None = int(limit) if limit else None
        size = chunk_tokens or min(self.limit or 512, 512)
        if self.limit and size > self.limit:
            raise ConfigError(f"chunk_tokens={size} is more than {provider.spec}'s limit of {self.limit} tokens")
        self.chunker = Chunker(max_tokens=size, overlap=min(overlap, size // 2 - 1), count=self._count)
        self.report = IngestReport(collection=coll.name, model=provider.spec,
                                   policy=policy)
        self.q1: queue.Queue[Any] = queue.Queue(maxsize=batch_size * queue_batches)
        self.q2: queue.Queue[Any] = queue.Queue(maxsize=queue_batches * -(-batch_size // self.write_every))
        self.abort = threading.Event()
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.write_delay = get_settings().ingest_write_delay  # test hook OBEMBED_INGEST_WRITE_DELAY
        self.sparse = bool(getattr(coll, "has_sparse", False))
        if self.sparse:
            check_sparse_model(coll, provider)
        self._handed = 0  # rows the embedder handed to the writer
        self.embedder = ChunkEmbedder(provider, self.report, self._fail, sparse=self.sparse)

    # ------------------------------------------------------------------ helpers
    def _count(self, texts: Sequence[str]) -> list[int]:
        if self._counter is None:
            self._counter = make_token_counter(self.provider)
        return self._counter(texts)

    def _put(self, q: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.abort.is_set():
                raise _Aborted
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.abort.is_set():
                raise _Aborted
            try:
                return q.get(timeout=0.2)
            except queue.Empty:
                continue

    def _fail(self, f: Failure) -> None:
        if f.source != display_path(f.source):  # a name that is not UTF-8: printable in the report and the JSON
            f = Failure(display_path(f.source), f.reason, f.line)
        with self.lock:
            self.report.add_failure(f)
        log.info("ingest: %s", f)
        self.progress("failed", 1)

    # ------------------------------------------------------------------ run
    def run(self, paths: Sequence[str | os.PathLike[str]]) -> IngestReport:
        t0 = time.perf_counter()
        self.roots = [os.path.abspath(os.fspath(p)) for p in paths]
        # the table's state, read once: what is stored, per id and per source
        self.existing: dict[str, str | None] = self.coll.hashes()
        self.existing_sources: dict[str | None, int] = self.coll.sources()
        self.seen_sources: set[str] = set()
        self.root_files: dict[str, int] = {}
        """Files each root yielded in this run (prune skips a root that yielded none)."""
        self.walk_failed: set[str] = set()
        """Roots and folders the walk could not read (prune skips everything under them)."""
        threads = [threading.Thread(target=self._guard, args=(fn,), name=f"ingest-{fn.__name__.strip('_')}",
                                    daemon=True) for fn in (self._producer, self._embedder, self._writer)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except BaseException:
            self.abort.set()
            raise
        if self.errors:
            raise self.errors[0]
        self._build_pending_fulltext()
        self.report.seconds = time.perf_counter() - t0
        return self.report

    def _build_pending_fulltext(self) -> None:
        """A new collection's FULLTEXT index, once its rows are loaded (also after a rerun of a stopped ingest)."""
        pending = getattr(self.coll, "fulltext_pending", None)
        if not pending:
            return
        t0 = time.perf_counter()
        self.coll.create_fulltext_index(pending)
        self.report.fulltext_seconds = time.perf_counter() - t0
        log.info("ingest: built the FULLTEXT index (%s) in %.1f s", pending, self.report.fulltext_seconds)

    def _build_beside_model(self) -> None:
        """The writer's FULLTEXT build while the model embeds the last slice, one model thread fewer meanwhile
        (:meth:`~obembed.providers.base.Provider.lend_core`). A failure is logged and left to the build after
        the load, which tries again and reports it."""
        pending = getattr(self.coll, "fulltext_pending", None)
        if not pending:
            return
        lend = getattr(self.provider, "lend_core", None)
        t0 = time.perf_counter()
        try:
            with lend() if lend is not None else nullcontext():
                self.coll.create_fulltext_index(pending)
        except StoreError as exc:
            log.warning("ingest: the FULLTEXT build beside the model failed (%s); trying again after the load", exc)
            return
        self.report.fulltext_seconds = time.perf_counter() - t0
        self.report.fulltext_beside = True
        log.info("ingest: built the FULLTEXT index (%s) beside the model's last slice in %.1f s", pending,
                 self.report.fulltext_seconds)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except _Aborted:
            pass
        except BaseException as exc:
            log.debug("ingest thread %s failed", fn.__name__, exc_info=True)
            self.errors.append(exc)
            self.abort.set()

    # ------------------------------------------------------------------ producer
    def _producer(self) -> None:
        try:
            for root in self.roots:  # one root at a time: --prune needs to know what each one yielded
                for item in walk([root], self.opts):
                    if isinstance(item, Failure):
                        self.walk_failed.add(item.source)
                        self.report.files_failed += 1
                        self._fail(item)
                        continue
                    self.root_files[root] = self.root_files.get(root, 0) + 1
                    self._file(item)
        finally:
            if not self.abort.is_set():
                self._put(self.q1, _STOP)

    def _file(self, path: Path) -> None:
        source = str(path)
        if source in self.seen_sources:  # named twice (a folder and a file inside it): once is enough
            return
        self.report.files_seen += 1
        self.seen_sources.add(source)
        unusable = source_problem(source)
        if unusable:  # reported and skipped: the run goes on with the other files
            self.report.files_failed += 1
            self._fail(Failure(source, unusable))
            return
        new_ids: set[str] = set()
        matched = 0
        had_failure = False
        changed = False
        n_docs = 0
        for item in load_file(path, self.opts):
            if isinstance(item, Notice):
                with self.lock:
                    self.report.notices.append(item.to_dict())
                continue
            if isinstance(item, Failure):
                had_failure = True
                if item.line is None:
                    self.report.files_failed += 1
                else:
                    self.report.records_failed += 1
                self._fail(item)
                continue
            n_docs += 1
            try:
                tasks = list(self._tasks(item))
            except InvalidInputError as exc:
                had_failure = True
                self.report.records_failed += item.line is not None
                self.report.files_failed += item.line is None
                self._fail(Failure(source, str(exc), item.line))
                continue
            self.report.chunks_total += len(tasks)
            self.progress("chunks", len(tasks))
            for t in tasks:
                new_ids.add(t.id)
                old = self.existing.get(t.id, False)
                if old is not False:
                    matched += 1
                if old == t.hash:
                    self.report.chunks_skipped += 1
                    self.progress("skipped", 1)
                    continue
                changed = True
                self._put(self.q1, t)
                self.progress("queued", 1)
        stale = self.existing_sources.get(source, 0) > matched
        if had_failure and stale:
            with self.lock:
                self.report.notices.append({"source": source, "message": "stored rows of this file kept because "
                                            "some of it failed to load; fix it and rerun to clean up"})
        keep = had_failure or n_docs == 0
        if changed or (stale and not keep):
            self.report.files_changed += 1
        self._put(self.q1, _FileDone(source, None if keep or not stale else new_ids, changed))
        self.progress("file", 1)

    def _tasks(self, doc: Document) -> Iterator[EmbedTask]:
        if doc.kind == "image":
            if not self.provider.supports_image:
                raise InvalidInputError(
                    f"image file, but {self.provider.spec} embeds text only; ingest images "
                    "with an image model (--model clip:openai/clip-vit-base-patch32) into their own collection, or "
                    "exclude them (--exclude '*.jpg')")
            meta = dict(doc.metadata)
            try:  # one scheme with obembed.images: id from the path, hash = sha256 of the bytes
                digest = file_sha256(doc.source)
            except OSError as exc:
                raise InvalidInputError(f"cannot be read ({exc.strerror or exc}); check its permissions") from exc
            yield EmbedTask(image_id(doc.source, digest), digest, doc.source, doc.source, 0, meta, doc.columns,
                            image=True)
            return
        for chunk in self._chunks(doc):
            meta = dict(doc.metadata)
            meta.update(chunk.meta)
            if chunk.heading:
                meta["heading"] = chunk.heading
            text = chunk.text
            yield EmbedTask(chunk_id(doc.source, doc.key, chunk.index), content_hash(text, meta, doc.columns), text,
                        doc.source, chunk.index, meta, doc.columns)

    def _chunks(self, doc: Document) -> Iterator[Chunk]:
        if self.policy == "chunk":
            if doc.sections is not None:
                n = 0
                for heading, text, extra in doc.sections:
                    for c in self.chunker.chunk_stream([text], heading=heading, start_index=n):
                        c.meta.update(extra)
                        n += 1
                        yield c
            elif doc.kind == "markdown":
                yield from self.chunker.chunk_markdown(doc.text or "")
            elif doc.blocks is not None:
                yield from self.chunker.chunk_stream(doc.blocks)
            else:
                yield from self.chunker.chunk_stream([doc.text or ""])
            return
        # truncate / error: the document is one chunk
        if doc.sections is not None:
            text = "\n\n".join(t for _, t, _ in doc.sections)
        elif doc.blocks is not None:
            text = _head(doc.blocks, 256 * 1024)
        else:
            text = doc.text or ""
        text = text.strip()
        if self.policy != "error" or self.limit is None:  # truncate: the embedder cuts and reports the cut
            yield Chunk(text, 0, None)
            return
        n = self._count([text])[0]
        if n > self.limit:
            raise InvalidInputError(
                f"{'record ' + doc.key + ' ' if doc.key else ''}has {n} tokens, more than the model's limit of "
                f"{self.limit}; rerun with --truncate chunk (split) or --truncate truncate (cut)")
        yield Chunk(text, 0, n)

    # ------------------------------------------------------------------ embedder
    def _embedder(self) -> None:
        pending: list[Any] = []
        n_tasks = 0
        while True:
            item = self._get(self.q1)
            if item is _STOP:
                self._flush(pending, final=True)
                self._put(self.q2, _STOP)
                return
            pending.append(item)
            if isinstance(item, EmbedTask):
                n_tasks += 1
                if n_tasks >= self.batch_size:
                    self._flush(pending)
                    pending, n_tasks = [], 0
            elif n_tasks == 0:  # only markers: pass them on at once
                self._flush(pending)
                pending = []

    def _flush(self, pending: list[Any], *, final: bool = False) -> None:
        """Embed the batch's tasks slice by slice and hand each slice's rows to the writer at once (the writer
        stores one slice while the model embeds the next); the batch's file markers follow its rows, so a
        file's stale rows are deleted only after all its new rows are written. ``final``: the run's last batch:
        a pending FULLTEXT index is built beside its last slice (see the module's notes)."""
        tasks = [t for t in pending if isinstance(t, EmbedTask)]
        if tasks:
            build = final and bool(getattr(self.coll, "fulltext_pending", None))

            def before_tail(earlier: int) -> bool:
                if not (earlier or self._handed):  # no row before this slice: built after the load
                    return False
                self._put(self.q2, _BUILD_FULLTEXT)
                return True

            slices = self.embedder.embed_slices(tasks, self.write_every, tail=max(16, self.write_every // 4),
                                                before_tail=before_tail if build else None)
            while True:
                t0 = time.perf_counter()
                got = next(slices, None)
                self.report.embed_seconds += time.perf_counter() - t0
                if got is None:
                    break
                part, vectors = got
                rows = [self._row(t, vectors[id(t)]) for t in part if id(t) in vectors]
                self.progress("embedded", len(rows))
                if rows:
                    self._put(self.q2, _Rows(rows))
                    self._handed += len(rows)
        for item in pending:
            if not isinstance(item, EmbedTask):
                self._put(self.q2, item)

    def _row(self, task: EmbedTask, v: Any) -> dict[str, Any]:
        sparse = None
        if isinstance(v, tuple):
            v, sparse = v
        row = {"id": task.id, "vector": v, "content": task.text, "source": task.source,
               "chunk": task.index, "content_hash": task.hash, "metadata": task.metadata}
        if self.sparse:
            row["sparse"] = sparse
        row.update(task.columns)
        return row

    # ------------------------------------------------------------------ writer
    def _writer(self) -> None:
        while True:
            item = self._get(self.q2)
            if item is _STOP:
                break
            if self.write_delay:
                time.sleep(self.write_delay)
            t0 = time.perf_counter()
            if isinstance(item, _Rows):
                self.coll.upsert(item.rows)
                self.report.chunks_embedded += len(item.rows)
                log.info("ingest: wrote %d rows (%d so far)", len(item.rows), self.report.chunks_embedded)
            elif item is _BUILD_FULLTEXT:
                self._build_beside_model()
            elif isinstance(item, _FileDone) and item.new_ids is not None:
                stale = [i for i in self.coll.hashes(item.source) if i not in item.new_ids]
                if stale:
                    self.report.chunks_deleted += self.coll.delete(ids=stale)
                    log.info("ingest: deleted %d stale rows of %s", len(stale), item.source)
            self.report.write_seconds += time.perf_counter() - t0
        if self.prune:
            prune_missing(self.coll, self.report, roots=self.roots, seen_sources=self.seen_sources,
                          existing_sources=self.existing_sources, root_files=self.root_files,
                          walk_failed=self.walk_failed)


def _head(blocks: Any, limit: int) -> str:
    parts: list[str] = []
    n = 0
    for b in blocks:
        parts.append(b)
        n += len(b)
        if n >= limit:
            break
    return "".join(parts)[:limit]


def count_files(paths: Sequence[str | os.PathLike[str]], options: LoadOptions | None = None) -> int:
    """How many files an ingest of ``paths`` will look at (for a progress bar's total)."""
    return sum(1 for x in walk([os.path.abspath(os.fspath(p)) for p in paths], options) if not isinstance(x, Failure))


def check_sparse_model(coll: Any, provider: Any) -> None:
    """A collection with a sparse column is ingested with a model that gives sparse vectors (else every row
    would miss its sparse vector): :class:`ConfigError` saying how to load one."""
    from ..providers.sparse import has_sparse_output, no_sparse_output_message

    if not has_sparse_output(provider):
        raise ConfigError(f"collection {coll.name!r} has a sparse vector column, but "
                          f"{no_sparse_output_message(provider)}")


def open_collection(store: Any, name: str, provider: Any, *, columns: Mapping[str, str] | None = None,
                    fulltext: bool | str = True, sparse: bool = False) -> Any:
    """The collection to ingest into: opened (model checked, declared columns must exist) or created.
    ``sparse``: a new collection gets a sparse vector column (the model must give sparse vectors); an existing
    one must have it."""
    cols = dict(columns or {})
    if store.has_collection(name):
        coll = store.collection(name, provider=provider)
        if sparse and not coll.has_sparse:
            raise coll._no_sparse()
    else:
        if sparse:
            from ..providers.sparse import has_sparse_output, no_sparse_output_message

            if not has_sparse_output(provider):
                raise ConfigError(f"sparse=True (--sparse) for the new collection {name!r}, but "
                                  f"{no_sparse_output_message(provider)}")
        # exists_ok: another ingest may be creating it at this moment; then this one attaches to it (the model
        # is checked against the one recorded: another model fails with advice)
        # a new collection's FULLTEXT index is built after this first load (Ingestor.run): the engine builds one
        # over loaded rows for a fraction of the CPU it spends keeping it up to date row by row
        coll = store.create_collection(name, provider, columns=cols or None, fulltext=fulltext, exists_ok=True,
                                       defer_fulltext=True, **({"sparse": True} if sparse else {}))
    missing = [c for c in cols if c not in coll.columns]
    if missing:
        raise ConfigError(
            f"collection {name!r} has no column(s) {missing} (it has: {sorted(coll.columns) or 'none'}); "
            "columns are fixed when a collection is created: drop it or ingest into a new collection")
    return coll


def ingest(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    collection: str,
    store: Any = None,
    provider: Any = None,
    model: str | None = None,
    columns: Mapping[str, str] | None = None,
    text_field: str = "text",
    id_field: str | None = "id",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    truncate: Policy = "chunk",
    chunk_tokens: int | None = None,
    overlap: int = 32,
    prune: bool = False,
    batch_size: int = 1024,
    max_file_bytes: int = 20 * 1024 * 1024,
    fulltext: bool | str = "auto",
    sparse: bool = False,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Ingest files and folders into ``collection`` (created on first use); returns the report.

    ``store``: an open :class:`obembed.store.Store` (default: :func:`obembed.connect` from settings).
    ``provider`` / ``model``: the embedding model (default: the configured one). ``columns``: scalar columns
    ``{name: sql_type}`` filled from records' fields of that name. ``truncate``: what to do with documents
    longer than the model's input: ``chunk`` (split, default), ``truncate`` (one chunk, cut by the model,
    counted) or ``error`` (reported as a failure). ``sparse``: create the collection with a sparse vector
    column (the model must have a sparse output, e.g. ``st:PATH?sparse=true`` for a BGE-M3 folder). Into a
    collection with a sparse column, dense and sparse vectors are written together, from one model pass where the
    model can. ``fulltext``: the new collection's FULLTEXT index: ``"auto"`` (default) picks the parser from a
    sample of the files (words, or character n-grams when some text is Chinese/Japanese/Korean/Thai ...), ``True``
    is ``ngram``, a name (``space``, ``beng``, ``ngram``, ``ngram2``, ``ik``) that parser, ``False`` none. See
    ``docs/ingest.md``.
    """
    import obembed

    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    if not paths:
        raise InvalidInputError("ingest needs at least one path (a file or a folder)")
    own_store = store is None
    if store is None:
        store = obembed.connect(provider_factory=obembed.load)
    try:
        from .model_choice import CorpusSample, choose_ingest_model, choose_ingest_parser

        sample = CorpusSample(paths, LoadOptions(text_field=text_field, id_field=id_field, include=tuple(include),
                                                 exclude=tuple(exclude)))
        if provider is None:
            choice = choose_ingest_model(store, collection, sample, model, default=obembed.get_settings().model)
            for line in (choice.reason, choice.warning):
                if line:
                    log.warning("%s", line)
            provider = obembed.load(choice.spec, **dict(choice.options))
        fulltext, parser = choose_ingest_parser(store, collection, sample, fulltext)
        if parser is not None and parser.warning:
            log.warning("%s", parser.warning)
        coll = open_collection(store, collection, provider, columns=columns, fulltext=fulltext, sparse=sparse)
        opts = LoadOptions(text_field=text_field, id_field=id_field, columns=dict(coll.columns),
                           include=tuple(include), exclude=tuple(exclude), max_file_bytes=max_file_bytes)
        run = Ingestor(coll, provider, options=opts, policy=truncate, chunk_tokens=chunk_tokens, overlap=overlap,
                       batch_size=batch_size, prune=prune, progress=progress)
        return run.run(list(paths))
    finally:
        if own_store:
            store.close()


def display_path(path: str) -> str:
    """A path as printable text: bytes that are not UTF-8 (surrogate escapes) shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def source_problem(source: str) -> str | None:
    """Why a file's path cannot be its rows' ``source``, or None."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError:
        return ("the file name is not valid UTF-8, and a source is stored as text: rename the file "
                "(e.g. `convmv -f latin1 -t utf8`) to ingest it")
    if len(source) > SOURCE_MAX:
        return (f"the path has {len(source)} characters, more than the {SOURCE_MAX} a source may have; "
                "ingest it from a folder closer to the file")
    return None
