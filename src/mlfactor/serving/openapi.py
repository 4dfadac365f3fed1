"""The service described to BentoML and to OpenAPI readers, from the loaded model's signature.

mlfactor's routes are not ``@bentoml.api`` methods (they parse MLflow's
scoring formats themselves and cost less per request), so BentoML cannot
describe them. This module does: :func:`bentoml_schema` is the
``/schema.json`` document BentoML's ``SyncHTTPClient`` and ``AsyncHTTPClient``
read to find ``predict`` and ``invocations``; :func:`openapi_document` is the
``/docs.json`` document BentoML's Swagger page (``/``) renders. Both take the
row schema from the model signature; before the model is loaded a row is any
object.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlfactor.serving.schema import InputSchema
from mlfactor.version import mlfactor_version

SERVICE_NAME = "mlfactor"
JSON_TYPES = {
    "double": "number",
    "float": "number",
    "long": "integer",
    "integer": "integer",
    "boolean": "boolean",
    "string": "string",
}
INVOCATION_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs", "params")
ERROR_STATUSES = {
    "400": "Malformed body, or rows that do not match the model's input schema",
    "413": "Body or row count over MLFACTOR_MAX_REQUEST_BYTES / MLFACTOR_MAX_ROWS",
    "415": "Unsupported content type",
    "429": "Over this worker's share of MLFACTOR_MAX_CONCURRENCY",
    "503": "Model still loading, or shutting down",
    "504": "No answer within MLFACTOR_REQUEST_TIMEOUT",
}


def row_schema(schema: InputSchema | None, *, extra: bool) -> dict[str, Any]:
    """JSON schema of one row: the signature's columns with their types (any object without one)."""
    if schema is None or not schema.fields:
        return {"type": "object", "title": "Row"}
    properties = {
        f.name: {**({"type": JSON_TYPES[f.kind]} if f.kind in JSON_TYPES else {}), **f.json_limits()}
        for f in schema.fields
    }
    result: dict[str, Any] = {"type": "object", "title": "Row", "properties": properties}
    required = [f.name for f in schema.fields if f.required]
    if required:
        result["required"] = required
    if not extra:
        result["additionalProperties"] = False
    return result


def _predict_input(schema: InputSchema | None) -> dict[str, Any]:
    return {
        "type": "object",
        "title": "PredictInput",
        "properties": {"records": {"type": "array", "items": row_schema(schema, extra=False), "minItems": 1}},
        "required": ["records"],
    }


def _invocations_input(schema: InputSchema | None) -> dict[str, Any]:
    row = row_schema(schema, extra=True)
    columns = schema.names if schema is not None else []
    split = {
        "type": "object",
        "properties": {
            "columns": {
                "type": "array",
                "items": {"type": "string"},
                **({"example": columns} if columns else {}),
            },
            "data": {"type": "array", "items": {"type": "array"}},
            "index": {"type": "array"},
        },
        "required": ["data"],
    }
    return {
        "type": "object",
        "title": "InvocationsInput",
        "description": "MLflow's scoring protocol: exactly one of dataframe_split, dataframe_records, "
        "instances, inputs; optional params. text/csv and parquet bodies are accepted too.",
        "properties": {
            "dataframe_split": split,
            "dataframe_records": {"type": "array", "items": row},
            "instances": {"type": "array", "items": row},
            "inputs": {"anyOf": [{"type": "array", "items": row}, {"type": "object"}]},
            "params": {"type": "object"},
        },
    }


PREDICTIONS = {"type": "array", "items": {}, "title": "Predictions"}
MODEL_REF = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
}
PREDICT_OUTPUT = {
    "type": "object",
    "title": "PredictOutput",
    "properties": {
        "predictions": PREDICTIONS,
        "model": MODEL_REF,
        "variant": {"type": "string"},
        "request_id": {"type": "string"},
    },
}
INVOCATIONS_OUTPUT = {
    "type": "object",
    "title": "InvocationsOutput",
    "properties": {"predictions": PREDICTIONS},
}
ERROR = {
    "type": "object",
    "title": "Error",
    "properties": {
        "error_code": {"type": "string"},
        "message": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "string"}},
        "request_id": {"type": "string"},
        "model": MODEL_REF,
        "variant": {"type": "string"},
    },
}


def bentoml_schema(schema: InputSchema | None, paths: Iterable[str]) -> dict[str, Any]:
    """The ``/schema.json`` document: ``predict`` and ``invocations`` as BentoML routes, and every path."""
    routes = [
        {
            "name": "predict",
            "route": "/predict",
            "description": "Predict for records; answers predictions with model, version and variant.",
            "batchable": False,
            "input": _predict_input(schema),
            "output": PREDICT_OUTPUT,
            "is_task": False,
        },
        {
            "name": "invocations",
            "route": "/invocations",
            "description": "MLflow's scoring protocol (mlflow models serve).",
            "batchable": False,
            "input": _invocations_input(schema),
            "output": INVOCATIONS_OUTPUT,
            "is_task": False,
        },
    ]
    return {
        "name": SERVICE_NAME,
        "type": "service",
        "routes": routes,
        "description": "mlfactor model service",
        "paths": {path: {"mounted": False} for path in paths},
    }


