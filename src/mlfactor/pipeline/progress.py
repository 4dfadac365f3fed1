"""Live progress of a pipeline run on a terminal: each running step, cell i of n, elapsed time.

Off a terminal (cron, Kubernetes, CI) there is no display, only the JSON
events the runner logs. On a terminal, one status line is redrawn in place on
stdout; log lines written meanwhile clear it first and it is redrawn after, so
the two never garble each other.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import IO, Protocol


class Progress(Protocol):
    """What the runner reports as steps advance."""

    def step_started(self, step: str, cells: int) -> None:
        """Report that a step's kernel is starting; its notebook has ``cells`` cells."""

    def cell_started(self, step: str, index: int, cells: int) -> None:
        """Cell ``index`` (1-based) of ``cells`` started in ``step``."""

    def step_finished(self, step: str, status: str) -> None:
        """Report that a step ended with ``status``."""

    def close(self) -> None:
        """Stop displaying."""


class NullProgress:
    """No display (JSON events only)."""

    def step_started(self, step: str, cells: int) -> None:
        """Do nothing."""

    def cell_started(self, step: str, index: int, cells: int) -> None:
        """Do nothing."""

    def step_finished(self, step: str, status: str) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


class _StatusAwareStream:
    """A stream that clears the status line before each write and redraws it after."""

    def __init__(self, target: IO[str], display: TerminalProgress) -> None:
        self._target = target
        self._display = display

    def write(self, text: str) -> int:
        with self._display.lock:
            self._target.write("\r\x1b[2K")
            written = self._target.write(text)
            if text.endswith("\n"):
                self._target.write(self._display.line())
            self._target.flush()
        return written

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return True


class TerminalProgress:
    """A status line like ``train cell 4/12 3.1s | evaluate starting 0.4s`` redrawn twice a second."""

    def __init__(self, stream: IO[str] | None = None, *, interval: float = 0.5) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.RLock()
        self._steps: dict[str, tuple[int, int, float]] = {}
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._loop, name="mlfactor-progress", daemon=True)
        self._handlers: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []

    def start(self) -> TerminalProgress:
        """Route log handlers writing to the terminal through the display, and start redrawing."""
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.stream:
                self._handlers.append((handler, handler.stream))
                handler.setStream(_StatusAwareStream(self.stream, self))
        self._thread.start()
        return self

    def line(self) -> str:
        """Return the current status text."""
        now = time.monotonic()
        parts = []
        for step, (index, cells, since) in self._steps.items():
            where = f"cell {index}/{cells}" if index else "starting kernel"
            parts.append(f"{step} {where} {now - since:.1f}s")
        return ("\x1b[2m" + " | ".join(parts) + "\x1b[0m") if parts else ""

    def _draw(self) -> None:
        with self.lock:
            self.stream.write("\r\x1b[2K" + self.line())
            self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._draw()

    def step_started(self, step: str, cells: int) -> None:
        """Show ``step`` as starting."""
        with self.lock:
            self._steps[step] = (0, cells, time.monotonic())
        self._draw()

    def cell_started(self, step: str, index: int, cells: int) -> None:
        """Show the cell ``step`` is in."""
        with self.lock:
            since = self._steps.get(step, (0, cells, time.monotonic()))[2]
            self._steps[step] = (index, cells, since)
        self._draw()

    def step_finished(self, step: str, status: str) -> None:
        """Drop ``step`` from the line."""
        with self.lock:
            self._steps.pop(step, None)
        self._draw()

    def close(self) -> None:
        """Stop redrawing, clear the line and give the log handlers their stream back."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        with self.lock:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
        for handler, stream in self._handlers:
            handler.setStream(stream)


def make_progress(enabled: bool | None, stream: IO[str] | None = None) -> Progress:
    """Return a terminal display when ``enabled`` (None: when ``stream`` is a terminal), else no display."""
    target = stream or sys.stdout
    if enabled is None:
        enabled = bool(getattr(target, "isatty", lambda: False)())
    return TerminalProgress(target).start() if enabled else NullProgress()
