"""`obembed collections migrate`: change a collection's model without downtime (build, compare, swap, roll back,
drop the old vectors). The library does the work (:mod:`obembed.store.migrate`, :mod:`obembed.migration_compare`);
this parses, shows progress and renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import echo_json, load_provider, model_option
from .ingest import collections, db_options, open_store


@collections.command("migrate")
@click.argument("name")
@model_option
@click.option("--swap", "step", flag_value="swap", help="Make the migrated model answer (after a last pass).")
@click.option("--rollback", "step", flag_value="rollback",
              help="Before --swap: cancel the migration. After it: answer from the old model again.")
@click.option("--drop-old", "step", flag_value="drop-old", help="After --swap: drop the old model's vectors.")
@click.option("--compare", "compare", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Compare the current model with --model on these queries (JSONL: id, text, relevant row ids) "
                   "and print eval's table; migrates nothing.")
@click.option("--sample-queries", type=click.IntRange(min=1), default=None,
              help="Compare on N synthetic queries drawn from the collection's own rows (instead of --compare).")
@click.option("--compare-docs", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Rows the comparison encodes at most (every judged row, then a seeded sample).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the comparison's sampling.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Rows re-embedded per batch.")
@db_options
@click.option("--json", "as_json", is_flag=True, help="Print the migration state (or the comparison) as JSON.")
def migrate_cmd(name: str, model: str | None, options: tuple[str, ...], step: str | None, compare: Path | None,
                sample_queries: int | None, compare_docs: int, seed: int, batch_size: int, db: str | None,
                dsn: str | None, as_json: bool) -> None:
    """Change a collection's model without downtime: build the new vectors beside the old ones (rerun to
    resume), then --swap; --rollback and --drop-old after that. --compare FILE / --sample-queries N first shows
    how both models do on the collection's own rows."""
    comparing = compare is not None or sample_queries is not None
    if comparing and (step is not None or model is None):
        raise click.UsageError("--compare / --sample-queries need --model SPEC (the target) and no --swap, "
                               "--rollback or --drop-old")
    if compare is not None and sample_queries is not None:
        raise click.UsageError("give --compare FILE or --sample-queries N, not both")
    store = open_store(db, dsn, create=False)
    try:
        coll = store.collection(name)
        if comparing:
            _compare(coll, load_provider(model, options), compare, sample_queries, compare_docs, seed, as_json)
            return
        if step is None:
            if model is None:
                raise click.UsageError("give the new model: --model SPEC (or --swap / --rollback / --drop-old)")
            provider = load_provider(model, options)
            with _MigrateBar() as bar:
                state = coll.migrate(provider, batch_size=batch_size, progress=bar)
            msg = (f"{name}: {state['done']}/{state['rows']} rows have {state['to']} vectors; "
                   f"{state['answering']} answers until `obembed collections migrate {name} --swap`") if state else ""
        elif step == "swap":
            state = coll.swap_model(load_provider(model, options) if model else None).migration
            msg = f"{name}: {state['to'] if state else '?'} answers now (old vectors kept until --drop-old)"
        elif step == "rollback":
            coll = coll.rollback_model(load_provider(model, options) if model else None)
            state = coll.migration
            msg = f"{name}: {coll.spec} answers" + ("" if state else " (migration cancelled)")
        else:
            state = coll.drop_old_model()
            msg = f"{name}: dropped the vectors of {state['dropped']}"
    finally:
        store.close()
    if as_json:
        echo_json(state)
    else:
        click.echo(msg)


def _compare(coll: Any, provider: Any, queries: Path | None, n: int | None, max_docs: int, seed: int,
             as_json: bool) -> None:
    from ..migration_compare import compare_models, format_comparison

    def say(msg: str) -> None:
        click.echo(msg, err=True)

    report = compare_models(coll, provider, queries=queries, sample_queries=n, max_docs=max_docs, seed=seed,
                            progress=say)
    if as_json:
        echo_json({**report, "models": [{k: v for k, v in m.items() if k != "per_query"}
                                        for m in report["models"]]})
    else:
        click.echo(format_comparison(report))


class _MigrateBar:
    """A rich progress bar (stderr) of the rows re-embedded, like ingest's."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]re-embedding"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True))
        self.task = self.progress.add_task("rows", total=None)

    def __enter__(self) -> _MigrateBar:
        self.progress.start()
        return self

    def __call__(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
