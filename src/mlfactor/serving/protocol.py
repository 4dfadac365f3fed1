"""The request formats the service accepts, parsed by plain functions testable without a server.

``POST /predict`` takes ``{"records": [{feature: value, ...}, ...]}``.
``POST /invocations`` speaks MLflow's scoring protocol (``mlflow models serve``):
``dataframe_split``, ``dataframe_records``, ``instances`` and ``inputs``, with an
optional ``params`` object (ignored: scikit-learn models take none). Both parse
into a list of rows (one dict per row) that :mod:`mlfactor.serving.schema`
then checks against the model signature.

Every parse problem raises :class:`RequestError` with the HTTP status to
answer; messages describe types and shapes, never echo the payload.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlfactor.errors import ValidationError

Row = dict[str, Any]

INVOCATION_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON_CONTENT_TYPE = "application/json"


class RequestError(ValidationError):
    """Raised when a prediction request is malformed, too large or does not match the model's schema."""

    def __init__(self, status: int, subject: str, problems: Sequence[str]) -> None:
        super().__init__(subject, problems)
        self.status = status

    def body(self) -> dict[str, Any]:
        """Return the JSON error body: MLflow's ``error_code``/``message`` keys plus every problem."""
        code = {400: "BAD_REQUEST", 413: "REQUEST_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}.get(
            self.status, "BAD_REQUEST"
        )
        return {"error_code": code, "message": self.message, "problems": self.problems}


def _short(text: str) -> str:
    return text if len(text) <= 24 else text[:21] + "..."


