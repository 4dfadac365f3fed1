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
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

import bentoml
from bentoml._internal.context import server_context

from mlfactor.errors import BackingServiceError, ConfigError, MlfactorError
from mlfactor.log import configure_logging, event, get_logger, log_error
from mlfactor.serving.asgi import ServingApp
from mlfactor.serving.bento import with_packed_defaults
from mlfactor.serving.bentoml_timeout import cancel_timeout_timers
from mlfactor.serving.core import ServingCore
from mlfactor.serving.launcher import check_port
from mlfactor.serving.metrics import use_own_multiprocess_dir
from mlfactor.serving.runtime import prefetch_served_models
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


def _exit_with(exc: MlfactorError) -> NoReturn:
    """Stop this process with one JSON ``error`` line on stdout, the message on stderr, no traceback."""
    log_error(logger, exc, int(exc.exit_code))
    raise SystemExit(int(exc.exit_code)) from None


def _startup_settings() -> Settings:
    """Load the settings for this process; a bad configuration exits 78 with one JSON error line."""
    try:
        settings = load_settings(with_packed_defaults(os.environ, Path.cwd()))
    except ConfigError as exc:
        configure_logging()
        _exit_with(exc)
    configure_service_logging(settings)
    return settings


def _refuse_a_taken_port(argv: list[str]) -> None:
    """In ``bentoml serve``'s supervisor: exit 69 with one JSON line when the port is taken."""
    if argv[1:2] != ["serve"]:
        return  # imported by `bentoml build` or another command

    def option(name: str, default: str) -> str:
        for i, arg in enumerate(argv):
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return default

    from bentoml._internal.configuration.containers import BentoMLContainer

    # as the CLI reads them: the option, else its environment variable, else BentoML's configuration
    host = option("--host", os.environ.get("BENTOML_HOST") or str(BentoMLContainer.http.host.get()))
    port = option("--port", os.environ.get("BENTOML_PORT") or str(BentoMLContainer.http.port.get()))
    if not port.isdigit():
        return  # BentoML reports it
    try:
        check_port(host, int(port), lambda free: f"BENTOML_PORT={free} bentoml serve ... (or --port {free})")
    except BackingServiceError as exc:
        _exit_with(exc)


SETTINGS = _startup_settings()
STATE = WorkerState(SETTINGS)
if server_context.worker_index is None:  # the supervisor (or `bentoml build`), not a worker
    _refuse_a_taken_port(sys.argv)
    use_own_multiprocess_dir()
    if sys.argv[1:2] == ["serve"]:
        # The workers inherit this environment (circus copies it): they read the models resolved
        # meanwhile instead of starting a resolver once BentoML has started them.
        os.environ.update(prefetch_served_models(SETTINGS))
else:
    cancel_timeout_timers()  # before BentoML builds this worker's app around the service


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
