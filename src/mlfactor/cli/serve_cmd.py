"""``mlfactor serve``: serve the configured model with ``bentoml serve`` in the foreground."""

from __future__ import annotations

import click

from mlfactor.cli.common import start
from mlfactor.errors import ExitCode, exit_codes_help

E = ExitCode
SERVE_EXIT_CODES = exit_codes_help(
    E.OK,
    E.USAGE,
    E.NOT_FOUND,
    E.SERVICE_UNAVAILABLE,
    E.CONFIG,
    E.TERMINATED,
    said={
        E.OK: "stopped by Ctrl-C or SIGTERM",
        E.NOT_FOUND: "no such model or Bento",
        E.SERVICE_UNAVAILABLE: "the server stopped on its own: the model could not be loaded (the cause's "
        "code, e.g. 78 for refused credentials, is in the model_load_failed event) or the port is taken "
        "(the message names PORT=...)",
        E.TERMINATED: "in-flight requests outlived the grace period",
    },
)


@click.command("serve", epilog=SERVE_EXIT_CODES)
@click.option(
    "--bento",
    metavar="TAG",
    default=None,
    help="Serve a built Bento from the local store instead of the source: the tag `mlfactor build` "
    "printed, or mlfactor:latest for the newest build.",
)
def serve(bento: str | None) -> int:
    """Serve the registered model over HTTP.

    Runs until Ctrl-C or SIGTERM. The model is MLFACTOR_MODEL_URI (or
    MLFACTOR_MODEL_NAME@MLFACTOR_MODEL_ALIAS), resolved once at start. Binds
    BENTOML_HOST (127.0.0.1) on BENTOML_PORT, else PORT, else 3000. Endpoints:
    POST /predict, POST /invocations (MLflow scoring protocol: JSON, CSV,
    parquet), GET /metadata, /ping, /health, /version (as mlflow models serve),
    /livez, /readyz, /metrics, /schema.json and /docs.json (OpenAPI; BentoML's
    clients read them), Swagger UI at /. On SIGTERM, /readyz turns 503, new
    connections are refused, in-flight requests finish and the server exits
    within MLFACTOR_GRACE_PERIOD seconds (10).
    """
    from mlfactor.serving.launcher import run_server

    settings = start()
    return run_server(settings, bento=bento)
