"""The HTTP face of the service: /predict, /invocations and /metadata.

A small Starlette application mounted into the BentoML service (BentoML keeps
``/livez``, ``/readyz``, ``/metrics`` and the worker lifecycle). It parses
bodies itself so a bad request gets one 400 naming every bad field, 413 over
the size limits and 415 for other content types; :mod:`mlfactor.serving.access`
wraps it with the request id, the 429/504 limits and the access line.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from mlfactor.log import event, get_logger
from mlfactor.serving.access import RequestMiddleware, context_fields, json_response
from mlfactor.serving.protocol import (
    RequestError,
    check_content_type,
    decode_json,
    parse_invocations,
    parse_predict,
)
from mlfactor.serving.state import ServiceState
from mlfactor.serving.variants import KEY_HEADER, new_key

logger = get_logger("mlfactor.serving")

CLIENT_CLOSED = 499  # nginx's "client closed request", for the access line only
INLINE_ROWS = 256  # smaller requests predict on the event loop: a thread hop costs more than the model

__all__ = ["ServiceState", "build_app"]


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
            return json_response({"error_code": "NOT_READY", "message": reason, **context_fields(ctx)}, 503)
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
            return json_response({**exc.body(), **context_fields(ctx)}, exc.status)
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
                    **context_fields(ctx),
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
