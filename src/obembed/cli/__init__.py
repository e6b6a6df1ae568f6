"""The ``obembed`` command line: a thin layer over the Python API.

Commands live in their own modules and are imported only when run, so ``obembed --help`` stays fast.
Every :class:`~obembed.errors.ObembedError` becomes a one-line message and exit code 1 (no traceback).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

import click

from ..errors import ObembedError, redact

__all__ = ["COMMANDS", "main"]

# name -> (module:function, short help shown by `obembed --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "embed": ("obembed.cli.embed:embed", "Embed texts (or images) and print the vectors."),
    "similarity": ("obembed.cli.embed:similarity_cmd", "Similarity matrix between texts (and images)."),
    "models": ("obembed.cli.embed:models", "List provider backends and the default model."),
    "ingest": ("obembed.cli.ingest:ingest", "Ingest files and folders into a collection."),
    "search": ("obembed.cli.ingest:search", "Search a collection (vector, filtered, hybrid)."),
    "collections": ("obembed.cli.ingest:collections", "List, show, drop or migrate (change the model of) collections."),
    "serve": ("obembed.cli.serve:serve", "Serve embeddings (OpenAI + Ollama APIs), search and a web page."),
    "eval": ("obembed.cli.eval:eval_cmd", "Evaluate and compare models on a retrieval set."),
    "map": ("obembed.cli.eval:map_cmd", "2-D map of a collection's vectors (HTML or PNG)."),
    "db": ("obembed.cli.db:db", "In-database models: SQL's AI_EMBED calls obembed's server (register, list, ...)."),
    "engine": ("obembed.cli.engine:engine", "Keep the embedded engine warm between commands; status, stop."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._available(name)] + sorted(super().list_commands(ctx))

    @staticmethod
    def _available(name: str) -> bool:
        mod = COMMANDS[name][0].partition(":")[0]
        return importlib.util.find_spec(mod) is not None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and self._available(cmd_name):
            mod_name, _, attr = COMMANDS[cmd_name][0].partition(":")
            cmd = getattr(importlib.import_module(mod_name), attr)
            assert isinstance(cmd, click.Command)
            return cmd
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in COMMANDS if self._available(name)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ObembedError as exc:
            raise click.ClickException(redact(str(exc))) from None
        except BrokenPipeError:
            raise
        except OSError as exc:  # a file or folder the command could not use: one line, as the errors above
            where = f" ({exc.filename})" if exc.filename else ""
            raise click.ClickException(redact(f"{exc.strerror or exc}{where}")) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="obembed")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """obembed: embeddings for text and images, stored in OceanBase / seekdb vector tables.

    Models are named BACKEND:MODEL (st:all-MiniLM-L6-v2, hf:BAAI/bge-m3, ollama:bge-m3,
    dashscope:text-embedding-v3, ...); see `obembed models`.
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
