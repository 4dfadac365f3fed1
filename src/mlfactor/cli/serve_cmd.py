"""``mlfactor serve``: serve the configured model with ``bentoml serve`` in the foreground."""

from __future__ import annotations

import click

from mlfactor.cli.common import start
from mlfactor.serving.launcher import run_server


@click.command("serve")
@click.option(
    "--bento",
    metavar="TAG",
    default=None,
    help="Serve a built Bento from the local store (e.g. iris-classifier:latest) instead of the source.",
)
def serve(bento: str | None) -> int:
    """Serve the registered model over HTTP until Ctrl-C or SIGTERM.

    The model is MLFACTOR_MODEL_URI (or MLFACTOR_MODEL_NAME@MLFACTOR_MODEL_ALIAS),
    resolved once at start. Binds BENTOML_HOST (127.0.0.1) on BENTOML_PORT, else
    PORT, else 3000. Endpoints: POST /predict, POST /invocations (MLflow scoring
    protocol), GET /metadata, /livez, /readyz, /metrics. On SIGTERM, /readyz turns
    503, in-flight requests finish and the server exits within
    MLFACTOR_GRACE_PERIOD seconds (10). Exits non-zero when the server stops on
    its own, e.g. when the model cannot be loaded.
    """
    settings = start()
    return run_server(settings, bento=bento)
