"""The POST /feedback body parser: an object or a list in, schema-valid feedback events out, else 400."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from mlfactor.monitoring.feedback import read_feedback
from mlfactor.serving.openapi import FEEDBACK_INPUT
from mlfactor.serving.request_error import RequestError

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs/events/feedback.schema.json").read_text())


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"request_id": "r1", "label": "setosa"}, [{"request_id": "r1", "label": "setosa"}]),
        ({"request_id": "r1", "value": 3}, [{"request_id": "r1", "value": 3.0}]),
        (
            [{"request_id": "a", "label": [0, 1]}, {"request_id": "b", "value": [1.5, 2]}],
            [{"request_id": "a", "label": [0, 1]}, {"request_id": "b", "value": [1.5, 2.0]}],
        ),
    ],
    ids=["label", "value", "list"],
)
def test_each_object_becomes_one_valid_feedback_event(body: object, fields: list[dict[str, object]]) -> None:
    """Every object of the body gives one event whose fields validate against feedback.schema.json."""
    items = read_feedback(json.dumps(body).encode())
    events = [{"event": "feedback", "timestamp": "2026-12-02T06:00:00Z", **i.event_fields()} for i in items]
    for event in events:
        jsonschema.validate(event, SCHEMA)
    assert [{k: v for k, v in e.items() if k in {"request_id", "label", "value"}} for e in events] == fields
    jsonschema.validate(body, FEEDBACK_INPUT)  # the body /docs.json documents is the body accepted


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (b"[]", "expected 1 to"),
        (b'{"label": 1}', "body.request_id: got None"),
        (b'{"request_id": "r 1", "label": 1}', "'r 1'"),
        (b'{"request_id": "r1"}', "got neither"),
        (b'{"request_id": "r1", "label": 1, "value": 2}', "got both"),
        (b'{"request_id": "r1", "value": "high"}', "finite number"),
        (b'{"request_id": "r1", "label": {"a": 1}}', "body.label: got {'a': 1}"),
        (b'{"request_id": "r1", "label": 1, "score": 2}', "unknown keys ['score']"),
        (b'[{"request_id": "a", "label": 1}, 5]', "[1]: expected an object"),
    ],
    ids=[
        "not-json",
        "empty-list",
        "no-id",
        "bad-id",
        "no-outcome",
        "both",
        "value-text",
        "label-object",
        "unknown-key",
        "item-not-object",
    ],
)
def test_bad_bodies_are_400_naming_the_problem(body: bytes, says: str) -> None:
    """A malformed body is RequestError 400 whose message names the bad item and what was expected."""
    with pytest.raises(RequestError) as caught:
        read_feedback(body)
    assert caught.value.status == 400
    assert says in str(caught.value)


def test_every_bad_item_is_listed_at_once() -> None:
    """Three bad objects in one list give one 400 with three problems."""
    with pytest.raises(RequestError) as caught:
        read_feedback(b'[{"request_id": "a"}, {"label": 1}, {"request_id": "c", "value": null}]')
    assert len(caught.value.problems) == 3
