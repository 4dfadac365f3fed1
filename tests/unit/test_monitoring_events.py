"""Event reading and the versioned event schemas under docs/events/."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlfactor.errors import NotFoundError, ValidationError
from mlfactor.monitoring.events import read_events

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "events"
TIME = "2026-12-02T06:00:00.000+00:00"
PREDICTION: dict[str, Any] = {
    "schema_version": 1,
    "event": "prediction",
    "timestamp": TIME,
    "level": "info",
    "logger": "mlfactor.predictions",
    "request_id": "req-1",
    "model_name": "iris-classifier",
    "model_version": "3",
    "variant": "champion",
    "inputs": [{"sepal_length": 5.1, "petal_width": 0.2}],
    "outputs": [0],
    "latency_ms": 1.7,
    "rows": 1,
    "sample_rate": 1.0,
}
SHADOW: dict[str, Any] = {
    **{k: v for k, v in PREDICTION.items() if k not in {"inputs"}},
    "event": "shadow_prediction",
    "shadow": True,
    "shadow_version": "4",
    "served_outputs": [0],
    "agree": 1,
}
FEEDBACK: dict[str, Any] = {
    "schema_version": 1,
    "event": "feedback",
    "timestamp": TIME,
    "request_id": "req-1",
}


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("prediction", PREDICTION),
        ("shadow_prediction", SHADOW),
        ("feedback", {**FEEDBACK, "label": "setosa"}),
        ("feedback", {**FEEDBACK, "label": [0, 1]}),
        ("feedback", {**FEEDBACK, "value": 12.5}),
    ],
    ids=["prediction", "shadow", "feedback-label", "feedback-labels", "feedback-value"],
)
def test_sample_events_validate(name: str, event: dict[str, Any]) -> None:
    """Each documented event shape validates against its JSON Schema."""
    _validator(name).validate(event)


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("prediction", {k: v for k, v in PREDICTION.items() if k != "model_version"}),
        ("prediction", {**PREDICTION, "schema_version": 2}),
        ("prediction", {**PREDICTION, "inputs": [1, 2]}),
        ("prediction", {**PREDICTION, "latency_ms": -1}),
        ("shadow_prediction", {**SHADOW, "shadow": [0]}),
        ("feedback", FEEDBACK),
        ("feedback", {**FEEDBACK, "label": 1, "value": 2.0}),
        ("feedback", {**FEEDBACK, "value": "high"}),
        ("feedback", {**FEEDBACK, "request_id": "has space", "label": 1}),
    ],
    ids=[
        "no-version",
        "future-schema",
        "rows-not-objects",
        "negative-latency",
        "shadow-not-marked",
        "feedback-without-outcome",
        "label-and-value",
        "value-not-number",
        "bad-request-id",
    ],
)
def test_bad_events_do_not_validate(name: str, event: dict[str, Any]) -> None:
    """Events missing a required field or with a wrong type are refused by the schema."""
    assert list(_validator(name).iter_errors(event))


def _write(path: Path, lines: list[str]) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".gz"], ids=["plain", "gzip"])
def test_reader_keeps_events_and_skips_other_lines(tmp_path: Path, suffix: str) -> None:
    """Access lines, text and malformed JSON are skipped; wanted events come back in order with their line."""
    path = _write(
        tmp_path / f"events{suffix}",
        [
            '{"event": "access", "status": 200}',
            "plain text from uvicorn",
            json.dumps(PREDICTION),
            '{"event": "prediction", broken',
            json.dumps({**FEEDBACK, "label": 0}),
        ],
    )
    got = [(e.name, e.line) for e in read_events([str(path)])]
    assert got == [("prediction", 3), ("feedback", 5)]


def test_reader_refuses_a_newer_schema_naming_file_and_line(tmp_path: Path) -> None:
    """An event of schema_version 2 is refused with the file:line and how to fix it."""
    path = _write(tmp_path / "e.jsonl", [json.dumps({**PREDICTION, "schema_version": 2})])
    with pytest.raises(ValidationError, match=r"(?s)e\.jsonl:1.*upgrade mlfactor"):
        list(read_events([str(path)]))


def test_reader_names_a_missing_file(tmp_path: Path) -> None:
    """A missing event file is NotFoundError naming it."""
    with pytest.raises(NotFoundError, match=r"nope\.jsonl"):
        list(read_events([str(tmp_path / "nope.jsonl")]))


def test_reader_reports_a_truncated_gzip_file(tmp_path: Path) -> None:
    """A cut-off gzip stream is a ValidationError naming the file, not a traceback."""
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress((json.dumps(PREDICTION) + "\n").encode() * 50)[:60])
    with pytest.raises(ValidationError, match=r"cut\.gz"):
        list(read_events([str(path)]))
