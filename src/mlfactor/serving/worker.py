"""A service worker's process life: logging, BentoML config, model loading, a shutdown that loses nothing.

Used by :mod:`mlfactor.serving.service` (the BentoML entry module); kept apart
so it can be imported and tested without reading the environment.

* Start: the model loads in a background thread (:func:`load_runtime`), so
  ``/livez`` answers at once and ``/readyz`` is 503 until every variant is
  loaded; an unreachable registry is retried for ``MLFACTOR_REGISTRY_WAIT``
  seconds. When loading fails, :func:`stop_service` stops the supervisor and
  exits with the error's code.
* SIGTERM or SIGINT (:func:`install_shutdown`): readiness turns 503 at once
  and every answer carries ``Connection: close``; the worker keeps serving
  for a short drain window; then the listener refuses new connections
  (:mod:`mlfactor.serving.listener`), what the kernel already queued is
  accepted and answered, uvicorn finishes in-flight requests and the worker
  exits; past ``MLFACTOR_GRACE_PERIOD`` it is forced out (143).
"""

from __future__ import annotations

import asyncio
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
from mlfactor.serving.follow import AliasFollower
from mlfactor.serving.listener import stop_accepting
from mlfactor.serving.runtime import ServingRuntime
from mlfactor.serving.state import WorkerState
from mlfactor.settings import Settings
from mlfactor.signals import Handler, signal_name, wrap_stop_signals

logger = get_logger("mlfactor.serving")
SERVICE_NAME = "mlfactor"
DRAIN_SECONDS = 1.0  # keep answering (readiness 503) this long after SIGTERM, at most a quarter of the grace
SETTLE_SECONDS = 0.5  # at most this long for accepted connections to deliver their request


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
        # mlfactor serves /metrics itself, with bounded labels (BentoML labels every raw path).
        "metrics": {"enabled": False},
    }


def load_runtime(state: WorkerState) -> int | None:
    """Load every model into ``state`` (blocking); on failure record it and return the exit code to use."""
    started = time.perf_counter()
    try:
        runtime = ServingRuntime(state.settings)
        state.runtime = runtime
        runtime.load(stopping=lambda: state.draining)
    except MlfactorError as exc:
        return _failed(state, str(exc), int(exc.exit_code))
    except Exception as exc:  # noqa: BLE001 - any load failure stops the service with a clear event
        return _failed(state, f"{type(exc).__name__}: {exc}", int(ExitCode.INTERNAL))
    gc.collect()
    gc.freeze()  # the loaded model changes only by a swap: keep it out of every later collection
    state.mark_loaded()
    for variant, model in runtime.models.items():
        state.metrics.serving(model.name, variant, model.version)
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
    interval = state.settings.follow_interval
    if runtime.followed and interval is not None:
        state.follower = AliasFollower(state, runtime.followed, interval)
        state.follower.start()
        event(logger, "follow_started", aliases=[f.uri for f in runtime.followed], interval_s=interval)
    return None


def _failed(state: WorkerState, message: str, exit_code: int) -> int:
    state.mark_failed(message)
    event(logger, "model_load_failed", level=logging.ERROR, message=message, exit_code=exit_code)
    return exit_code


def stop_service(state: WorkerState, exit_code: int) -> None:
    """Stop the supervisor (no worker can serve without a model) and exit this worker with ``exit_code``."""
    flush_logs()
    if not state.draining:
        os.kill(os.getppid(), signal.SIGTERM)
    os._exit(exit_code)


def flush_logs() -> None:
    """Flush the log handlers and stdout (before a hard exit)."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()


def install_shutdown(state: WorkerState, loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Wrap uvicorn's SIGTERM/SIGINT handlers with the drain; False (none installed) off the main thread.

    ``loop`` is the worker's event loop (where uvicorn accepts connections).
    """
    grace = state.settings.grace_period

    def on_signal(signum: int, frame: FrameType | None, previous: Handler | None) -> None:
        if not state.start_draining():
            if previous is not None:
                previous(signum, frame)
            return
        event(logger, "shutdown_started", signal=signal_name(signum), grace_period_s=grace, pid=os.getpid())
        watchdog = threading.Timer(grace, _force_exit, args=(grace,))
        watchdog.daemon = True
        watchdog.start()
        if previous is not None:
            stopper = threading.Thread(
                target=_drain_then_stop,
                args=(previous, signum, grace, loop),
                name="mlfactor-drain",
                daemon=True,
            )
            stopper.start()

    return wrap_stop_signals(on_signal)


def _drain_then_stop(
    stop: Handler, signum: int, grace: float, loop: asyncio.AbstractEventLoop | None
) -> None:
    """Keep serving for the drain window, close the listener without resets, then let uvicorn stop."""
    time.sleep(min(DRAIN_SECONDS, grace / 4))  # the window load balancers need to see readiness 503
    left = stop_accepting(wait=grace / 4)
    waiting = _settle(stop, loop, SETTLE_SECONDS)
    event(logger, "listener_closed", still_queued=max(left, 0), without_request=waiting, pid=os.getpid())
    stop(signum, None)


def _settle(stop: Handler, loop: asyncio.AbstractEventLoop | None, bound: float) -> int:
    """Wait (<= ``bound`` s) until every accepted connection has sent its request; return how many did not.

    uvicorn closes a connection with no request in progress when it stops, so a
    client that just connected would see its request reset. A connection taken
    off the kernel's queue becomes visible only a few loop iterations later, so
    the check runs on the loop and must hold three times in a row. ``stop`` is
    uvicorn's bound ``handle_exit``; without a uvicorn server there is nothing to wait for.
    """
    server = getattr(stop, "__self__", None)
    connections = getattr(getattr(server, "server_state", None), "connections", None)
    if connections is None or loop is None:
        return 0

    async def without_request() -> int:
        await asyncio.sleep(0)  # let accepts already scheduled create their connections first
        return sum(1 for c in list(connections) if getattr(c, "cycle", None) is None)

    deadline = time.monotonic() + bound
    calm = 0
    waiting = 0
    while time.monotonic() < deadline and calm < 3:
        try:
            waiting = asyncio.run_coroutine_threadsafe(without_request(), loop).result(timeout=bound)
        except (TimeoutError, RuntimeError):
            return waiting
        calm = calm + 1 if waiting == 0 else 0
        time.sleep(0.01)  # uvicorn offers no event for "request received"
    return waiting


def _force_exit(grace: float) -> None:
    event(
        logger,
        "shutdown_forced",
        level=logging.ERROR,
        grace_period_s=grace,
        message="in-flight requests did not finish within MLFACTOR_GRACE_PERIOD",
    )
    flush_logs()
    os._exit(int(ExitCode.TERMINATED))
