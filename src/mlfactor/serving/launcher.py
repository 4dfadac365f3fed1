"""Run ``bentoml serve`` in the foreground with mlfactor's settings, and bound its shutdown.

:func:`serve_command` builds the command line (testable without starting
anything); :func:`run_server` starts it in its own process group with
:meth:`Settings.child_environment`, forwards SIGTERM/SIGINT, waits at most the
grace period plus a margin, then kills the group. A server that stops without
being asked (for example when the model could not be loaded) makes the
launcher exit non-zero.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from mlfactor.errors import BackingServiceError, ExitCode
from mlfactor.log import event, get_logger
from mlfactor.serving.bento import bento_environment
from mlfactor.serving.runtime import prefetch_served_models
from mlfactor.settings import Settings
from mlfactor.signals import handle_stop_signals, signal_name

logger = get_logger(__name__)

SERVICE_TARGET = "service:MlfactorService"
PACKAGE_TARGET = "mlfactor.serving.service:MlfactorService"
KILL_MARGIN = 5.0  # seconds past the grace period before the launcher kills what is left


def serve_command(settings: Settings, *, bento: str | None = None) -> tuple[list[str], Path]:
    """Return the ``bentoml serve`` command line and working folder (source tree, or a built Bento)."""
    if bento:
        target, workdir = bento, settings.project_dir
    elif (settings.project_dir / "service.py").is_file():
        target, workdir = SERVICE_TARGET, settings.project_dir
    else:
        target, workdir = PACKAGE_TARGET, settings.project_dir
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        target,
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--timeout-graceful-shutdown",
        str(max(1, math.ceil(settings.grace_period))),
    ]
    if not bento:
        command += ["--working-dir", str(workdir)]
    return command, workdir


def serve_environment(settings: Settings, *, bento: str | None = None) -> dict[str, str]:
    """Return the server's environment: a Bento's own envs, then settings' child environment.

    Host and port are made explicit from settings, so they always win.
    """
    declared = (
        {k: v for k, v in bento_environment(bento).items() if k not in settings.environ} if bento else {}
    )
    return settings.child_environment(
        {**declared, "BENTOML_HOST": settings.host, "BENTOML_PORT": str(settings.port)}
    )


def port_taken(host: str, port: int) -> bool:
    """True when ``host:port`` cannot be bound (someone listens there), as BentoML would bind it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def check_port(host: str, port: int, retry: Callable[[int], str]) -> None:
    """Raise BackingServiceError (exit 69) naming a free port when ``host:port`` is taken.

    ``retry(free_port)`` is the command line to suggest, e.g. ``PORT=3001 mlfactor serve``.
    """
    if not port_taken(host, port):
        return
    free = next((p for p in range(port + 1, port + 50) if not port_taken(host, p)), None)
    hint = f"serve on a free one: {retry(free)}" if free else "serve on another port"
    raise BackingServiceError(f"port {port} on {host} is already in use; stop what listens there, or {hint}")


def run_server(settings: Settings, *, bento: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT or until the server stops; return the exit code to use.

    A port already in use raises BackingServiceError (exit 69) before anything starts.
    """
    variable = "BENTOML_PORT" if "BENTOML_PORT" in settings.environ else "PORT"
    check_port(settings.host, settings.port, lambda free: f"{variable}={free} mlfactor serve")
    command, workdir = serve_command(settings, bento=bento)
    environment = serve_environment(settings, bento=bento)
    if not bento:  # resolve the model on the other core while BentoML starts
        environment.update(prefetch_served_models(settings))
    event(
        logger,
        "serve_starting",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        model_uri=environment.get("MLFACTOR_BENTO_MODEL") or settings.resolved_model_uri,
        grace_period_s=settings.grace_period,
    )
    sys.stdout.flush()
    child = subprocess.Popen(command, cwd=workdir, env=environment, start_new_session=True)
    asked: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not asked:
            event(
                logger,
                "serve_stopping",
                signal=signal_name(signum),
                grace_period_s=settings.grace_period,
            )
        asked.append(signum)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)

    deadline: float | None = None
    with handle_stop_signals(forward):
        while True:
            try:
                returncode = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            if asked and deadline is None:
                deadline = time.monotonic() + settings.grace_period + KILL_MARGIN
            if deadline is not None and time.monotonic() > deadline:
                event(logger, "serve_killed", grace_period_s=settings.grace_period)
                _kill_group(child.pid)
                child.wait()
                return int(ExitCode.TERMINATED)
    _kill_group(child.pid)  # workers left behind by a supervisor that died
    if asked:
        return 0 if returncode in (0, -signal.SIGTERM) else returncode
    event(logger, "serve_stopped_unexpectedly", returncode=returncode)
    return returncode if returncode > 0 else int(ExitCode.SERVICE_UNAVAILABLE)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
