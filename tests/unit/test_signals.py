"""The one SIGINT/SIGTERM helper: installed for a block, restored after, main thread only."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from mlfactor.errors import ExitCode
from mlfactor.signals import StopRequest, handle_stop_signals, wrap_stop_signals


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    """Put SIGINT's and SIGTERM's handlers back as the test found them."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGTERM, ExitCode.TERMINATED), (signal.SIGINT, ExitCode.INTERRUPTED)],
    ids=["term", "int"],
)
def test_a_stop_signal_is_recorded_inside_the_block(restore_handlers: None, sig: int, code: ExitCode) -> None:
    """A stop signal reaches the handler inside the block (no KeyboardInterrupt); the old one is back."""
    before = signal.getsignal(sig)
    request = StopRequest()
    with handle_stop_signals(request) as installed:
        signal.raise_signal(sig)
        assert request.received.wait(5)
    assert installed
    assert (request.signum, request.name, request.exit_code) == (sig, signal.Signals(sig).name, code)
    assert signal.getsignal(sig) is before


def test_the_first_signal_wins_and_later_ones_are_counted(restore_handlers: None) -> None:
    """A second signal does not overwrite the first (SIGINT then SIGTERM still exits 130)."""
    request = StopRequest()
    with handle_stop_signals(request):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)
    assert (request.signum, request.count, request.exit_code) == (signal.SIGINT, 2, ExitCode.INTERRUPTED)


def test_off_the_main_thread_nothing_is_installed(restore_handlers: None) -> None:
    """From a worker thread the helpers install nothing and say so, instead of raising ValueError."""
    seen: list[object] = []

    def work() -> None:
        with handle_stop_signals(StopRequest()) as installed:
            seen.append(installed)
        seen.append(wrap_stop_signals(lambda signum, frame, previous: None))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [False, False]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_permanent_wrap_is_handed_the_handler_it_replaced(restore_handlers: None) -> None:
    """wrap_stop_signals hands the wrapper the handler it replaced (the service wraps uvicorn's)."""
    inner = StopRequest()
    signal.signal(signal.SIGTERM, inner)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    calls: list[tuple[int, bool]] = []

    def wrapper(signum: int, frame: FrameType | None, previous: object) -> None:
        calls.append((signum, previous is not None))
        if callable(previous):
            previous(signum, frame)

    assert wrap_stop_signals(wrapper)
    signal.raise_signal(signal.SIGTERM)
    signal.raise_signal(signal.SIGINT)
    assert calls == [(signal.SIGTERM, True), (signal.SIGINT, False)]
    assert inner.signum == signal.SIGTERM
