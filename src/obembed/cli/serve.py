"""``obembed serve``: OpenAI- and Ollama-compatible embeddings, search and a web page, on uvicorn."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from ..errors import MissingCredentialError
from ..settings import get_settings
from ._common import load_provider

__all__ = ["parse_model_arg", "serve", "store_choice"]

log = logging.getLogger(__name__)


def parse_model_arg(arg: str) -> tuple[str | None, str]:
    """``NAME=SPEC`` -> (NAME, SPEC); a plain SPEC (which may hold ``?k=v``) -> (None, SPEC)."""
    name, sep, spec = arg.partition("=")
    if sep and name and not any(c in name for c in ":?/&") and spec:
        return name.strip(), spec.strip()
    return None, arg.strip()


def store_choice(ctx: click.Context, db_path: str | None, dsn: str | None) -> str | None:
    """The DSN to open, as ``obembed ingest`` decides: ``--db`` and ``--dsn`` together are refused; ``--db`` wins
    over ``$OBEMBED_DSN`` (the embedded store in that folder is opened, not the server)."""
    if not db_path:
        return dsn
    if dsn and ctx.get_parameter_source("dsn") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("give --db (embedded) or --dsn (server), not both")
    if dsn:
        log.info("--db %s given: $OBEMBED_DSN is not used", db_path)
    return None


@click.command()
@click.option("-m", "--model", "models", multiple=True, metavar="[NAME=]SPEC", envvar="OBEMBED_MODEL",
              help="Model to serve (repeatable); clients pick it by NAME, the spec, or the model name. "
                   "Default: $OBEMBED_MODEL or st:all-MiniLM-L6-v2.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Provider option for every served model, e.g. -o device=cpu (repeatable).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; the default is loopback only. Use 0.0.0.0 (with --api-key-env) to expose it.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--api-key-env", metavar="VAR",
              help="Require 'Authorization: Bearer <key>' where <key> is the value of env var VAR.")
@click.option("--collection", "collections", multiple=True, metavar="NAME",
              help="Expose only these collections through /search and /collections (repeatable; default all).")
@click.option("--db", "db_path", metavar="PATH", help="Embedded seekdb folder for /search (default $OBEMBED_DB_PATH "
                                                      "or ./obembed.db).")
@click.option("--dsn", metavar="DSN", envvar="OBEMBED_DSN", help="mysql://user:pass@host:port/db of a seekdb "
                                                                  "server / OceanBase (or $OBEMBED_DSN).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another name clients may reach a loopback server by (sent as Host; repeatable; * = any). "
                   "Other names are refused: a defence against DNS rebinding.")
@click.option("--no-store", is_flag=True, help="Serve embeddings only (no /search).")
@click.option("--rerank-model", metavar="SPEC", default=None,
              help="Serve this reranker at POST /v1/rerank (Cohere/Jina shape), e.g. "
                   "cross-encoder:BAAI/bge-reranker-v2-m3 (docs/rerank.md).")
@click.option("--max-inputs", default=2048, show_default=True, type=click.IntRange(1), help="Inputs per request.")
@click.option("--max-chars", default=32768, show_default=True, type=click.IntRange(1), help="Characters per input.")
@click.option("--max-body-bytes", default=16 * 1024 * 1024, show_default=True, type=click.IntRange(1),
              help="Request body size (checked before parsing).")
@click.option("--max-queue", default=4096, show_default=True, type=click.IntRange(1),
              help="Texts queued per model before requests get 503 + Retry-After.")
@click.option("--max-batch-tokens", default=16384, show_default=True, type=click.IntRange(1),
              help="Tokens (estimated) gathered into one model batch.")
@click.option("--max-batch-items", default=256, show_default=True, type=click.IntRange(1),
              help="Texts gathered into one model batch.")
@click.option("--batch-wait-ms", default=10.0, show_default=True, type=click.FloatRange(0),
              help="How long a lone request waits for companions to batch with.")
@click.option("--register", is_flag=True,
              help="Register the served model(s) in the store as AI models (SQL: AI_EMBED('obembed_<collection>', "
                   "text)), and the --rerank-model as a rerank model (AI_RERANK('obembed_<reranker>', q, docs)); "
                   "the server then requires the registrations' access keys (or --api-key-env's).")
@click.option("--register-url", metavar="URL",
              help="The URL the database reaches this server at (default http://HOST:PORT; its /v1/embeddings "
                   "URL is accepted too).")
@click.option("--accept-registered-keys", is_flag=True,
              help="Accept (and require) the keys of registrations made by `obembed db models register`.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(models: tuple[str, ...], options: tuple[str, ...], host: str, port: int, api_key_env: str | None,
          collections: tuple[str, ...], allowed_hosts: tuple[str, ...], db_path: str | None, dsn: str | None,
          no_store: bool, rerank_model: str | None, max_inputs: int,
          max_chars: int, max_body_bytes: int, max_queue: int, max_batch_tokens: int, max_batch_items: int,
          batch_wait_ms: float, register: bool, register_url: str | None, accept_registered_keys: bool,
          log_level: str) -> None:
    """Serve embeddings over OpenAI's and Ollama's APIs, plus /search and a web page at /.

    \b
    Examples:
      obembed serve                                  # st:all-MiniLM-L6-v2 on http://127.0.0.1:8000
      obembed serve -m minilm=st:all-MiniLM-L6-v2 -m st:BAAI/bge-m3 --db ./obembed.db
      OBEMBED_SERVER_KEY=s3cret obembed serve --host 0.0.0.0 --api-key-env OBEMBED_SERVER_KEY
      obembed serve --rerank-model cross-encoder:BAAI/bge-reranker-v2-m3   # + POST /v1/rerank
      obembed serve --db ./kb --register --collection docs   # SQL: SELECT AI_EMBED('obembed_docs', 'text')
      obembed serve --db ./kb --register --rerank-model cross-encoder:BAAI/bge-reranker-v2-m3   # + AI_RERANK
    \b
    Clients:
      OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="...").embeddings.create(model="all-MiniLM-L6-v2", ...)
      ollama.Client(host="http://127.0.0.1:8000").embed(model="all-MiniLM-L6-v2", input=[...])
    """
    import uvicorn
    from pydantic import SecretStr

    from ..server.app import ServerConfig, create_app

    store_dsn = store_choice(click.get_current_context(), db_path, dsn)  # before loading any model
    api_key = None
    if api_key_env:
        value = os.environ.get(api_key_env, "")
        if not value:
            raise MissingCredentialError(f"--api-key-env {api_key_env}: the variable {api_key_env} is not set or "
                                         f"empty; export {api_key_env}=<a long random key>")
        api_key = SecretStr(value)
    elif host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host} without --api-key-env: anyone who can reach it can use it", err=True)
    config = ServerConfig(max_inputs=max_inputs, max_chars=max_chars, max_body_bytes=max_body_bytes,
                          max_queue=max_queue, max_batch_tokens=max_batch_tokens, max_batch_items=max_batch_items,
                          batch_wait_ms=batch_wait_ms, api_key=api_key, collections=tuple(collections),
                          allowed_hosts=tuple(allowed_hosts),
                          registered_keys=register or accept_registered_keys)
    if (register or accept_registered_keys) and no_store:
        raise click.UsageError("--register and --accept-registered-keys need the store (drop --no-store)")
    if register and not register_url and host in ("0.0.0.0", "::", ""):
        raise click.UsageError(f"--register with --host {host}: give --register-url http://ADDRESS:{port}, "
                               "the address the database reaches this server at")
    served: list[tuple[str | None, Any, list[str]]] = []
    for arg in models or ("",):
        name, spec = parse_model_arg(arg) if arg else (None, None)
        provider = load_provider(spec, options, purpose="bulk")
        written = spec or get_settings().model
        served.append((name, provider, [written, written.partition("?")[0]]))

    store_factory = None
    if not no_store:
        def store_factory() -> Any:
            import obembed

            return obembed.connect(dsn=store_dsn, path=db_path)

    click.echo(f"loading {len(served)} model(s)...", err=True)
    reranker = None
    if rerank_model:
        import obembed

        reranker = obembed.load_reranker(rerank_model)
    app = create_app(served, config=config, store_factory=store_factory, reranker=reranker)
    if register:
        from ..server.register import register_served

        url = register_url or f"http://{host}:{port}"
        for reg in register_served(app.state.obembed, url, collections):
            if reg.kind == "rerank":
                click.echo(f"registered AI model {reg.name} (rerank, {reg.model_name}): "
                           f"SELECT AI_RERANK('{reg.name}', 'query', '[\"doc 1\", \"doc 2\"]')", err=True)
                continue
            click.echo(f"registered AI model {reg.name} ({reg.kind}, {reg.dimension}-d, "
                       f"collection {reg.collection or '-'}): SELECT AI_EMBED('{reg.name}', 'text')", err=True)
    names = ", ".join(m.name for m in app.state.obembed.models)
    if reranker is not None:
        names += f" + reranker {reranker.spec} at /v1/rerank"
    click.echo(f"serving {names} on http://{host}:{port} (web page /, API docs /docs)"
               f"{' with API key' if api_key else ''}", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
