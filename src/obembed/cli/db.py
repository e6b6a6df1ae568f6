"""``obembed db models register|list|drop|check``: obembed's models as the database's own AI models, so that
SQL's ``AI_EMBED('<name>', text)`` calls an ``obembed serve`` (see docs/in-database.md)."""

from __future__ import annotations

import sys
from typing import Any

import click

from ._common import echo_json, load_provider
from .ingest import db_options, open_store

__all__ = ["db"]


@click.group()
def db() -> None:
    """The database side: in-database models (AI_EMBED in SQL calls obembed's server)."""


@db.group()
def models() -> None:
    """Register, list, drop and check obembed models as the database's AI models.

    \b
    Examples:
      obembed db models register --url http://127.0.0.1:8000/v1/embeddings --collection docs --db ./kb
      obembed db models register --url http://127.0.0.1:8000/v1/rerank \\
          --rerank-model cross-encoder:BAAI/bge-reranker-v2-m3 --db ./kb
      obembed db models list --db ./kb
      obembed db models check --db ./kb
      obembed db models drop --stale --db ./kb
    """


@models.command("register")
@click.option("--url", required=True, metavar="URL",
              help="The obembed server's URL as the database reaches it: http://HOST:PORT/v1/embeddings (with "
                   "--rerank-model: .../v1/rerank); http://HOST:PORT alone stands for either.")
@click.option("--collection", default=None, metavar="NAME",
              help="Register the collection's model (names obembed_NAME and obembed_NAME_query).")
@click.option("-m", "--model", "model", default=None, metavar="SPEC",
              help="The served model's spec (default: the collection's recorded model).")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help="Provider option (repeatable).")
@click.option("--rerank-model", default=None, metavar="SPEC",
              help="Register the server's reranker (obembed serve --rerank-model SPEC) for AI_RERANK instead.")
@click.option("--served-name", default=None, metavar="NAME",
              help="The name the server serves the model under (default: its spec; `obembed serve -m NAME=SPEC`).")
@click.option("--name", default=None, metavar="NAME", help="The SQL name instead of obembed_<collection|model>.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_options
def register_cmd(url: str, collection: str | None, model: str | None, options: tuple[str, ...],
                 rerank_model: str | None, served_name: str | None, name: str | None, as_json: bool,
                 db: str | None, dsn: str | None) -> None:
    """Register a served model (or the served reranker) in the database (idempotent). The server must accept the
    new access key: run it with `obembed serve --register` or `--accept-registered-keys` on the same store."""
    from urllib.parse import urlsplit

    from ..store.ai_models import server_urls

    if rerank_model and (collection or model):
        raise click.UsageError("--rerank-model registers a reranker: leave out --collection and -m")
    try:
        bare = urlsplit(url).path in ("", "/")
    except ValueError:
        bare = False  # the library names what is wrong with it
    if bare:
        url = server_urls(url)[1 if rerank_model else 0]
    with open_store(db, dsn) as store:
        if rerank_model:
            import obembed

            regs = store.register_reranker(url, obembed.load_reranker(rerank_model), served_name=served_name,
                                           name=name)
        else:
            provider: Any = load_provider(model, options) if model else None
            regs = store.register_model(url, provider, collection=collection, served_name=served_name, name=name)
    if as_json:
        echo_json([r.as_dict() | {"new": r.key is not None} for r in regs])
        return
    for r in regs:
        state = "registered" if r.key is not None else "unchanged"
        size = "rerank" if r.kind == "rerank" else f"{r.dimension}-d"
        click.echo(f"{r.name}\t{r.kind}\t{size}\t{r.url}\t{state}")
    if rerank_model:
        click.echo("SQL: SELECT AI_RERANK('" + regs[0].name + "', 'a query', '[\"doc 1\", \"doc 2\"]');", err=True)
    else:
        click.echo("SQL: SELECT AI_EMBED('" + regs[0].name + "', 'some text');", err=True)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_options
def list_cmd(as_json: bool, db: str | None, dsn: str | None) -> None:
    """The registrations, each ok or stale (and why)."""
    with open_store(db, dsn) as store:
        regs = store.ai_models()
    if as_json:
        echo_json([r.as_dict() for r in regs])
        return
    if not regs:
        click.echo("no AI models registered (obembed db models register, or obembed serve --register)")
    for r in regs:
        size = f"{r.dimension}-d" if r.dimension else "-"
        click.echo(f"{r.name}\t{r.kind}\t{r.collection or '-'}\t{size}\t{r.url}\t{r.status}")


@models.command("drop")
@click.argument("names", nargs=-1)
@click.option("--stale", is_flag=True, help="Drop every stale registration.")
@click.option("--all", "all_", is_flag=True, help="Drop every registration.")
@db_options
def drop_cmd(names: tuple[str, ...], stale: bool, all_: bool, db: str | None, dsn: str | None) -> None:
    """Drop registrations by NAME, the stale ones (--stale) or all (--all)."""
    if not names and not stale and not all_:
        raise click.UsageError("name the registrations to drop, or give --stale or --all")
    with open_store(db, dsn) as store:
        dropped = store.drop_ai_models(names, stale=stale, all_=all_)
    click.echo(f"dropped {len(dropped)}: {', '.join(dropped) or '-'}")


@models.command("check")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_options
def check_cmd(names: tuple[str, ...], as_json: bool, db: str | None, dsn: str | None) -> None:
    """Call each registration through SQL (AI_EMBED; a reranker: AI_RERANK) and report; exit 1 when one fails."""
    from ..store.ai_models import check_models

    with open_store(db, dsn) as store:
        results = check_models(store, names)
    if as_json:
        echo_json(results)
    else:
        if not results:
            click.echo("no AI models registered")
        for r in results:
            done = f"{r['scored']} documents scored" if "scored" in r else f"{r.get('dimension')}-d"
            detail = f"ok ({done})" if r["ok"] else f"FAILED: {r.get('error') or r['status']}"
            click.echo(f"{r['name']}\t{r['url']}\t{detail}")
    if any(not r["ok"] for r in results):
        sys.exit(1)
