"""Start a step's kernel with the step's environment, and stop it from outside when needed.

papermill has no ``env`` argument: the kernel inherits the runner's process
environment. nbclient starts kernels through ``kernel_manager_class``, whose
``start_kernel(**kw)`` passes ``env`` on to the process launcher, so
:func:`kernel_manager_class` returns a ``KernelManager`` subclass bound to one
step's environment (secrets included, never parameters). It records the
kernel's process group in a :class:`KernelHandle`, so the runner can stop the
kernel on timeout or SIGTERM (papermill does not forward signals,
papermill #508): ipykernel runs in its own session, so the group holds the
kernel and anything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.manager import AsyncKernelManager, KernelManager

from mlfactor.kernel_setup import EXTENSION

KERNEL_LOG = "kernel.log"
# ipykernel lines that say nothing about the notebook (its shutdown, its transport).
_ROUTINE = ("KeyboardInterrupt caught in kernel", "running over TCP without encryption")


class KernelHandle:
    """The process group of one step's kernel, and why it was stopped (if it was)."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.pgid: int | None = None
        self.pid: int | None = None
        self.stop_reason: str | None = None
        self._lock = threading.Lock()

    def started(self, pid: int | None, pgid: int | None) -> None:
        """Record the kernel's process; stop it at once if a stop was requested meanwhile."""
        with self._lock:
            self.pid, self.pgid = pid, pgid
            pending = self.stop_reason
        if pending is not None:
            self.signal(signal.SIGKILL)

    def request_stop(self, reason: str, signum: int = signal.SIGTERM) -> None:
        """Mark the kernel as stopped for ``reason`` (timeout, interrupted) and signal its group."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
        self.signal(signum)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the kernel's process group (no-op when not started or gone)."""
        pgid = self.pgid
        if pgid is None or pgid <= 1 or pgid == os.getpgid(0):
            if self.pid is not None:
                _quiet_kill(self.pid, signum)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)

    def alive(self) -> bool:
        """Tell whether a process of the kernel's group still runs (zombies do not count)."""
        return bool(self.pgid is not None and group_members(self.pgid))

    def stop(self, reason: str, grace: float) -> None:
        """SIGTERM the kernel's group, then SIGKILL whatever is left after ``grace`` seconds."""
        self.request_stop(reason, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            self.signal(signal.SIGKILL)


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of process group ``pgid``, wherever they were re-parented."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def _quiet_kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def kernel_manager_class(env: Mapping[str, str], handle: KernelHandle, work: Path) -> type[KernelManager]:
    """Return a KernelManager class that starts its kernel with ``env`` and reports it to ``handle``.

    The kernel talks to the runner over Unix sockets in the step's private
    folder ``work`` (IPC: no TCP port, nothing readable by other users), loads
    :mod:`mlfactor.kernel_setup` before the first cell, and writes its own
    stdout and stderr (ipykernel's log lines, and the copy it keeps of output
    written at the file-descriptor level) to ``work/KERNEL_LOG``: never to the
    runner's terminal, and masked before the runner keeps it.
    """
    kernel_env = dict(env)
    log_path = work / KERNEL_LOG

    class StepKernelManager(AsyncKernelManager):
        """AsyncKernelManager (nbclient drives kernels asynchronously) bound to one step's environment."""

        def __init__(self, **kw: Any) -> None:
            kw.setdefault("transport", "ipc")
            kw.setdefault("ip", str(work / "kernel"))
            super().__init__(**kw)

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            kw["env"] = dict(kernel_env)
            kw["extra_arguments"] = [*kw.get("extra_arguments", []), f"--ext={EXTENSION}"]
            with log_path.open("ab") as log:
                kw["stdout"] = kw["stderr"] = log
                await KernelManager._async_start_kernel(self, **kw)
            provisioner: Any = self.provisioner
            handle.started(getattr(provisioner, "pid", None), getattr(provisioner, "pgid", None))

    return StepKernelManager


def read_kernel_log(work: Path) -> str:
    """What the kernel wrote outside the notebook, without ipykernel's routine lines; "" when nothing else."""
    path = work / KERNEL_LOG
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    kept = [line for line in lines if line.strip() and not any(noise in line for noise in _ROUTINE)]
    return "\n".join(kept) + "\n" if kept else ""
