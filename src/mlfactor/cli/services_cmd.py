"""``mlfactor services up|down``: the local MLflow server backed by PostgreSQL (make services)."""

from __future__ import annotations

from pathlib import Path

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json
from mlfactor.errors import ExitCode, exit_codes_help
from mlfactor.stack import DEFAULT_DATABASE_URI, StackConfig, run_stack, stop_stack

E = ExitCode
_STATE_HELP = "Folder for the pid file and proxied artifacts (default: .services/ in the project)."
UP_EXIT_CODES = exit_codes_help(
    E.OK,
    E.USAGE,
    E.INVALID_INPUT,
    E.SERVICE_UNAVAILABLE,
    E.CONFIG,
    said={
        E.OK: "stopped by Ctrl-C, SIGTERM or `mlfactor services down`",
        E.INVALID_INPUT: "the stack already runs or the port is taken",
        E.SERVICE_UNAVAILABLE: "PostgreSQL does not answer or the server died",
        E.CONFIG: "PostgreSQL refuses the user",
    },
)


@click.group("services")
def services() -> None:
    """Run the local production-like stack: mlflow server + PostgreSQL.

    Point mlfactor at it by changing one variable:
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 (the port you chose).
    """


@services.command("up", epilog=UP_EXIT_CODES)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5000,
    show_default=True,
    help="Port of the mlflow server on --host.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the mlflow server binds to.")
@click.option(
    "--database-uri",
    default=DEFAULT_DATABASE_URI,
    show_default=True,
    help="PostgreSQL backend store; the database is created when missing.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="mlflow server worker processes.",
)
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False), default=None, help=_STATE_HELP)
def up(port: int, host: str, database_uri: str, workers: int, state_dir: Path | None) -> int:
    """Create and migrate the database, then run mlflow server in the foreground until Ctrl-C."""
    settings = start()
    config = StackConfig(
        database_uri=database_uri,
        host=host,
        port=port,
        state_dir=state_dir or settings.project_dir / ".services",
        workers=workers,
    )
    return run_stack(config, settings)


@services.command("down", epilog=exit_codes_help(E.OK, E.USAGE, E.CONFIG))
@click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False), default=None, help=_STATE_HELP)
def down(state_dir: Path | None) -> None:
    """Stop the stack that `mlfactor services up` started (and nothing else); safe to run twice."""
    settings = start()
    emit_json(stop_stack(StackConfig(state_dir=state_dir or settings.project_dir / ".services")))
