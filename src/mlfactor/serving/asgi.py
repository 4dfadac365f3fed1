"""The ASGI shell over :class:`~mlfactor.serving.core.ServingCore`: what needs an event loop.

:class:`ServingApp` answers the core's routes and hands every other path to
the app it wraps (BentoML's, for its Swagger page and assets) or answers 404.
It is BentoML middleware (``add_asgi_middleware``), so mlfactor's routes never
pass through BentoML's router, and a complete app on its own (tests drive it
with ``httpx.ASGITransport``). Around the core it:

* reads the body up to ``MLFACTOR_MAX_REQUEST_BYTES`` (413 beyond);
* answers 429 beyond the per-worker share of ``MLFACTOR_MAX_CONCURRENCY``
  (probes are never limited) and 504 past ``MLFACTOR_REQUEST_TIMEOUT``, which
  covers reading, parsing, validating and predicting;
* runs large requests in a thread, so the event loop keeps answering probes;
* adds the request id, model and variant headers, and ``Connection: close``
  once shutdown started, so clients stop reusing connections;
* logs the access line, records the metrics, and schedules the shadow and
  prediction logging after the answer (at most :data:`MAX_PENDING_AFTER`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from mlfactor.log import event, get_logger
from mlfactor.serving.core import PROBES, ServingCore
from mlfactor.serving.messages import (
    AfterResponse,
    HttpRequest,
    HttpResponse,
    RequestContext,
    error_response,
    json_response,
)
from mlfactor.serving.protocol import RequestError

logger = get_logger("mlfactor.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLIENT_CLOSED = 499  # nginx's "client closed request", for the access line only
MAX_PENDING_AFTER = 64  # per worker: beyond this, shadow scoring and prediction logging are skipped


class ClientGoneError(Exception):
    """Raised when the client disconnects before its body arrived."""


class ServingApp:
    """mlfactor's routes over the core; every other path to ``app`` (BentoML's) or a JSON 404."""

    def __init__(self, app: ASGIApp | None = None, *, core: ServingCore) -> None:
        self.fallback = app
        self.core = core
        self.in_flight = 0
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def limit(self) -> int:
        """Requests one worker takes at once before answering 429."""
        settings = self.core.settings
        return max(1, math.ceil(settings.max_concurrency / max(1, settings.workers)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif self.fallback is not None:
            await self.fallback(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        request = HttpRequest(str(scope.get("method", "GET")), str(scope.get("path", "")), b"", headers)
        ctx = self.core.context(headers)
        if not self.core.owns(request.path) and self.fallback is not None:
            status = await self._pass_on(scope, receive, send, ctx)
            self.core.finish(request, ctx, status, time.perf_counter() - started)
            return
        if request.path in PROBES:
            answer = await self._answer(request, ctx, receive)
        elif self.in_flight >= self.limit:
            message = f"more than {self.limit} requests in flight in this worker (MLFACTOR_MAX_CONCURRENCY)"
            answer = error_response(429, "TOO_MANY_REQUESTS", message, ctx)
        else:
            self.in_flight += 1
            try:
                answer = await self._answer_in_time(request, ctx, receive)
            finally:
                self.in_flight -= 1
        if answer.status != CLIENT_CLOSED:
            await self._send(send, answer, ctx)
        self.core.finish(request, ctx, answer.status, time.perf_counter() - started)
        if answer.after is not None:
            self._schedule(answer.after)

    async def _answer_in_time(
        self, request: HttpRequest, ctx: RequestContext, receive: Receive
    ) -> HttpResponse:
        timeout = self.core.settings.request_timeout
        if not timeout:
            return await self._answer(request, ctx, receive)
        try:
            async with asyncio.timeout(timeout):  # no extra task per request, unlike wait_for
                return await self._answer(request, ctx, receive)
        except TimeoutError:
            message = f"no answer within {timeout:g} s (MLFACTOR_REQUEST_TIMEOUT)"
            return error_response(504, "TIMEOUT", message, ctx)

    async def _answer(self, request: HttpRequest, ctx: RequestContext, receive: Receive) -> HttpResponse:
        try:
            body = await _read_body(receive, request.headers, self.core.settings.max_request_bytes)
        except RequestError as exc:
            return json_response({**exc.body(), **ctx.fields()}, exc.status)
        except ClientGoneError:
            return HttpResponse(CLIENT_CLOSED, b"")
        full = HttpRequest(request.method, request.path, body, request.headers)
        if self.core.offload(full):
            return await asyncio.to_thread(self.core.handle, full, ctx)
        return self.core.handle(full, ctx)

    async def _send(self, send: Send, answer: HttpResponse, ctx: RequestContext) -> None:
        headers = [
            (b"content-type", answer.media_type.encode("latin-1")),
            (b"content-length", str(len(answer.body)).encode()),
            *_encode(ctx.headers()),
            *_encode(answer.headers),
        ]
        if self.core.state.draining:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def _pass_on(self, scope: Scope, receive: Receive, send: Send, ctx: RequestContext) -> int:
        """Let the wrapped app answer; add our headers; return the status it sent."""
        fallback = self.fallback
        if fallback is None:
            return 404
        status = [500]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                extra = _encode(ctx.headers())
                if self.core.state.draining:
                    extra.append((b"connection", b"close"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await fallback(scope, receive, send_with_headers)
        return status[0]

    def _schedule(self, work: AfterResponse) -> None:
        """Run the shadow and prediction logging after the answer, never delaying or changing it."""
        if len(self._pending) >= MAX_PENDING_AFTER:
            event(
                logger,
                "shadow_skipped",
                level=logging.WARNING,
                request_id=work.request_id,
                pending=len(self._pending),
            )
            return
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.core.run_after, work))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


def _encode(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1", errors="replace")) for k, v in headers.items()]


async def _read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The whole request body; RequestError 413 as soon as it is known to exceed ``limit``."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413,
            "request body too large",
            [f"got {int(declared)} bytes; the limit is {limit} bytes (MLFACTOR_MAX_REQUEST_BYTES)"],
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(
                413,
                "request body too large",
                [f"more than {limit} bytes; the limit is {limit} bytes (MLFACTOR_MAX_REQUEST_BYTES)"],
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol when running on its own (no startup work)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
