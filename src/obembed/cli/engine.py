"""``obembed engine``: keep the embedded seekdb engine warm between commands, see it, stop it.

A command on an embedded store starts the engine (~2 s on a quiet machine) unless one already runs for that
folder, in which case it attaches (~50 ms). ``obembed engine start`` leaves a keeper process holding the engine
until the folder has been idle for ``--idle`` seconds; ``OBEMBED_ENGINE_IDLE=300`` makes every command start one.
Stopping or killing the keeper loses nothing committed.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._common import echo_json

__all__ = ["engine"]


def _folder(db: str | None) -> Path:
    from ..settings import get_settings

    return Path(db if db is not None else get_settings().db_path).expanduser().resolve()


_db = click.option("--db", metavar="PATH", help="Embedded store folder (default: OBEMBED_DB_PATH or ./obembed.db).")


@click.group()
def engine() -> None:
    """Keep the embedded engine warm between commands (start), see it (status), stop it (stop).

    \b
    Examples:
      obembed engine start --db kb --idle 600
      obembed engine status --db kb
      obembed engine stop --db kb
    """


@engine.command("start")
@_db
@click.option("--idle", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Stop after this many seconds without a command on the folder.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def start_cmd(db: str | None, idle: float, as_json: bool) -> None:
    """Start a keeper holding the engine of a store folder (or keep the running one)."""
    from ..errors import ConfigError
    from ..store.engine import start_warm

    folder = _folder(db)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"store path {str(folder)!r} is a file, not a folder; pass the store's folder with --db")
    status = start_warm(folder, idle)
    if as_json:
        echo_json(status)
    else:
        click.echo(f"engine warm for {folder} (keeper pid {status['pid']}); stops after {idle:.0f} s idle; "
                   f"`obembed engine stop --db {folder}` stops it now")


@engine.command("status")
@_db
@click.option("--json", "as_json", is_flag=True, help="Print JSON (null when none runs).")
def status_cmd(db: str | None, as_json: bool) -> None:
    """Whether a warm engine runs for the folder, and when it stops."""
    from ..store.engine import engine_status

    folder = _folder(db)
    status = engine_status(folder)
    if as_json:
        echo_json(status)
    elif status is None:
        click.echo(f"no warm engine for {folder} (`obembed engine start --db {folder}` starts one)")
    else:
        click.echo(f"warm engine for {folder}: keeper pid {status['pid']}, idle {status['idle_s']} s, stops in "
                   f"{status['stops_in_s']} s")


@engine.command("stop")
@_db
def stop_cmd(db: str | None) -> None:
    """Stop the folder's warm engine now (the data stays; the next command starts the engine again)."""
    from ..store.engine import stop_warm

    folder = _folder(db)
    click.echo(f"stopped the warm engine for {folder}" if stop_warm(folder) else f"no warm engine for {folder}")