def describe(value: Any) -> str:
    """Describe a JSON value for error messages by its type and a short prefix, never the whole value."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {_short(repr(value))}"
    if isinstance(value, str):
        return f"string {json.dumps(_short(value))}"
    if isinstance(value, list | dict):
        noun = "array of {} item" if isinstance(value, list) else "object with {} key"
        return noun.format(len(value)) + ("s" if len(value) != 1 else "")
    return type(value).__name__


def check_content_type(content_type: str | None) -> None:
    """Accept JSON only (with an optional utf-8 charset); raise RequestError 415 otherwise."""
    if not content_type:
        return  # curl without -H: treat as JSON, like most JSON APIs
    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    charset = params.strip().lower().removeprefix("charset=").strip() if params.strip() else "utf-8"
    if mime != JSON_CONTENT_TYPE or charset not in {"utf-8", "utf8"}:
        raise RequestError(
            415,
            "unsupported content type",
            [f"got {content_type[:60]!r}; expected 'application/json' (utf-8)"],
        )


def decode_json(body: bytes) -> Any:
    """Parse a request body as JSON; RequestError 400 naming the position of a syntax error."""
    if not body.strip():
        raise RequestError(400, "empty request body", ["expected a JSON object, got an empty body"])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "request body is not UTF-8", ["expected UTF-8 encoded JSON"]) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(
            400,
            "malformed JSON",
            [f"{exc.msg} at line {exc.lineno} column {exc.colno}; expected a JSON object"],
        ) from None


def _require_object(payload: Any, expected: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise RequestError(
            400, "invalid request", [f"expected a JSON object {expected}, got {describe(payload)}"]
        )
    return payload


def _records(value: Any, where: str) -> list[Row]:
    """Check ``value`` is a non-empty list of objects and return it."""
    if not isinstance(value, list):
        raise RequestError(
            400, "invalid request", [f"'{where}' must be an array of objects, got {describe(value)}"]
        )
    if not value:
        raise RequestError(400, "invalid request", [f"'{where}' is empty; send at least one row"])
    bad = [i for i, row in enumerate(value) if not isinstance(row, dict)]
    if bad:
        first = value[bad[0]]
        raise RequestError(
            400,
            "invalid request",
            [f"'{where}' {rows_text(bad)} must be objects of feature: value, got {describe(first)}"],
        )
    return value


def rows_text(rows: Sequence[int], limit: int = 5) -> str:
    """Row indices for a message: the first ``limit`` and how many more."""
    shown = ", ".join(str(r) for r in rows[:limit])
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {shown}" + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def parse_predict(payload: Any) -> list[Row]:
    """Rows of a ``/predict`` body ``{"records": [...]}``."""
    body = _require_object(payload, '{"records": [{feature: value, ...}]}')
    unknown = sorted(set(body) - {"records"})
    problems = [f"unexpected key '{key}'; the body has only 'records'" for key in unknown]
    if "records" not in body:
        problems.insert(0, "missing key 'records': expected {\"records\": [{feature: value, ...}, ...]}")
    if problems:
        raise RequestError(400, "invalid request", problems)
    return _records(body["records"], "records")


def _positional(rows: list[Any], columns: Sequence[str], where: str) -> list[Row]:
    """Turn a list of lists into rows, using ``columns`` (the signature's order)."""
    bad = [i for i, row in enumerate(rows) if not isinstance(row, list) or len(row) != len(columns)]
    if bad:
        first = rows[bad[0]]
        raise RequestError(
            400,
            "invalid request",
            [
                f"'{where}' {rows_text(bad)} must be arrays of {len(columns)} values "
                f"({', '.join(columns)}), got {describe(first)}"
            ],
        )
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _split(value: Any, columns: Sequence[str]) -> list[Row]:
    if not isinstance(value, dict):
        raise RequestError(
            400,
            "invalid request",
            [f"'dataframe_split' must be an object with 'columns' and 'data', got {describe(value)}"],
        )
    data = value.get("data")
    cols = value.get("columns", list(columns))
    problems = []
    if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
        problems.append(f"'dataframe_split.columns' must be an array of names, got {describe(cols)}")
    if not isinstance(data, list):
        problems.append(f"'dataframe_split.data' must be an array of rows, got {describe(data)}")
    if problems:
        raise RequestError(400, "invalid request", problems)
    if not data:
        raise RequestError(400, "invalid request", ["'dataframe_split.data' is empty; send at least one row"])
    return _positional(data, cols, "dataframe_split.data")


def _columns(value: dict[str, Any], where: str) -> list[Row]:
    """Rows from a dict of columns ``{"a": [1, 2], "b": [3, 4]}`` (or of scalars: one row)."""
    if all(not isinstance(v, list) for v in value.values()):
        return [value]
    lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise RequestError(
            400, "invalid request", [f"'{where}' columns must all be arrays of the same length"]
        )
    count = lengths.pop()
    if count == 0:
        raise RequestError(400, "invalid request", [f"'{where}' is empty; send at least one row"])
    names = list(value)
    return [{name: value[name][i] for name in names} for i in range(count)]


def _tensor(value: Any, columns: Sequence[str], where: str) -> list[Row]:
    if isinstance(value, dict):
        return _columns(value, where)
    if isinstance(value, list) and value and all(isinstance(row, list) for row in value):
        return _positional(value, columns, where)
    return _records(value, where)


def parse_invocations(payload: Any, columns: Sequence[str]) -> list[Row]:
    """Rows of an MLflow scoring-protocol body; ``columns`` orders positional rows."""
    body = _require_object(payload, "with one of " + ", ".join(INVOCATION_FORMATS))
    formats = [key for key in INVOCATION_FORMATS if key in body]
    if len(formats) != 1:
        found = ", ".join(sorted(body)) or "none"
        raise RequestError(
            400,
            "invalid request",
            [
                f"expected exactly one of {', '.join(INVOCATION_FORMATS)} (plus optional 'params'); "
                f"got keys: {found}"
            ],
        )
    unknown = sorted(set(body) - {formats[0], "params"})
    if unknown:
        raise RequestError(400, "invalid request", [f"unexpected key '{key}'" for key in unknown])
    kind = formats[0]
    value = body[kind]
    if kind == "dataframe_split":
        return _split(value, columns)
    if kind == "dataframe_records":
        return _records(value, kind)
    return _tensor(value, columns, kind)


@dataclass(frozen=True)
class ScoringInput:
    """What an ``/invocations`` body carries: its rows and MLflow's optional ``params``."""

    rows: list[Row]
    params: dict[str, object] | None


def _check_rows(rows: list[Row], max_rows: int) -> list[Row]:
    if len(rows) > max_rows:
        raise RequestError(
            413, "too many rows", [f"got {len(rows)} rows; the limit is {max_rows} (MLFACTOR_MAX_ROWS)"]
        )
    return rows


def read_predict(body: bytes, content_type: str | None, *, max_rows: int) -> list[Row]:
    """Rows of a ``/predict`` body; RequestError 400/413/415 for anything else."""
    check_content_type(content_type)
    return _check_rows(parse_predict(decode_json(body)), max_rows)


def read_invocations(
    body: bytes, content_type: str | None, columns: Sequence[str], *, max_rows: int
) -> ScoringInput:
    """Rows and params of an MLflow scoring-protocol body; RequestError 400/413/415 for anything else."""
    check_content_type(content_type)
    payload = decode_json(body)
    rows = _check_rows(parse_invocations(payload, columns), max_rows)
    params = payload.get("params") if isinstance(payload.get("params"), dict) else None
    return ScoringInput(rows, params)
