"""BentoML's request timeout without its per-request timer left pending for the whole timeout.

BentoML wraps every service in ``TimeoutMiddleware``, which schedules
``loop.call_later(timeout, ...)`` for each request and never cancels it. The
timer outlives the answer by the whole ``traffic.timeout`` (mlfactor sets it
to ``MLFACTOR_REQUEST_TIMEOUT`` + grace + 5 s, a backstop behind its own
504) and keeps the request's future and context alive (with BentoML's
OpenTelemetry span: about 20 objects). At 1,400 requests/s that is over a
million live objects, and each full garbage collection took 100 to 230 ms,
stopping the event loop: the whole p99 tail of the service under load.

:func:`cancel_timeout_timers` gives the middleware the same behaviour with the
timer cancelled once the request is over (a cancelled timer is dropped from
the loop's heap). It is applied by the service module before BentoML builds
its app, and only to the middleware it knows (its source schedules the timer
without keeping the handle); a BentoML that changed it is left as it is.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from typing import Any

from mlfactor.log import event, get_logger

logger = get_logger("mlfactor.serving")

Scope = dict[str, Any]
# The statement BentoML 1.4 schedules its timer with, the handle not kept (so never cancelled).
_UNKEPT_TIMER = re.compile(r"^\s*loop\.call_later\(self\.timeout, self\._set_timer_out", re.MULTILINE)


async def _call(self: Any, scope: Scope, receive: Any, send: Any) -> None:
    """``TimeoutMiddleware.__call__`` of BentoML 1.4, with the timer cancelled when the request ends."""
    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    answer = asyncio.ensure_future(self.app(scope, receive, _send))
    try:
        await waiter
    except TimeoutError:
        if answer.cancel():
            await _send_timeout(send, self.timeout)
        return
    finally:
        timer.cancel()
    await answer


async def _send_timeout(send: Any, timeout: float) -> None:
    """BentoML's 504 answer, byte for byte as its JSONResponse renders it."""
    body = json.dumps(
        {"error": f"Not able to process the request in {timeout} seconds"}, separators=(",", ":")
    ).encode()
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 504, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def leaves_its_timer(middleware: type) -> bool:
    """True when ``middleware.__call__`` is the known one: ``call_later`` with the handle thrown away."""
    try:
        source = inspect.getsource(middleware.__call__)
    except (OSError, TypeError):
        return False
    return callable(getattr(middleware, "_set_timer_out", None)) and bool(_UNKEPT_TIMER.search(source))


def cancel_timeout_timers() -> bool:
    """Make BentoML's ``TimeoutMiddleware`` cancel its timer when a request ends; True when applied."""
    try:
        from bentoml._internal.server.http.traffic import TimeoutMiddleware
    except ImportError:
        return False
    if getattr(TimeoutMiddleware.__call__, "__module__", "") == __name__:
        return True
    if not leaves_its_timer(TimeoutMiddleware):  # another BentoML: left as it made it, and the log says so
        event(
            logger,
            "bentoml_timeout_unpatched",
            reason="BentoML's TimeoutMiddleware is not the version this fix knows; left as it is",
        )
        return False
    TimeoutMiddleware.__call__ = _call  # type: ignore[method-assign,assignment]
    return True
