"""``mlfactor ui``: the MLflow UI on the configured tracking store."""

from __future__ import annotations

import os

import click

from mlfactor.cli.common import start
from mlfactor.errors import ExitCode, exit_codes_help
from mlfactor.ui import ui_command


@click.command(
    "ui", epilog=exit_codes_help(ExitCode.OK, ExitCode.USAGE, ExitCode.CONFIG) + " Otherwise MLflow's own."
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=5000, show_default=True, help="Port of the UI."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the UI binds to.")
def ui(port: int, host: str) -> None:
    """Open the MLflow UI on the configured tracking store.

    Runs `mlflow ui` on MLFLOW_TRACKING_URI (and MLFLOW_REGISTRY_URI) as
    `mlfactor config` shows them, until Ctrl-C. With an http:// tracking
    server, prints its address instead: the server serves its own UI.
    """
    settings = start()
    found = ui_command(settings, host=host, port=port)
    if found.argv is None:
        click.echo(f"the tracking server serves its UI: open {found.url}", err=True)
        return
    click.echo(f"MLflow UI on {found.url} (Ctrl-C stops it)", err=True)
    os.execve(found.argv[0], found.argv, found.env)  # noqa: S606 - signals reach mlflow directly
