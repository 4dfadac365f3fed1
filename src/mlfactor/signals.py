"""SIGINT and SIGTERM: the one place mlfactor installs handlers for them.

Python lets only the main thread install a signal handler. Every helper here
checks that first and installs nothing elsewhere (returning ``False``), so the
library can be driven from a worker thread or a test runner's thread without
``ValueError: signal only works in main thread``.

* :func:`handle_stop_signals` installs a handler for the duration of a
  ``with`` block and puts the previous handlers back afterwards (the pipeline
  runner, the sweep driver, the local stack, the serve supervisor);
* :func:`wrap_stop_signals` replaces the handlers for good with a wrapper that
  is handed the handler it replaced (the service's drain-then-stop around
  uvicorn's own handlers);
* :class:`StopRequest` is the usual handler: it remembers the first signal.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

from mlfactor.errors import ExitCode

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], object]
"""A signal handler as :func:`signal.signal` takes it."""

Wrapper = Callable[[int, FrameType | None, Handler | None], object]
"""A handler that is also given the handler it replaced (None for SIG_DFL, SIG_IGN or a C handler)."""


def can_handle_signals() -> bool:
    """True in the main thread, the only one Python lets install signal handlers."""
    return threading.current_thread() is threading.main_thread()


def _callable(handler: object) -> Handler | None:
    return handler if callable(handler) else None


@contextlib.contextmanager
def handle_stop_signals(handler: Handler) -> Iterator[bool]:
    """Call ``handler`` on SIGINT and SIGTERM inside the block; restore the previous handlers after.

    Yields True when the handlers were installed, False (nothing installed) off the main thread.
    """
    if not can_handle_signals():
        yield False
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def wrap_stop_signals(wrapper: Wrapper) -> bool:
    """Replace the SIGINT and SIGTERM handlers for good by ``wrapper(signum, frame, previous)``.

    ``previous`` is the handler each signal had before (uvicorn's, for the
    service), or None when it was not a Python callable. Returns False and
    installs nothing off the main thread.
    """
    if not can_handle_signals():
        return False
    for sig in STOP_SIGNALS:
        previous = _callable(signal.getsignal(sig))

        def on_signal(signum: int, frame: FrameType | None, previous: Handler | None = previous) -> None:
            wrapper(signum, frame, previous)

        signal.signal(sig, on_signal)
    return True


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15; the number itself for a signal Python does not name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


@dataclass
class StopRequest:
    """A handler that remembers the first stop signal and sets :attr:`received`; later ones are counted."""

    signum: int | None = None
    count: int = 0
    received: threading.Event = field(default_factory=threading.Event, repr=False)

    def __call__(self, signum: int, frame: FrameType | None = None) -> None:
        """Record ``signum`` (the first one wins) and wake whoever waits on :attr:`received`."""
        if self.signum is None:
            self.signum = signum
        self.count += 1
        self.received.set()

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    @property
    def name(self) -> str | None:
        """The first signal's name (``SIGINT``, ``SIGTERM``), None before any."""
        return None if self.signum is None else signal_name(self.signum)

    @property
    def exit_code(self) -> ExitCode:
        """143 after SIGTERM, 130 after SIGINT (and before any signal: OK)."""
        return ExitCode.OK if self.signum is None else ExitCode.for_signal(self.signum)
