"""Start a step's kernel with the step's environment, and stop it from outside when needed.

papermill has no ``env`` argument: the kernel inherits the runner's process
environment. nbclient starts kernels through ``kernel_manager_class``, whose
``start_kernel(**kw)`` passes ``env`` on to the process launcher, so
:func:`kernel_manager_class` returns a ``KernelManager`` subclass bound to one
step's environment (secrets included, never parameters). It records the
kernel's process group in a :class:`KernelHandle`, so the runner can stop the
kernel on timeout or SIGTERM (papermill does not forward signals,
papermill #508): ipykernel runs in its own session, so the group holds the
kernel and what it started, and :mod:`mlfactor.pipeline.process_tree` also
finds what left the group (a ``setsid`` grandchild) by the step's marker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager, KernelManager

from mlfactor.kernel_setup import EXTENSION
from mlfactor.pipeline.process_tree import end_processes, signal_processes, step_processes

KERNEL_LOG = "kernel.log"
STOP_GRACE_S = 3.0
"""Seconds between SIGTERM and SIGKILL when a step's processes are stopped."""
# ipykernel lines that say nothing about the notebook (its shutdown, its transport).
_ROUTINE = ("KeyboardInterrupt caught in kernel", "running over TCP without encryption")


class KernelHandle:
    """One step's kernel: its process group, the step's process marker, and why it was stopped."""

    def __init__(self, step: str, marker: str | None = None) -> None:
        self.step = step
        self.marker = marker
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
        """Mark the kernel as stopped for ``reason`` (timeout, interrupted) and signal its processes."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
        self.signal(signum)

    def _group(self) -> int | None:
        pgid = self.pgid
        return None if pgid is None or pgid <= 1 or pgid == os.getpgid(0) else pgid

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the kernel's group and every process carrying the step's marker."""
        targets = step_processes(self.marker, self._group())
        if self.pid is not None and not any(p.pid == self.pid for p in targets):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signum)
        signal_processes(targets, signum)

    def alive(self) -> bool:
        """Tell whether a process of the step still runs (zombies do not count)."""
        return bool(step_processes(self.marker, self._group()))

    def stop(self, reason: str, grace: float) -> None:
        """SIGTERM the step's processes, then SIGKILL whatever is left after ``grace`` seconds."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
        end_processes(self.marker, self._group(), grace)

    def end_leftovers(self, grace: float) -> list[int]:
        """After the kernel shut down: end whatever the step left running; return those PIDs."""
        return end_processes(self.marker, self._group(), grace)


IPC_PATH_LIMIT = 100  # a Unix socket path holds 107 bytes; jupyter_client appends "-<channel port>"


def ipc_fits(work: Path) -> bool:
    """Whether the kernel's Unix sockets fit in ``work`` (a deep TMPDIR makes the path too long to bind)."""
    return len(os.fsencode(work / "kernel")) + 6 <= IPC_PATH_LIMIT


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
            if ipc_fits(work):
                kw.setdefault("transport", "ipc")
                kw.setdefault("ip", str(work / "kernel"))
            # else jupyter_client's default: TCP on 127.0.0.1 (a socket path that long cannot be bound)
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
