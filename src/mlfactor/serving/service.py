"""The BentoML service: lifecycle (load, readiness, bounded graceful shutdown) around the HTTP app.

BentoML imports this module in its supervisor and in every worker and reads
the ``@bentoml.service`` configuration at import, so this entry module, and
only this one, reads the settings and configures logging when imported:
BentoML's workers set up **text** logging before importing it (FIELD_NOTES),
and every stdout line must be JSON. Plain ``bentoml serve`` (a built Bento)
therefore honours the same environment as ``mlfactor serve``.

Per worker: the model loads in a background thread so ``/livez`` answers at
once and ``/readyz`` is 503 until every variant is loaded; an unreachable
registry is retried for ``MLFACTOR_REGISTRY_WAIT`` seconds, then the service
stops. On SIGTERM (or SIGINT) ``/readyz`` turns 503 at once, the worker keeps
serving for a short drain window, then stops accepting, finishes in-flight
requests, runs its shutdown hook and exits; if that takes longer than
``MLFACTOR_GRACE_PERIOD`` it is forced out.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import bentoml

from mlfactor.errors import ConfigError, ExitCode, MlfactorError
from mlfactor.log import configure_logging, event, get_logger
from mlfactor.masking import secret_values
from mlfactor.serving.app import ServiceState, build_app
from mlfactor.settings import Settings, load_settings

logger = get_logger("mlfactor.serving")
SERVICE_NAME = "mlfactor"
DRAIN_SECONDS = (
    1.0  # keep answering (readiness 503) this long after SIGTERM, capped at a quarter of the grace
)


def configure_service_logging(settings: Settings) -> None:
    """JSON logging for this process, BentoML's and uvicorn's loggers included; uvicorn's access log off."""
    configure_logging(settings.log_level, settings.log_format, secrets=secret_values(settings.environ))
    access = logging.getLogger("uvicorn.access")  # replaced by mlfactor's own `request` lines
    access.handlers.clear()
    access.propagate = False
    access.disabled = True


def service_config(settings: Settings) -> dict[str, Any]:
    """The ``@bentoml.service`` configuration derived from settings (BENTOML_CONFIG* still override it)."""
    return {
        "name": SERVICE_NAME,
        "workers": settings.workers,
        # mlfactor answers 504/429 itself; BentoML's own timeout is a backstop behind it.
        "traffic": {"timeout": settings.request_timeout + settings.grace_period + 5},
        "logging": {"access": {"enabled": False}},
    }


def _startup_settings() -> Settings:
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


def _install_shutdown(state: ServiceState, grace: float) -> None:
    """Wrap uvicorn's SIGTERM/SIGINT handlers: readiness 503 first, drain, stop, force after ``grace``."""
    if threading.current_thread() is not threading.main_thread():
        return
    started: dict[str, float] = {}

    def force() -> None:
        event(
            logger,
            "shutdown_forced",
            level=logging.ERROR,
            grace_period_s=grace,
            message="in-flight requests did not finish within MLFACTOR_GRACE_PERIOD",
        )
        _flush()
        os._exit(int(ExitCode.TERMINATED))

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def on_signal(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            if state.draining:
                if callable(previous):
                    previous(sig, frame)
                return
            state.draining = True
            started["at"] = time.monotonic()
            state.extra["shutdown_started"] = started["at"]
            event(
                logger,
                "shutdown_started",
                signal=signal.Signals(sig).name,
                grace_period_s=grace,
                pid=os.getpid(),
            )
            watchdog = threading.Timer(grace, force)
            watchdog.daemon = True
            watchdog.start()
            if callable(previous):
                stop = threading.Timer(min(DRAIN_SECONDS, grace / 4), previous, args=(sig, None))
                stop.daemon = True
                stop.start()

        signal.signal(signum, on_signal)


def _flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()


def _load(state: ServiceState, settings: Settings) -> None:
    """Load every model (background thread); on failure stop the whole service."""
    from mlfactor.serving.runtime import ServingRuntime

    started = time.perf_counter()
    try:
        runtime = ServingRuntime(settings)
        state.runtime = runtime
        runtime.load(stopping=lambda: state.draining)
    except MlfactorError as exc:
        _fail(state, str(exc), int(exc.exit_code))
        return
    except Exception as exc:  # noqa: BLE001 - any load failure stops the service with a clear event
        _fail(state, f"{type(exc).__name__}: {exc}", int(ExitCode.INTERNAL))
        return
    gc.collect()
    gc.freeze()  # the loaded model never changes: keep it out of every later collection
    state.loaded = True
    primary = runtime.primary
    event(
        logger,
        "service_ready",
        model_name=primary.name if primary else None,
        model_version=primary.version if primary else None,
        variants=sorted(runtime.models),
        load_s=round(time.perf_counter() - started, 3),
        pid=os.getpid(),
    )


def _fail(state: ServiceState, message: str, exit_code: int) -> None:
    state.failed = message
    event(logger, "model_load_failed", level=logging.ERROR, message=message, exit_code=exit_code)
    _flush()
    if not state.draining:
        os.kill(os.getppid(), signal.SIGTERM)  # stop the supervisor: no worker can serve without a model
    os._exit(exit_code)


@bentoml.service(**service_config(SETTINGS))
@bentoml.asgi_app(APP, path="/")
class MlfactorService:
    """Serves the configured registered model (or the model packed in the Bento)."""

    def __init__(self) -> None:
        configure_service_logging(SETTINGS)  # the worker may have reset logging since import
        from mlfactor.serving.metrics import ServiceMetrics

        STATE.metrics = ServiceMetrics()
        _install_shutdown(STATE, SETTINGS.grace_period)
        loader = threading.Thread(target=_load, args=(STATE, SETTINGS), name="mlfactor-load", daemon=True)
        loader.start()

    async def __is_ready__(self) -> bool:
        """Readiness: every model loaded and no shutdown under way."""
        return STATE.ready

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """Log the end of a graceful shutdown (in-flight requests are finished by now)."""
        began = STATE.extra.get("shutdown_started")
        event(
            logger,
            "shutdown_complete",
            pid=os.getpid(),
            elapsed_s=round(time.monotonic() - began, 3) if began else None,
        )
        _flush()
