"""BentoML's TimeoutMiddleware as the service runs it: no timer outlives its request; timeouts still 504."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import httpx
from bentoml._internal.server.http.traffic import TimeoutMiddleware

from mlfactor.serving.bentoml_timeout import cancel_timeout_timers, leaves_its_timer


def pending_timers() -> int:
    """TimerHandles of the middleware still waiting to fire (not cancelled)."""
    return sum(
        1
        for handle in gc.get_objects()
        if isinstance(handle, asyncio.TimerHandle)
        and not handle.cancelled()
        and getattr(handle._callback, "__name__", "") == "_set_timer_out"
    )


async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI app: 200 "ok", after ``?sleep=S`` seconds when asked."""
    if scope["type"] != "http":
        return
    if scope["query_string"].startswith(b"sleep="):
        await asyncio.sleep(float(scope["query_string"].split(b"=")[1]))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def send_requests(timeout: float, paths: list[str]) -> list[httpx.Response]:
    """Send ``paths`` one after another through TimeoutMiddleware(answer, timeout)."""
    transport = httpx.ASGITransport(app=TimeoutMiddleware(answer, timeout=timeout))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return [await client.get(path) for path in paths]


def test_no_timer_is_left_pending_after_the_answers() -> None:
    """500 answered requests under a 45 s timeout leave no pending timer (BentoML alone leaves 500)."""
    assert cancel_timeout_timers()

    async def scenario() -> tuple[list[int], int]:
        answers = await send_requests(45.0, ["/"] * 500)
        return [r.status_code for r in answers], pending_timers()

    statuses, pending = asyncio.run(scenario())
    assert statuses == [200] * 500
    assert pending == 0


def test_a_slow_request_still_gets_bentoml_s_504() -> None:
    """A request slower than the timeout is answered 504 with BentoML's own body; a quick one 200."""
    assert cancel_timeout_timers()
    slow, quick = asyncio.run(send_requests(0.2, ["/?sleep=5", "/"]))
    expected = {"error": "Not able to process the request in 0.2 seconds"}
    assert (slow.status_code, slow.json()) == (504, expected)
    assert (quick.status_code, quick.text) == (200, "ok")


def test_applying_twice_changes_nothing() -> None:
    """The second call finds the middleware already fixed and keeps the same method."""
    assert cancel_timeout_timers()
    method = TimeoutMiddleware.__call__
    assert cancel_timeout_timers()
    assert TimeoutMiddleware.__call__ is method


def test_a_middleware_that_keeps_its_timer_is_not_replaced() -> None:
    """Only BentoML's known middleware is replaced; one that keeps (and can cancel) its handle is not."""

    class FixedUpstream:
        def _set_timer_out(self, waiter: asyncio.Future[None]) -> None:
            waiter.cancel()

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            loop = asyncio.get_running_loop()
            handle = loop.call_later(1.0, self._set_timer_out, loop.create_future())
            handle.cancel()

    class Known(FixedUpstream):
        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            loop = asyncio.get_running_loop()
            loop.call_later(self.timeout, self._set_timer_out, loop.create_future())  # type: ignore[attr-defined]

    assert not leaves_its_timer(FixedUpstream)
    assert leaves_its_timer(Known)
    assert cancel_timeout_timers()
    assert leaves_its_timer(TimeoutMiddleware) is False  # replaced: its timer is cancelled now
