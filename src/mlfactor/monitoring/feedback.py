"""``POST /feedback`` as a plain function: a request body in, the ``feedback`` events to log out.

The service keeps no state for feedback: each object of the body becomes one
``feedback`` event (schema version 1, docs/events/feedback.schema.json) on
stdout, and ``mlfactor experiment report`` joins it with its prediction
downstream. A bad body is a 400 listing every problem.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from mlfactor.monitoring.events import SCHEMA_VERSION
from mlfactor.serving.request_error import RequestError

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # the X-Request-ID syntax the service accepts
MAX_ITEMS = 10_000
_SCALAR = (str, int, float, bool)
EXAMPLE = '{"request_id": "abc123", "label": "setosa"} or {"request_id": "abc123", "value": 12.5}'


@dataclass(frozen=True)
class Feedback:
    """One outcome: the request it belongs to and either its label or its value."""

    request_id: str
    label: object = None
    value: float | list[float] | None = None

    def event_fields(self) -> dict[str, Any]:
        """The fields of its ``feedback`` event (the logger adds timestamp, level and logger)."""
        fields: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "request_id": self.request_id}
        if self.value is not None:
            fields["value"] = self.value
        else:
            fields["label"] = self.label
        return fields


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _label_ok(value: object) -> bool:
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, _SCALAR) for v in value)
    return isinstance(value, _SCALAR)


def _item(data: object, where: str, problems: list[str]) -> Feedback | None:
    if not isinstance(data, dict):
        problems.append(f"{where}: expected an object like {EXAMPLE}, got {type(data).__name__}")
        return None
    request_id = data.get("request_id")
    found = len(problems)
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        problems.append(
            f"{where}.request_id: got {request_id!r}; expected the X-Request-ID of the prediction "
            "(1-128 letters, digits or ._:-)"
        )
    unknown = sorted(set(data) - {"request_id", "label", "value"})
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}; expected request_id and one of label, value")
    has_label, has_value = "label" in data, "value" in data
    if has_label == has_value:
        problems.append(
            f"{where}: expected exactly one of label or value, got {'both' if has_label else 'neither'}"
        )
    elif has_label and not _label_ok(data["label"]):
        problems.append(
            f"{where}.label: got {data['label']!r}; expected a string, number or boolean, or a list"
        )
    elif has_value:
        value = data["value"]
        ok = _number(value) or (isinstance(value, list) and bool(value) and all(_number(v) for v in value))
        if not ok:
            problems.append(f"{where}.value: got {value!r}; expected a finite number or a list of them")
    if len(problems) > found:
        return None
    request_id = str(request_id)
    if has_value:
        value = data["value"]
        return Feedback(
            request_id, value=[float(v) for v in value] if isinstance(value, list) else float(value)
        )
    return Feedback(request_id, label=data["label"])


def read_feedback(body: bytes) -> list[Feedback]:
    """Parse a ``POST /feedback`` body (an object or a list); RequestError 400 lists every problem."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, "feedback", [f"the body is not JSON ({exc}); expected {EXAMPLE}"]) from exc
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_ITEMS:
        raise RequestError(
            400,
            "feedback",
            [f"expected 1 to {MAX_ITEMS} feedback objects, got {len(items)}; send them in batches"],
        )
    problems: list[str] = []
    parsed = [
        _item(item, f"[{i}]" if isinstance(data, list) else "body", problems) for i, item in enumerate(items)
    ]
    if problems:
        raise RequestError(400, "feedback", problems)
    return [item for item in parsed if item is not None]
