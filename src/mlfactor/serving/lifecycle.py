"""The worker's lifecycle: JSON logging, BentoML config from settings, model loading, bounded shutdown.

Used by :mod:`mlfactor.serving.service` (the BentoML entry module); kept apart
so it can be imported and tested without reading the environment.

Per worker the model loads in a background thread so ``/livez`` answers at
once and ``/readyz`` is 503 until every variant is loaded; an unreachable
registry is retried for ``MLFACTOR_REGISTRY_WAIT`` seconds, then the service
stops. On SIGTERM (or SIGINT) readiness turns 503 at once, the worker keeps
serving for a short drain window, then stops accepting, finishes in-flight
requests, runs its shutdown hook and exits; past ``MLFACTOR_GRACE_PERIOD`` it
is forced out.
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

from mlfactor.errors import ExitCode, MlfactorError
from mlfactor.log import configure_logging, event, get_logger
from mlfactor.masking import secret_values
from mlfactor.serving.state import ServiceState
from mlfactor.settings import Settings

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
    """Return the ``@bentoml.service`` configuration from settings (BENTOML_CONFIG* still override it)."""
    return {
        "name": SERVICE_NAME,
        "workers": settings.workers,
        # mlfactor answers 504/429 itself; BentoML's own timeout is a backstop behind it.
        "traffic": {"timeout": settings.request_timeout + settings.grace_period + 5},
        "logging": {"access": {"enabled": False}},
    }


def install_shutdown(state: ServiceState, grace: float) -> None:
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
        flush_logs()
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


def flush_logs() -> None:
    """Flush the log handlers and stdout (before a hard exit)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()


def load_models(state: ServiceState, settings: Settings) -> None:
    """Load every model (run in a background thread); on failure stop the whole service."""
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
    flush_logs()
    if not state.draining:
        os.kill(os.getppid(), signal.SIGTERM)  # stop the supervisor: no worker can serve without a model
    os._exit(exit_code)
