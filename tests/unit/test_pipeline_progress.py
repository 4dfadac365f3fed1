"""Progress display: a live status line on a terminal, nothing otherwise."""

from __future__ import annotations

import io
import logging

from mlfactor.pipeline.progress import NullProgress, TerminalProgress, make_progress


class FakeTerminal(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        """Claim to be a terminal."""
        return True


def test_no_display_off_a_terminal() -> None:
    """When stdout is not a terminal there is no display (JSON events only)."""
    assert isinstance(make_progress(None, io.StringIO()), NullProgress)


def test_status_line_shows_step_cell_and_elapsed() -> None:
    """The line names each running step, its cell i of n and the elapsed seconds; log lines clear it."""
    stream = FakeTerminal()
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        progress = make_progress(None, stream)
        assert isinstance(progress, TerminalProgress)
        progress.step_started("train", 5)
        assert "train starting kernel" in progress.line()
        progress.cell_started("train", 2, 5)
        progress.step_started("other", 3)
        line = progress.line()
        assert "train cell 2/5" in line and "other starting kernel" in line and "s" in line
        root.warning("hello")
        progress.step_finished("train", "FINISHED")
        assert "train" not in progress.line()
        progress.close()
        assert handler.stream is stream
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    assert "\r\x1b[2Khello\n" in text
