"""One access line per request, plus the limits every request passes: 429, 504, request id.

:class:`RequestMiddleware` wraps the service's Starlette app: it takes the
request id from ``X-Request-ID`` (or makes one) and returns it, adds the model
name, version and variant to every response's headers, answers 429 over the
per-worker concurrency limit and 504 past the request timeout, and logs one
JSON ``request`` line (logger ``mlfactor.access``) and the Prometheus metrics
when the response is complete.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlfactor.log import event, get_logger
from mlfactor.serving.state import ServiceState

access_logger = get_logger("mlfactor.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=str).encode("utf-8")


def json_response(data: Any, status: int = 200) -> Response:
    """Return a JSON response without Starlette's slower JSONResponse rendering."""
    return Response(_dumps(data), status_code=status, media_type="application/json")


class RequestMiddleware:
    """Request id, concurrency limit (429), timeout (504), access log line and metrics."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state
        self.in_flight = 0

    def _limit(self) -> int:
        settings = self.state.settings
        if settings is None:
            return 1 << 30
        return max(1, math.ceil(int(settings.max_concurrency) / max(1, self.state.workers)))

    def _default_model(self) -> tuple[str, str, str]:
        runtime = self.state.runtime
        model = runtime.primary if runtime is not None else None
        if model is None:
            return (runtime.model_name if runtime is not None else "", "", "")
        return model.name, model.version, runtime.planned[0][0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        name, version, variant = self._default_model()
        ctx: dict[str, Any] = {
            "request_id": request_id,
            "model_name": name,
            "model_version": version,
            "variant": variant,
            "rows": 0,
        }
        scope["mlfactor"] = ctx
        answer: dict[str, Any] = {"status": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["started"] = True
                extra = [
                    (b"x-request-id", ctx["request_id"].encode()),
                    (b"x-mlfactor-model", str(ctx["model_name"]).encode()),
                    (b"x-mlfactor-model-version", str(ctx["model_version"]).encode()),
                    (b"x-mlfactor-variant", str(ctx["variant"]).encode()),
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._finish(scope, ctx, answer["status"], started)

        if self.in_flight >= self._limit():
            message = f"more than {self._limit()} requests in flight in this worker; retry later"
            await error_response(429, "TOO_MANY_REQUESTS", message, ctx)(scope, receive, send_wrapper)
            return
        self.in_flight += 1
        try:
            await self._call_with_timeout(scope, receive, send_wrapper, ctx, answer)
        finally:
            self.in_flight -= 1

    async def _call_with_timeout(
        self, scope: Scope, receive: Receive, send: Send, ctx: dict[str, Any], answer: dict[str, Any]
    ) -> None:
        timeout = self.state.settings.request_timeout if self.state.settings is not None else None
        if not timeout:
            await self.app(scope, receive, send)
            return
        task = asyncio.ensure_future(self.app(scope, receive, send))
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if task in done:
            task.result()
            return
        if answer["started"]:
            await task  # the body is being sent: let it finish
            return
        task.cancel()
        message = f"no answer within {timeout:g} s (MLFACTOR_REQUEST_TIMEOUT)"
        await error_response(504, "TIMEOUT", message, ctx)(scope, receive, send)

    def _finish(self, scope: Scope, ctx: dict[str, Any], status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        path = scope.get("path", "")
        event(
            access_logger,
            "request",
            method=scope.get("method"),
            path=path,
            status=status,
            latency_ms=round(seconds * 1000, 3),
            request_id=ctx["request_id"],
            model_name=ctx["model_name"],
            model_version=ctx["model_version"],
            variant=ctx["variant"],
            rows=ctx["rows"],
        )
        metrics = self.state.metrics
        if metrics is not None:
            metrics.observe(
                path=path,
                status=status,
                model=str(ctx["model_name"]),
                version=str(ctx["model_version"]),
                variant=str(ctx["variant"]),
                seconds=seconds,
                rows=ctx["rows"],
            )


def error_response(status: int, code: str, message: str, ctx: dict[str, Any]) -> Response:
    """Return a JSON error answer carrying the request id, model and variant."""
    return json_response({"error_code": code, "message": message, **context_fields(ctx)}, status)


def context_fields(ctx: dict[str, Any]) -> dict[str, Any]:
    """Return the request id, model and variant every answer body repeats."""
    return {
        "request_id": ctx["request_id"],
        "model": {"name": ctx["model_name"], "version": ctx["model_version"]},
        "variant": ctx["variant"],
    }
