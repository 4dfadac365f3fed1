"""What crosses between the HTTP shell and the core: a request, its context, the answer.

Plain dataclasses and the JSON helpers every answer uses; no behaviour.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlfactor.serving.protocol import Row
from mlfactor.serving.runtime import Prediction

JSON = "application/json"


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as the core sees it: method, path, body and headers (lower-case names)."""

    method: str
    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header, None when absent."""
        return self.headers.get("content-type")


@dataclass
class RequestContext:
    """What every answer and the access line repeat: request id, model, version, variant, rows."""

    request_id: str
    model_name: str = ""
    model_version: str = ""
    variant: str = ""
    rows: int = 0

    def fields(self) -> dict[str, Any]:
        """The request id, model and variant that error bodies carry."""
        return {
            "request_id": self.request_id,
            "model": {"name": self.model_name, "version": self.model_version},
            "variant": self.variant,
        }

    def headers(self) -> dict[str, str]:
        """The headers every response carries."""
        return {
            "x-request-id": self.request_id,
            "x-mlfactor-model": self.model_name,
            "x-mlfactor-model-version": self.model_version,
            "x-mlfactor-variant": self.variant,
        }


@dataclass(frozen=True)
class AfterResponse:
    """Work to run once the answer is sent: log the prediction, score the shadow."""

    rows: list[Row]
    served: Prediction
    request_id: str
    log_rate: float  # 0: not logged; else the share of requests logged (the event's sample_rate)
    shadow: bool


@dataclass
class HttpResponse:
    """A complete answer: status, body, media type and extra headers, plus work for after it is sent."""

    status: int
    body: bytes
    media_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    after: AfterResponse | None = None


def dumps(data: Any) -> bytes:
    """Compact JSON bytes (numpy scalars and the like as strings rather than an error)."""
    return json.dumps(data, separators=(",", ":"), default=str).encode("utf-8")


def json_response(data: Any, status: int = 200) -> HttpResponse:
    """A JSON answer."""
    return HttpResponse(status, dumps(data))


def error_response(status: int, code: str, message: str, ctx: RequestContext) -> HttpResponse:
    """A JSON error answer in MLflow's shape, carrying the request id, model and variant."""
    return json_response({"error_code": code, "message": message, **ctx.fields()}, status)
