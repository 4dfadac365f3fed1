"""The service's HTTP behaviour as a plain function: one request in, status, headers and body out.

:class:`ServingCore` answers every route mlfactor owns (scoring, metadata,
probes, metrics, the BentoML schema and OpenAPI documents) from a
:class:`~mlfactor.serving.state.WorkerState`, with no global state and no I/O
beyond the model itself; tests call :meth:`ServingCore.handle` directly or
through the ASGI shell (:mod:`mlfactor.serving.asgi`), which adds what needs
an event loop: reading the body, the 429/504 limits, the thread hop and the
work after the response. Request formats are parsed by
:mod:`mlfactor.serving.protocol` (``RequestError`` carries the 4xx); any
other exception while scoring is a model failure, answered as a JSON 500.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from mlfactor.log import event, get_logger
from mlfactor.monitoring.feedback import read_feedback
from mlfactor.serving import openapi
from mlfactor.serving.batching import scores_in_thread
from mlfactor.serving.hooks import answer_delivery
from mlfactor.serving.messages import (
    AfterResponse,
    HttpRequest,
    HttpResponse,
    RequestContext,
    error_response,
    json_response,
)
from mlfactor.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mlfactor.serving.protocol import RequestError, Row, read_invocations, read_predict
from mlfactor.serving.runtime import Prediction, ServingRuntime, predictions_logger
from mlfactor.serving.schema import InputSchema
from mlfactor.serving.state import WorkerState
from mlfactor.serving.variants import KEY_HEADER, new_key

logger = get_logger("mlfactor.serving")
access_logger = get_logger("mlfactor.access")

OTHER_PATH = "other"  # the metrics label every unknown path shares
PROBES = frozenset({"/livez", "/healthz", "/readyz", "/ping", "/health", "/metrics"})  # no access line
OFFLOAD_BYTES = 16 * 1024  # bodies above this are parsed and scored in a thread, off the event loop
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


Handler = Callable[["ServingCore", HttpRequest, RequestContext], HttpResponse]


class ServingCore:
    """Answers mlfactor's routes from a worker's state; the same object serves every request."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.settings = state.settings

    # ---- routing -------------------------------------------------------------------------------

    def owns(self, path: str) -> bool:
        """True for the paths the core answers (anything else goes to BentoML, or 404)."""
        return path in ROUTES

    def route_label(self, path: str) -> str:
        """The metrics label of ``path``: the route itself, or one shared label for unknown paths."""
        return path if path in ROUTES else OTHER_PATH

    def offload(self, request: HttpRequest) -> bool:
        """True when answering takes long enough to belong in a thread (large bodies, /metrics)."""
        if scores_in_thread(request.path, self.state.runtime):  # batching models: let calls overlap
            return True
        return len(request.body) > OFFLOAD_BYTES or request.path == "/metrics"

    def context(self, headers: Mapping[str, str]) -> RequestContext:
        """A new request's context: its request id (given or generated) and the default model."""
        given = headers.get("x-request-id", "")
        ctx = RequestContext(given if _REQUEST_ID.match(given) else uuid.uuid4().hex)
        runtime = self.state.runtime
        if runtime is not None:
            ctx.variant = runtime.planned[0][0]
            model = runtime.primary
            ctx.model_name, ctx.model_version = (
                (model.name, model.version) if model else (runtime.model_name, "")
            )
        return ctx

    def handle(self, request: HttpRequest, ctx: RequestContext | None = None) -> HttpResponse:
        """Answer ``request``; never raises."""
        ctx = ctx or self.context(request.headers)
        methods = ROUTES.get(request.path)
        if methods is None:
            return error_response(404, "NOT_FOUND", f"no route {request.path[:200]!r}", ctx)
        handler = methods.get(request.method.upper())
        if handler is None:
            allowed = ", ".join(sorted(methods))
            answer = error_response(
                405, "METHOD_NOT_ALLOWED", f"{request.method} {request.path}: use {allowed}", ctx
            )
            answer.headers["allow"] = allowed
            return answer
        try:
            return handler(self, request, ctx)
        except Exception as exc:  # a bug of ours, never the client's: JSON 500, details in the log
            logger.exception(
                "request_failed",
                extra={"fields": {"request_id": ctx.request_id, "error": type(exc).__name__}},
            )
            return error_response(
                500, "INTERNAL_ERROR", f"see the service log for request {ctx.request_id}", ctx
            )

    def feedback(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """POST /feedback: one ``feedback`` event per object of the body; no state is kept."""
        try:
            items = read_feedback(request.body)
        except RequestError as exc:
            return json_response({**exc.body(), **ctx.fields()}, exc.status)
        for item in items:
            event(predictions_logger, "feedback", **item.event_fields())
        return json_response({"accepted": len(items), "request_id": ctx.request_id}, 202)

    def mlflow_hook(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """POST /hooks/mlflow: a signed MLflow alias event makes the follower check at once."""
        return answer_delivery(self.settings.webhook_secret, self.state.follower, request, ctx, time.time())

    # ---- scoring -------------------------------------------------------------------------------

    def _not_ready(self, ctx: RequestContext) -> HttpResponse:
        reason = self.state.failed or "the model is still loading; retry when /readyz answers 200"
        return error_response(503, "NOT_READY", reason, ctx)

    def _score(self, request: HttpRequest, ctx: RequestContext, *, invocations: bool) -> HttpResponse:
        runtime = self.state.runtime
        if not self.state.loaded or runtime is None:
            return self._not_ready(ctx)
        variant = runtime.choose(request.headers.get(KEY_HEADER) or new_key())
        model = runtime.models[variant]
        ctx.variant, ctx.model_name, ctx.model_version = variant, model.name, model.version
        try:
            if invocations:
                scoring = read_invocations(
                    request.body, request.content_type, model.schema, max_rows=self.settings.max_rows
                )
                rows, params = scoring.rows, scoring.params
            else:
                rows = read_predict(request.body, request.content_type, max_rows=self.settings.max_rows)
                params = None
            ctx.rows = len(rows)
            served = runtime.predict(rows, variant, model, allow_extra=invocations, params=params)
        except RequestError as exc:
            return json_response({**exc.body(), **ctx.fields()}, exc.status)
        except Exception as exc:
            logger.exception(
                "prediction_failed",
                extra={"fields": {"request_id": ctx.request_id, "error": type(exc).__name__}},
            )
            message = f"prediction failed; see the service log for request {ctx.request_id}"
            return error_response(500, "INTERNAL_ERROR", message, ctx)
        if invocations:
            answer = json_response({"predictions": served.predictions})
        else:
            answer = json_response(
                {
                    "predictions": served.predictions,
                    "model": {"name": model.name, "version": model.version},
                    "variant": variant,
                    "request_id": ctx.request_id,
                }
            )
        answer.after = _after_response(runtime, rows, served, ctx.request_id)
        return answer

    def predict(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """POST /predict: ``{"records": [...]}`` in, predictions with model, version and variant out."""
        return self._score(request, ctx, invocations=False)

    def invocations(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """POST /invocations: MLflow's scoring protocol, answered ``{"predictions": [...]}``."""
        return self._score(request, ctx, invocations=True)

    # ---- what the service is -------------------------------------------------------------------

    def metadata(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """GET /metadata: model, variants with weights, release, readiness."""
        runtime = self.state.runtime
        variants: dict[str, Any] = {}
        primary: dict[str, Any] = {}
        if runtime is not None:
            weights = dict(runtime.current_weights())
            for variant, model in runtime.models.items():
                variants[variant] = {**model.describe(), "weight": weights.get(variant, 0)}
            primary = runtime.primary.describe() if runtime.primary is not None else {}
        return json_response(
            {
                "model": primary,
                "variants": variants,
                "release": self.settings.release,
                "ready": self.state.ready,
                "draining": self.state.draining,
                "workers": self.state.workers,
                "request_id": ctx.request_id,
            }
        )

    def schema_json(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """GET /schema.json: the routes as BentoML's clients discover them."""
        return json_response(openapi.bentoml_schema(self._input_schema(), ROUTES))

    def docs_json(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """GET /docs.json: the OpenAPI document BentoML's Swagger page renders."""
        return json_response(openapi.openapi_document(self._input_schema(), self._model_title()))

    def _input_schema(self) -> InputSchema | None:
        runtime = self.state.runtime
        model = runtime.primary if runtime is not None else None
        return model.schema if model is not None else None

    def _model_title(self) -> str:
        runtime = self.state.runtime
        model = runtime.primary if runtime is not None else None
        return f"{model.name} version {model.version}" if model is not None else "model loading"

    # ---- probes and metrics --------------------------------------------------------------------

    def livez(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """GET /livez, /healthz: 200 while the process answers at all."""
        return HttpResponse(200, b"\n", "text/plain; charset=utf-8")

    def readyz(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """GET /readyz: 200 once every model is loaded, 503 before and from SIGTERM on."""
        if self.state.ready:
            return HttpResponse(200, b"\n", "text/plain; charset=utf-8")
        if self.state.draining:
            return error_response(503, "SHUTTING_DOWN", "the service is shutting down", ctx)
        return self._not_ready(ctx)

    def ping(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """GET /ping, /health: MLflow's scoring-server probe, a newline with 200 when ready."""
        if self.state.ready:
            return HttpResponse(200, b"\n")
        return self.readyz(request, ctx)

    def version(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """GET /version: the MLflow version, as MLflow's scoring server answers it."""
        return HttpResponse(200, mlflow_version().encode())

    def metrics(self, request: HttpRequest, ctx: RequestContext) -> HttpResponse:
        """GET /metrics: Prometheus text, this service's workers only."""
        return HttpResponse(200, self.state.metrics.render(), METRICS_CONTENT_TYPE)

    # ---- after the answer ----------------------------------------------------------------------

    def finish(self, request: HttpRequest, ctx: RequestContext, status: int, seconds: float) -> None:
        """Log the access line and record the metrics of one answered request (probes stay quiet)."""
        if request.path in PROBES:
            return
        event(
            access_logger,
            "request",
            method=request.method,
            path=request.path[:200],
            status=status,
            latency_ms=round(seconds * 1000, 3),
            request_id=ctx.request_id,
            model_name=ctx.model_name,
            model_version=ctx.model_version,
            variant=ctx.variant,
            rows=ctx.rows,
        )
        self.state.metrics.observe(
            path=self.route_label(request.path),
            status=status,
            model=ctx.model_name,
            version=ctx.model_version,
            variant=ctx.variant,
            seconds=seconds,
            rows=ctx.rows,
        )

    def run_after(self, work: AfterResponse) -> None:
        """Log the prediction and score the shadow (blocking; the shell runs it in a thread)."""
        runtime = self.state.runtime
        if runtime is None:
            return
        try:
            if work.log_rate:
                runtime.log_prediction(work.rows, work.served, work.request_id, work.log_rate)
            if work.shadow:
                runtime.score_shadow(work.rows, work.served, work.request_id)
        except Exception:  # noqa: BLE001 - background work never affects the client
            event(logger, "after_response_failed", level=logging.WARNING, request_id=work.request_id)


def _after_response(
    runtime: ServingRuntime, rows: list[Row], served: Prediction, request_id: str
) -> AfterResponse | None:
    shadow = runtime.shadow_enabled()
    log_rate = runtime.log_rate(request_id)
    if not shadow and not log_rate:
        return None
    return AfterResponse(rows, served, request_id, log_rate=log_rate, shadow=shadow)


@functools.cache
def mlflow_version() -> str:
    """The installed MLflow's version, read from its package metadata (MLflow is not imported)."""
    try:
        return metadata.version("mlflow")
    except metadata.PackageNotFoundError:
        return "unknown"


ROUTES: Mapping[str, Mapping[str, Handler]] = {
    "/predict": {"POST": ServingCore.predict},
    "/invocations": {"POST": ServingCore.invocations},
    "/feedback": {"POST": ServingCore.feedback},
    "/hooks/mlflow": {"POST": ServingCore.mlflow_hook},
    "/metadata": {"GET": ServingCore.metadata},
    "/schema.json": {"GET": ServingCore.schema_json},
    "/docs.json": {"GET": ServingCore.docs_json},
    "/livez": {"GET": ServingCore.livez},
    "/healthz": {"GET": ServingCore.livez},
    "/readyz": {"GET": ServingCore.readyz},
    "/ping": {"GET": ServingCore.ping},
    "/health": {"GET": ServingCore.ping},
    "/version": {"GET": ServingCore.version},
    "/metrics": {"GET": ServingCore.metrics},
}
"""Every route the core answers, by path and method (the deploy rules read the GET paths)."""
