"""The BentoML service class: the HTTP app, readiness and lifecycle hooks, configured from settings.

BentoML imports this module in its supervisor and in every worker, and reads
the ``@bentoml.service`` configuration at import, so this entry module (and
only this one) reads the settings and configures logging when imported:
BentoML's workers set up **text** logging before importing it (FIELD_NOTES)
and every stdout line must be JSON. Plain ``bentoml serve`` (a built Bento)
therefore honours the same environment as ``mlfactor serve``. The lifecycle
itself lives in :mod:`mlfactor.serving.lifecycle`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import bentoml

from mlfactor.errors import ConfigError
from mlfactor.log import configure_logging, event, get_logger
from mlfactor.serving.app import ServiceState, build_app
from mlfactor.serving.lifecycle import (
    configure_service_logging,
    flush_logs,
    install_shutdown,
    load_models,
    service_config,
)
from mlfactor.settings import Settings, load_settings

logger = get_logger("mlfactor.serving")


def _startup_settings() -> Settings:
    """Load the settings for this process; a bad configuration exits 78 with one JSON error line."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        configure_logging()
        event(
            logger,
            "error",
            level=logging.ERROR,
            error="ConfigError",
            message=str(exc),
            exit_code=int(exc.exit_code),
        )
        sys.stderr.write(f"Error: {exc}\n")
        raise SystemExit(int(exc.exit_code)) from None
    configure_service_logging(settings)
    return settings


SETTINGS = _startup_settings()
STATE = ServiceState(settings=SETTINGS, workers=SETTINGS.workers, release=SETTINGS.release)
APP = build_app(STATE)


@bentoml.service(**service_config(SETTINGS))
@bentoml.asgi_app(APP, path="/")
class MlfactorService:
    """Serves the configured registered model (or the model packed in the Bento)."""

    def __init__(self) -> None:
        configure_service_logging(SETTINGS)  # the worker may have reset logging since import
        from mlfactor.serving.metrics import ServiceMetrics  # needs the worker's prometheus dir

        STATE.metrics = ServiceMetrics()
        install_shutdown(STATE, SETTINGS.grace_period)
        loader = threading.Thread(
            target=load_models, args=(STATE, SETTINGS), name="mlfactor-load", daemon=True
        )
        loader.start()

    async def __is_ready__(self) -> bool:
        """Readiness: every model loaded and no shutdown under way."""
        return STATE.ready

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]  # bentoml ships no types for it
    def shutdown(self) -> None:
        """Log the end of a graceful shutdown (in-flight requests are finished by now)."""
        began = STATE.extra.get("shutdown_started")
        event(
            logger,
            "shutdown_complete",
            pid=os.getpid(),
            elapsed_s=round(time.monotonic() - began, 3) if began else None,
        )
        flush_logs()
