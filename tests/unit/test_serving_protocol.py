"""The request formats: /predict records and the MLflow scoring protocol, parsed without a server."""

from __future__ import annotations

import pytest

from mlfactor.serving.protocol import (
    RequestError,
    check_content_type,
    decode_json,
    parse_invocations,
    parse_predict,
)

COLUMNS = ["a", "b"]
ROWS = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 4.0]]}}, id="split"
        ),
        pytest.param(
            {"dataframe_split": {"columns": ["b", "a"], "data": [[2.0, 1.0], [4.0, 3.0]]}},
            id="split-other-order",
        ),
        pytest.param({"dataframe_records": ROWS}, id="records"),
        pytest.param({"instances": ROWS}, id="instances-records"),
        pytest.param({"instances": [[1.0, 2.0], [3.0, 4.0]]}, id="instances-positional"),
        pytest.param({"inputs": {"a": [1.0, 3.0], "b": [2.0, 4.0]}}, id="inputs-columns"),
        pytest.param({"inputs": ROWS, "params": {"x": 1}}, id="inputs-records-with-params"),
    ],
)
def test_every_mlflow_format_parses_to_the_same_rows(payload: dict) -> None:
    """Each scoring-protocol format gives the same rows, named by column."""
    assert parse_invocations(payload, COLUMNS) == ROWS


def test_predict_body_gives_its_records() -> None:
    """/predict takes {"records": [...]} and returns the rows as sent."""
    assert parse_predict({"records": ROWS}) == ROWS


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        pytest.param({}, "missing key 'records'", id="no-records"),
        pytest.param({"records": []}, "is empty", id="empty-records"),
        pytest.param({"records": {"a": 1}}, "must be an array of objects, got object", id="records-object"),
        pytest.param({"records": [1, {"a": 1}]}, "row 0 must be objects", id="row-not-object"),
        pytest.param({"records": ROWS, "extra": 1}, "unexpected key 'extra'", id="extra-key"),
        pytest.param([1, 2], "expected a JSON object", id="top-level-array"),
    ],
)
def test_bad_predict_bodies_are_400_with_the_reason(payload: object, fragment: str) -> None:
    """A malformed /predict body raises a 400 RequestError naming what is wrong."""
    with pytest.raises(RequestError) as caught:
        parse_predict(payload)
    assert caught.value.status == 400
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        pytest.param({"records": ROWS}, "expected exactly one of dataframe_split", id="wrong-format-key"),
        pytest.param(
            {"dataframe_records": ROWS, "inputs": ROWS},
            "got keys: dataframe_records, inputs",
            id="two-formats",
        ),
        pytest.param(
            {"dataframe_split": [[1, 2]]}, "must be an object with 'columns' and 'data'", id="split-list"
        ),
        pytest.param({"instances": [[1.0]]}, "must be arrays of 2 values (a, b)", id="positional-short"),
        pytest.param({"inputs": {"a": [1.0], "b": [1.0, 2.0]}}, "same length", id="ragged-columns"),
    ],
)
def test_bad_invocations_bodies_are_400_with_the_reason(payload: object, fragment: str) -> None:
    """A malformed scoring-protocol body raises a 400 RequestError naming what is wrong."""
    with pytest.raises(RequestError) as caught:
        parse_invocations(payload, COLUMNS)
    assert caught.value.status == 400
    assert fragment in str(caught.value)


def test_errors_describe_values_without_echoing_them() -> None:
    """A long string in a bad place is described by type and a short prefix, never copied whole."""
    secret = "s3cr3t-" + "x" * 500
    with pytest.raises(RequestError) as caught:
        parse_predict({"records": secret})
    assert secret not in str(caught.value)
    assert "got string" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"   ", "empty", id="blank"),
        pytest.param(b'{"records": [', "line 1 column", id="truncated"),
        pytest.param(b"\xff\xfe", "UTF-8", id="not-utf8"),
    ],
)
def test_undecodable_bodies_are_400(body: bytes, fragment: str) -> None:
    """Empty, truncated and non-UTF-8 bodies are 400 with a precise reason."""
    with pytest.raises(RequestError) as caught:
        decode_json(body)
    assert caught.value.status == 400
    assert fragment in str(caught.value)


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", None])
def test_json_content_types_are_accepted(content_type: str | None) -> None:
    """JSON (with or without a utf-8 charset, or no header at all) is accepted."""
    check_content_type(content_type)


@pytest.mark.parametrize(
    "content_type", ["text/csv", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_other_content_types_are_415(content_type: str) -> None:
    """Anything but JSON in UTF-8 is 415, like mlflow models serve."""
    with pytest.raises(RequestError) as caught:
        check_content_type(content_type)
    assert caught.value.status == 415
