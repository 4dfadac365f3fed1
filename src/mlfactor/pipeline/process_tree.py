"""Find and end every process a step started, wherever it went.

A kernel runs in its own process group, but what it starts may leave it: a
``setsid`` grandchild (a daemonised server, ``nohup``, ``start_new_session=True``)
is in another session and is re-parented to init when its parent exits, so
neither the group nor the process tree finds it. Every process a kernel
starts inherits its environment, though, and the runner puts the step's own
run id there (``MLFACTOR_RUN_ID``): :func:`step_processes` finds processes
by that marker and by the kernel's process group. A process that empties
its environment (``env -i``) is out of reach of this (not of a container's
or a Kubernetes pod's end).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil

MARKER_VARIABLE = "MLFACTOR_RUN_ID"


def step_processes(marker: str | None, pgid: int | None) -> list[psutil.Process]:
    """Live (non-zombie) processes carrying ``MARKER_VARIABLE=marker`` or in process group ``pgid``."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            in_group = pgid is not None and pgid > 1 and os.getpgid(proc.pid) == pgid
            marked = marker is not None and not in_group and proc.environ().get(MARKER_VARIABLE) == marker
            if (in_group or marked) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return found


def signal_processes(processes: list[psutil.Process], signum: int) -> None:
    """Send ``signum`` to each process (those already gone are skipped)."""
    for proc in processes:
        with contextlib.suppress(psutil.Error, OSError):
            proc.send_signal(signum)


def end_processes(marker: str | None, pgid: int | None, grace: float) -> list[int]:
    """SIGTERM every process of the step, SIGKILL what is left after ``grace`` s; return the PIDs ended."""
    targets = step_processes(marker, pgid)
    if not targets:
        return []
    signal_processes(targets, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _, alive = psutil.wait_procs(targets, timeout=0.05)
        if not alive:
            break
    signal_processes(step_processes(marker, pgid), signal.SIGKILL)
    return sorted(p.pid for p in targets)