def _json_body(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _errors() -> dict[str, Any]:
    return {
        code: {"description": text, "content": _json_body("Error")} for code, text in ERROR_STATUSES.items()
    }


def _get(summary: str, media: str, tag: str = "Infrastructure") -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": [tag],
            "responses": {"200": {"description": "OK", "content": {media: {"schema": {"type": "string"}}}}},
        }
    }


_SCALARS: list[dict[str, Any]] = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
_FEEDBACK_ITEM: dict[str, Any] = {  # what monitoring.feedback.read_feedback accepts
    "type": "object",
    "required": ["request_id"],
    "properties": {
        "request_id": {
            "type": "string",
            "pattern": "^[A-Za-z0-9._:-]{1,128}$",
            "description": "The X-Request-ID of the prediction",
        },
        "label": {
            "description": "The true label, or one per row (exactly one of label or value)",
            "oneOf": [*_SCALARS, {"type": "array", "items": {"oneOf": _SCALARS}, "minItems": 1}],
        },
        "value": {
            "description": "The observed number, or one per row (exactly one of label or value)",
            "oneOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}, "minItems": 1}],
        },
    },
    "additionalProperties": False,
}
FEEDBACK_INPUT: dict[str, Any] = {
    "oneOf": [_FEEDBACK_ITEM, {"type": "array", "items": _FEEDBACK_ITEM, "minItems": 1}]
}


def openapi_document(schema: InputSchema | None, title: str) -> dict[str, Any]:
    """The ``/docs.json`` OpenAPI 3 document of every route, with schemas from the model signature."""
    scoring = "Service APIs"
    paths: dict[str, Any] = {
        "/predict": {
            "post": {
                "summary": "Predict for records",
                "operationId": "predict",
                "tags": [scoring],
                "requestBody": {"required": True, "content": _json_body("PredictInput")},
                "responses": {
                    "200": {"description": "Predictions", "content": _json_body("PredictOutput")},
                    **_errors(),
                },
            }
        },
        "/invocations": {
            "post": {
                "summary": "MLflow scoring protocol",
                "operationId": "invocations",
                "tags": [scoring],
                "requestBody": {
                    "required": True,
                    "content": {
                        **_json_body("InvocationsInput"),
                        "text/csv": {"schema": {"type": "string"}},
                        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {
                    "200": {"description": "Predictions", "content": _json_body("InvocationsOutput")},
                    **_errors(),
                },
            }
        },
        "/feedback": {
            "post": {
                "summary": "Outcome of earlier predictions, logged as feedback events",
                "operationId": "feedback",
                "tags": [scoring],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": FEEDBACK_INPUT}},
                },
                "responses": {
                    "202": {
                        "description": "Logged",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_errors(),
                },
            }
        },
        "/hooks/mlflow": {
            "post": {
                "summary": "MLflow webhook deliveries (alias events, HMAC-signed): check the registry now",
                "description": "Needs MLFACTOR_WEBHOOK_SECRET and MLFACTOR_FOLLOW_INTERVAL; a delivery "
                "without a valid X-MLflow-Signature (v1 HMAC-SHA256 of id.timestamp.body) or older than "
                "5 minutes gets 401 and changes nothing.",
                "operationId": "mlflow_hook",
                "tags": ["Infrastructure"],
                "parameters": [
                    {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
                    for name in ("X-MLflow-Signature", "X-MLflow-Delivery-Id", "X-MLflow-Timestamp")
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object", "required": ["data"]}}},
                },
                "responses": {
                    "200": {
                        "description": "Accepted; says whether the follower checks now",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": {"description": "Unsigned, mis-signed or stale", "content": _json_body("Error")},
                    "404": {"description": "Webhooks are off", "content": _json_body("Error")},
                    **_errors(),
                },
            }
        },
        "/metadata": {
            "get": {
                "summary": "Model, version, run, variants, release and readiness",
                "tags": [scoring],
                "responses": {
                    "200": {
                        "description": "Metadata",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/livez": _get("Liveness: 200 while the process answers", "text/plain"),
        "/healthz": _get("Liveness (alias of /livez)", "text/plain"),
        "/readyz": _get("Readiness: 200 once loaded, 503 while loading and from SIGTERM on", "text/plain"),
        "/ping": _get("MLflow scoring-server probe: 200 when ready", "application/json"),
        "/health": _get("MLflow scoring-server probe (alias of /ping)", "application/json"),
        "/version": _get("The MLflow version, as mlflow models serve answers", "application/json"),
        "/metrics": _get("Prometheus metrics of this service", "text/plain"),
        "/schema.json": _get("The routes as BentoML clients discover them", "application/json"),
        "/docs.json": _get("This OpenAPI document", "application/json"),
    }
    return {
        "openapi": "3.0.2",
        "info": {
            "title": SERVICE_NAME,
            "description": f"mlfactor model service: {title}",
            "version": mlfactor_version(),
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Row": row_schema(schema, extra=False),
                "PredictInput": _predict_input(schema),
                "PredictOutput": PREDICT_OUTPUT,
                "InvocationsInput": _invocations_input(schema),
                "InvocationsOutput": INVOCATIONS_OUTPUT,
                "Error": ERROR,
            }
        },
    }
