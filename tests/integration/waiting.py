"""Waiting on a condition a test cannot be told about: one helper instead of a sleep loop per test.

A started process, a file a notebook writes, a worker the supervisor replaces: none of them send
the test an event, so :func:`wait_until` checks the condition itself until it holds, fails at once
when the process it depends on has died, and fails with ``what`` after ``timeout`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
POLL_S = 0.1


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], str | None] | None = None,
) -> T:
    """Return ``condition()``'s first truthy value; ``alive()`` returns why waiting is pointless, if it is."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        died = alive() if alive is not None else None
        if died:
            raise AssertionError(died)
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g} s")
        time.sleep(POLL_S)
