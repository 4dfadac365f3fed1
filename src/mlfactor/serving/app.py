"""The HTTP face of the service: /predict, /invocations, /metadata, and one access line per request.

A small Starlette application mounted into the BentoML service (BentoML keeps
``/livez``, ``/readyz``, ``/metrics`` and the worker lifecycle). It parses
bodies itself so a bad request gets one 400 naming every bad field, and its
:class:`RequestMiddleware` gives every response and access line the request
id, model name, version and variant, answers 429 over the concurrency limit,
504 past the request timeout and 413 over the size limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlfactor.log import event, get_logger
from mlfactor.serving.protocol import (
    RequestError,
    check_content_type,
    decode_json,
    parse_invocations,
    parse_predict,
)
from mlfactor.serving.variants import KEY_HEADER, new_key

access_logger = get_logger("mlfactor.access")
logger = get_logger("mlfactor.serving")

CLIENT_CLOSED = 499  # nginx's "client closed request", for the access line only
INLINE_ROWS = 256  # smaller requests predict on the event loop: a thread hop costs more than the model
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass
class ServiceState:
    """What the HTTP layer reads: the runtime once loaded, readiness and limits. Set by the service."""

    runtime: Any = None  # ServingRuntime once loaded
    metrics: Any = None  # ServiceMetrics
    settings: Any = None
    workers: int = 1
    release: str | None = None
    loaded: bool = False
    draining: bool = False
    failed: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Ready to take traffic: every model loaded and no shutdown under way."""
        return self.loaded and not self.draining and self.failed is None


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
    return json_response({"error_code": code, "message": message, **_context_fields(ctx)}, status)


def _context_fields(ctx: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": ctx["request_id"],
        "model": {"name": ctx["model_name"], "version": ctx["model_version"]},
        "variant": ctx["variant"],
    }


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(
            413,
            "request body too large",
            [f"got {int(declared)} bytes; the limit is {limit} bytes (MLFACTOR_MAX_REQUEST_BYTES)"],
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(
                413,
                "request body too large",
                [f"more than {limit} bytes; the limit is {limit} bytes (MLFACTOR_MAX_REQUEST_BYTES)"],
            )
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(state: ServiceState) -> Starlette:
    """Return the Starlette app serving /predict, /invocations and /metadata from ``state``."""

    async def score(request: Request, *, invocations: bool) -> Response:
        ctx: dict[str, Any] = request.scope["mlfactor"]
        runtime = state.runtime
        if not state.loaded or runtime is None:
            reason = state.failed or "the model is still loading; retry when /readyz answers 200"
            return json_response({"error_code": "NOT_READY", "message": reason, **_context_fields(ctx)}, 503)
        try:
            check_content_type(request.headers.get("content-type"))
            body = await _read_body(request, state.settings.max_request_bytes)
            payload = decode_json(body)
            key = request.headers.get(KEY_HEADER) or new_key()
            variant = runtime.choose(key)
            model = runtime.models[variant]
            ctx.update(variant=variant, model_name=model.name, model_version=model.version)
            rows = parse_invocations(payload, model.schema.names) if invocations else parse_predict(payload)
            if len(rows) > state.settings.max_rows:
                raise RequestError(
                    413,
                    "too many rows",
                    [f"got {len(rows)} rows; the limit is {state.settings.max_rows} (MLFACTOR_MAX_ROWS)"],
                )
            ctx["rows"] = len(rows)
            if len(rows) <= INLINE_ROWS:
                served = runtime.predict(rows, variant, allow_extra=invocations)
            else:
                served = await asyncio.to_thread(runtime.predict, rows, variant, allow_extra=invocations)
        except RequestError as exc:
            return json_response({**exc.body(), **_context_fields(ctx)}, exc.status)
        except ClientDisconnect:
            # The client went away while sending its body: nobody to answer; 499 in the access line.
            return Response(status_code=CLIENT_CLOSED)
        except Exception as exc:
            logger.exception(
                "prediction_failed",
                extra={"fields": {"request_id": ctx["request_id"], "error": type(exc).__name__}},
            )
            return json_response(
                {
                    "error_code": "INTERNAL_ERROR",
                    "message": f"prediction failed; see the service log for request {ctx['request_id']}",
                    **_context_fields(ctx),
                },
                500,
            )
        if invocations:
            data: dict[str, Any] = {"predictions": served.predictions}
        else:
            data = {
                "predictions": served.predictions,
                "model": {"name": model.name, "version": model.version},
                "variant": variant,
                "request_id": ctx["request_id"],
            }
        _after_response(runtime, rows, served, ctx["request_id"])
        return json_response(data, 200)

    async def predict(request: Request) -> Response:
        return await score(request, invocations=False)

    async def invocations(request: Request) -> Response:
        return await score(request, invocations=True)

    async def metadata(request: Request) -> Response:
        runtime = state.runtime
        variants = {}
        if runtime is not None:
            weights = dict(runtime.current_weights())
            for variant, model in runtime.models.items():
                variants[variant] = {**model.describe(), "weight": weights.get(variant, 0)}
        primary = runtime.primary.describe() if runtime is not None and runtime.primary is not None else {}
        return json_response(
            {
                "model": primary,
                "variants": variants,
                "release": state.release,
                "ready": state.ready,
                "draining": state.draining,
                "workers": state.workers,
                "request_id": request.scope["mlfactor"]["request_id"],
            }
        )

    routes = [
        Route("/predict", predict, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/metadata", metadata, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(RequestMiddleware, state=state)])


MAX_PENDING_AFTER = 64  # per worker: beyond this, shadow scoring is skipped rather than queued
_pending: set[asyncio.Task[None]] = set()


def _after_response(runtime: Any, rows: list[Any], served: Any, request_id: str) -> None:
    """Schedule shadow scoring and prediction events outside the request (never delaying or changing it).

    They run as separate tasks, so they hold no concurrency slot; when too many are
    pending the work is dropped with a ``shadow_skipped`` event.
    """
    shadow = runtime.shadow_enabled()
    log_predictions = runtime.flags.log_predictions()
    if not shadow and not log_predictions:
        return
    if len(_pending) >= MAX_PENDING_AFTER:
        event(logger, "shadow_skipped", level=logging.WARNING, request_id=request_id, pending=len(_pending))
        return

    async def run() -> None:
        await asyncio.sleep(0)  # let the response go out first
        try:
            if log_predictions:
                runtime.log_prediction(rows, served, request_id)
            if shadow:
                await asyncio.to_thread(runtime.score_shadow, rows, served, request_id)
        except Exception:  # noqa: BLE001 - background work never affects the client
            event(logger, "after_response_failed", level=logging.WARNING, request_id=request_id)

    task = asyncio.get_running_loop().create_task(run())
    _pending.add(task)
    task.add_done_callback(_pending.discard)
