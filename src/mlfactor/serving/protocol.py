"""The request formats the service accepts: request bytes in, rows out, by plain functions.

``POST /predict`` takes ``{"records": [{column: value, ...}, ...]}`` as JSON.
``POST /invocations`` speaks MLflow's scoring protocol (``mlflow models serve``):
JSON (:mod:`mlfactor.serving.scoring_json`), CSV and parquet
(:mod:`mlfactor.serving.tabular`). :func:`read_predict` and
:func:`read_invocations` are the whole contract with the HTTP layer: they take
the body, its content type and the row limit, return rows (one dict per row)
that :mod:`mlfactor.serving.schema` then checks, and raise only
:class:`RequestError` (400, 413 or 415), whatever the bytes.

Media types are matched case-insensitively; the only parameter taken is
``charset=utf-8``, as MLflow's scoring server takes it. A request without a
content type is read as JSON.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mlfactor.serving import scoring_json
from mlfactor.serving.json_body import decode_json
from mlfactor.serving.request_error import RequestError, Row, describe, rows_text, short
from mlfactor.serving.schema import InputSchema
from mlfactor.serving.tabular import read_csv, read_parquet

__all__ = [
    "MediaType",
    "RequestError",
    "Row",
    "ScoringInput",
    "describe",
    "media_type",
    "read_invocations",
    "read_predict",
    "rows_text",
]


class MediaType(StrEnum):
    """The request content types the service reads (MLflow's scoring server's three)."""

    JSON = "application/json"
    CSV = "text/csv"
    PARQUET = "application/vnd.apache.parquet"


INVOCATION_TYPES = (MediaType.JSON, MediaType.CSV, MediaType.PARQUET)
PREDICT_TYPES = (MediaType.JSON,)


@dataclass(frozen=True)
class ScoringInput:
    """What an ``/invocations`` body carries: its rows and MLflow's optional ``params``."""

    rows: list[Row]
    params: dict[str, object] | None


def _unsupported(content_type: str, problem: str) -> RequestError:
    return RequestError(415, "unsupported content type", [f"got {short(content_type, 80)!r}: {problem}"])


def media_type(content_type: str | None, accepted: Sequence[MediaType]) -> MediaType:
    """The media type of a ``Content-Type`` header among ``accepted``; RequestError 415 otherwise."""
    if content_type is None or not content_type.strip():
        return MediaType.JSON  # curl without -H: read as JSON, like most JSON APIs
    found = _media_type(content_type, tuple(accepted))
    if not isinstance(found, MediaType):
        raise _unsupported(content_type, found)
    return found


@functools.lru_cache(maxsize=64)
def _media_type(content_type: str, accepted: tuple[MediaType, ...]) -> MediaType | str:
    """The media type, or the problem with ``content_type`` (cached: clients send few distinct ones)."""
    mime, *parameters = content_type.split(";")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        name, value = name.strip().lower(), value.strip().strip('"').lower()
        if not name:
            continue
        if name != "charset":
            return f"unknown parameter {short(name)!r}; only charset=utf-8 is taken"
        if value != "utf-8":
            return f"charset {short(value)!r} is not supported; send UTF-8 with charset=utf-8"
    wanted = " or ".join(f"'{kind.value}'" for kind in accepted)
    try:
        found = MediaType(mime.strip().lower())
    except ValueError:
        return f"expected {wanted}"
    return found if found in accepted else f"this endpoint takes only {wanted}"


def read_predict(body: bytes, content_type: str | None, *, max_rows: int) -> list[Row]:
    """Rows of a ``/predict`` body; RequestError 400/413/415 for anything else."""
    media_type(content_type, PREDICT_TYPES)
    return scoring_json.parse_predict(decode_json(body), max_rows=max_rows)


def read_invocations(
    body: bytes, content_type: str | None, columns: Sequence[str] | InputSchema, *, max_rows: int
) -> ScoringInput:
    """Rows and params of an MLflow scoring body; RequestError 400/413/415 for anything else.

    ``columns`` are the signature's input names in order (empty without a
    signature), or the :class:`InputSchema` itself, which also types CSV cells.
    """
    names = columns.names if isinstance(columns, InputSchema) else list(columns)
    kind = media_type(content_type, INVOCATION_TYPES)
    if kind is MediaType.CSV:
        kinds: dict[str, str | None] = dict.fromkeys(names)  # no types: CSV cells are inferred
        if isinstance(columns, InputSchema):
            kinds = {field.name: field.kind for field in columns.fields}
        return ScoringInput(read_csv(body, kinds, max_rows=max_rows), None)
    if kind is MediaType.PARQUET:
        return ScoringInput(read_parquet(body, max_rows=max_rows), None)
    rows, params = scoring_json.parse_invocations(decode_json(body), names, max_rows=max_rows)
    return ScoringInput(rows, params)
