"""``mlfactor admin JOB``: one-off admin processes with the service's code, settings and logs.

Each job's module is imported only when the job runs (``mlfactor admin --help``
stays fast).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json
from mlfactor.cli.types import DURATION
from mlfactor.errors import ExitCode, exit_codes_help

E = ExitCode
BATCH_SCORE_EXIT_CODES = exit_codes_help(
    E.OK,
    E.USAGE,
    E.INVALID_INPUT,
    E.NOT_FOUND,
    E.SERVICE_UNAVAILABLE,
    E.CONFIG,
    said={E.INVALID_INPUT: "invalid input file (rows named)", E.NOT_FOUND: "no such file or model"},
)
GC_EXIT_CODES = exit_codes_help(E.OK, E.USAGE, E.SERVICE_UNAVAILABLE, E.CONFIG)
DB_UPGRADE_EXIT_CODES = exit_codes_help(
    E.OK,
    E.USAGE,
    E.NOT_FOUND,
    E.SERVICE_UNAVAILABLE,
    E.CONFIG,
    said={
        E.NOT_FOUND: "no sqlite file to upgrade",
        E.CONFIG: "invalid configuration (or not a database URI)",
    },
)


@click.group("admin")
def admin() -> None:
    """Run a one-off admin job: batch-score, gc, db-upgrade.

    Same settings (environment, .env) and JSON logs as every mlfactor process.
    """


@admin.command("batch-score", epilog=BATCH_SCORE_EXIT_CODES)
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV or Parquet file to score.",
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV or Parquet file to write (input columns plus the prediction); replaced only on success.",
)
@click.option("--model-uri", default=None, help="Model (default: as the service resolves it).")
@click.option(
    "--chunk-rows",
    default=20_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows scored at a time (memory stays bounded by this, not by the file).",
)
@click.option(
    "--prediction-column", default="prediction", show_default=True, help="Name of the output column."
)
def batch_score(
    *, input_path: Path, output_path: Path, model_uri: str | None, chunk_rows: int, prediction_column: str
) -> None:
    """Score a file with the model the service serves, streaming in chunks.

    Every value is checked against the model signature; a bad file exits 65
    naming each bad column and its row numbers, and writes nothing.
    """
    from mlfactor.admin.batch_score import batch_score as run

    settings = start()
    progress, finish = _progress_bar()
    try:
        result = run(
            settings,
            input_path,
            output_path,
            model_uri=model_uri,
            chunk_rows=chunk_rows,
            prediction_column=prediction_column,
            progress=progress,
        )
    finally:
        finish()
    emit_json(result.to_dict())


@admin.command("gc", epilog=GC_EXIT_CODES)
@click.option(
    "--older-than",
    type=DURATION,
    default="30d",
    show_default=True,
    help="Only runs and versions older than this: 30d, 12h, 2w (a bare number is seconds).",
)
@click.option(
    "--keep-last",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Always keep the newest N versions of each registered model.",
)
@click.option("--apply", "apply_", is_flag=True, help="Delete (default: only list what would be deleted).")
def gc(older_than: float, keep_last: int, apply_: bool) -> None:
    """List, or with --apply delete, old runs and model versions nothing references.

    Never touches a version an alias, a rollback or a release points at, nor
    the runs behind them.
    """
    import datetime as dt

    from mlfactor.admin.gc import apply_gc, plan_gc
    from mlfactor.tracking import connect

    settings = start()
    client = connect(settings)
    plan = plan_gc(client, settings, older_than=dt.timedelta(seconds=older_than), keep_last=keep_last)
    if apply_:
        plan = apply_gc(client, settings, plan)
    verb = "deleted" if apply_ else "would delete (dry run; --apply to delete)"
    click.echo(
        f"gc {verb}: {len(plan.delete_versions)} model versions, {len(plan.delete_runs)} runs, "
        f"{len(plan.delete_logged_models)} logged models; kept {len(plan.kept_versions)} versions, "
        f"{plan.kept_runs} runs.{' ' + plan.note if plan.note else ''}",
        err=True,
    )
    emit_json(plan.to_dict())


@admin.command("db-upgrade", epilog=DB_UPGRADE_EXIT_CODES)
def db_upgrade() -> None:
    """Migrate the tracking database schema (`mlflow db upgrade`); safe to run twice.

    Needs the database URI (sqlite, postgresql): with an http:// tracking
    server, run it where the database is. Take a backup first.
    """
    from mlfactor.admin.db_upgrade import upgrade_all

    settings = start()
    results = upgrade_all(settings)
    for result in results:
        state = (
            f"upgraded {result.before} -> {result.after}" if result.changed else f"already at {result.after}"
        )
        click.echo(f"{result.uri}: {state}", err=True)
    emit_json([r.to_dict() for r in results])


def _progress_bar() -> tuple[Any, Any]:
    """Return (callback, finish): a progress bar on stderr when it is a terminal, else no-ops.

    The bar starts with the first scored chunk, so model loading does not skew its rate.
    """
    if not sys.stderr.isatty():
        return None, lambda: None
    state: dict[str, Any] = {"bar": None, "done": 0}

    def update(done: int, total: int | None) -> None:
        bar: Any = state["bar"]
        if bar is None:
            bar = click.progressbar(
                length=max(total or done, 1), label="scoring", file=sys.stderr, show_pos=True
            )
            bar.__enter__()
            state["bar"] = bar
        bar.length = max(total or done, done, 1)
        bar.update(done - state["done"])
        state["done"] = done

    def finish() -> None:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)

    return update, finish
