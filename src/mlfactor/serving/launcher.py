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
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from mlfactor.errors import ExitCode, NotFoundError
from mlfactor.log import event, get_logger
from mlfactor.settings import Settings

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


def bento_environment(tag: str) -> dict[str, str]:
    """Return the runtime ``envs`` a built Bento declares, e.g. its ``MLFACTOR_BENTO_MODEL``.

    A container applies them; a local ``bentoml serve TAG`` does not, so the
    launcher does. Raises NotFoundError when the Bento is not in the local store.
    """
    import bentoml

    try:
        info = bentoml.bentos.get(tag).info
    except bentoml.exceptions.NotFound as exc:
        raise NotFoundError(
            f"Bento {tag!r} is not in the local BentoML store. List them with `bentoml list`; "
            "build one with `mlfactor build`."
        ) from exc
    return {env.name: env.value for env in info.envs if env.stage in ("all", "runtime") and env.value}


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


def run_server(settings: Settings, *, bento: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT or until the server stops; return the exit code to use."""
    command, workdir = serve_command(settings, bento=bento)
    environment = serve_environment(settings, bento=bento)
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
                signal=signal.Signals(signum).name,
                grace_period_s=settings.grace_period,
            )
        asked.append(signum)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    deadline: float | None = None
    try:
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
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _kill_group(child.pid)  # workers left behind by a supervisor that died
    if asked:
        return 0 if returncode in (0, -signal.SIGTERM) else returncode
    event(logger, "serve_stopped_unexpectedly", returncode=returncode)
    return returncode if returncode > 0 else int(ExitCode.SERVICE_UNAVAILABLE)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
