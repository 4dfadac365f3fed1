"""The BentoML service: a thin shell putting :class:`~mlfactor.serving.asgi.ServingApp` in front of BentoML.

BentoML imports this module in its supervisor and in every worker, and reads
the ``@bentoml.service`` configuration at import, so this entry module (and
only this one) reads the settings and configures logging when imported:
BentoML's workers set up **text** logging before importing it and every
stdout line must be JSON. Served from a built Bento, the Bento's declared
``envs`` are defaults under the real environment, so a plain
``bentoml serve TAG`` serves the model packed in it. In the supervisor, the
service gets a Prometheus directory of its own. Everything else lives in
:mod:`mlfactor.serving.worker` (process life) and :mod:`mlfactor.serving.core`
(HTTP behaviour).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from pathlib import Path

import bentoml
from bentoml._internal.context import server_context

from mlfactor.errors import ConfigError
from mlfactor.log import configure_logging, event, get_logger
from mlfactor.serving.asgi import ServingApp
from mlfactor.serving.bento import with_packed_defaults
from mlfactor.serving.core import ServingCore
from mlfactor.serving.metrics import use_own_multiprocess_dir
from mlfactor.serving.state import WorkerState
from mlfactor.serving.worker import (
    configure_service_logging,
    flush_logs,
    install_shutdown,
    load_runtime,
    service_config,
    stop_service,
)
from mlfactor.settings import Settings, load_settings

logger = get_logger("mlfactor.serving")


def _startup_settings() -> Settings:
    """Load the settings for this process; a bad configuration exits 78 with one JSON error line."""
    try:
        settings = load_settings(with_packed_defaults(os.environ, Path.cwd()))
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
STATE = WorkerState(SETTINGS)
if server_context.worker_index is None:  # the supervisor (or `bentoml build`), not a worker
    use_own_multiprocess_dir()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()  # BentoML creates the instance inside uvicorn's loop
    except RuntimeError:
        return None


def _load() -> None:
    exit_code = load_runtime(STATE)
    if exit_code is not None:
        stop_service(STATE, exit_code)


@bentoml.service(**service_config(SETTINGS))
class MlfactorService:
    """Serves the configured registered model (or the model packed in the Bento)."""

    def __init__(self) -> None:
        configure_service_logging(SETTINGS)  # the worker may have reset logging since import
        install_shutdown(STATE, _running_loop())
        threading.Thread(target=_load, name="mlfactor-load", daemon=True).start()

    async def __is_ready__(self) -> bool:
        """Readiness: every model loaded and no shutdown under way."""
        return STATE.ready

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]  # bentoml ships no types for it
    def shutdown(self) -> None:
        """Log the end of a graceful shutdown (in-flight requests are finished by now)."""
        elapsed = STATE.shutdown_elapsed()
        event(
            logger,
            "shutdown_complete",
            pid=os.getpid(),
            elapsed_s=round(elapsed, 3) if elapsed is not None else None,
        )
        flush_logs()


# The decorator returned a bentoml Service; its stubs still see the class.
MlfactorService.add_asgi_middleware(ServingApp, core=ServingCore(STATE))  # type: ignore[attr-defined]
