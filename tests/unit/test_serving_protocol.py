"""The request formats: /predict records and MLflow's scoring protocol, bytes to rows without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlfactor.serving.protocol import (
    MediaType,
    RequestError,
    ScoringInput,
    media_type,
    read_invocations,
    read_predict,
)
from mlfactor.serving.request_error import MAX_PROBLEMS
from mlfactor.serving.schema import Field, InputSchema

COLUMNS = ["a", "b"]
ROWS = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]
JSON = "application/json"


def invocations(
    payload: Any, columns: Any = COLUMNS, *, content_type: str | None = JSON, max_rows: int = 100
) -> ScoringInput:
    """read_invocations on ``payload`` encoded as JSON."""
    return read_invocations(json.dumps(payload).encode(), content_type, columns, max_rows=max_rows)


def refused(call: Any, *args: Any, **kwargs: Any) -> RequestError:
    """The RequestError ``call`` raises."""
    with pytest.raises(RequestError) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 4.0]]}}, id="split"
        ),
        pytest.param(
            {"dataframe_split": {"columns": ["a", "b"], "index": [7, 9], "data": [[1.0, 2.0], [3.0, 4.0]]}},
            id="split-with-index",
        ),
        pytest.param(
            {"dataframe_split": {"columns": ["b", "a"], "data": [[2.0, 1.0], [4.0, 3.0]]}},
            id="split-other-order",
        ),
        pytest.param({"dataframe_records": ROWS}, id="records"),
        pytest.param({"instances": ROWS}, id="instances-records"),
        pytest.param({"instances": {"a": [1.0, 3.0], "b": [2.0, 4.0]}}, id="instances-columns"),
        pytest.param({"inputs": ROWS}, id="inputs-records"),
        pytest.param({"inputs": {"a": [1.0, 3.0], "b": [2.0, 4.0]}}, id="inputs-columns"),
        pytest.param(
            {"inputs": ROWS, "signature_name": "x", "other": 1}, id="unknown-top-level-keys-ignored"
        ),
    ],
)
def test_every_mlflow_json_format_gives_the_same_rows(payload: dict[str, Any]) -> None:
    """Each scoring-protocol JSON format gives the same rows, named by column."""
    assert invocations(payload).rows == ROWS


def test_scalars_in_a_columns_object_repeat_like_pandas() -> None:
    """``inputs`` columns mixing arrays and scalars repeat the scalar on every row, as MLflow does."""
    assert invocations({"inputs": {"a": [1.0, 3.0], "b": 2.0}}).rows == [
        {"a": 1.0, "b": 2.0},
        {"a": 3.0, "b": 2.0},
    ]
    assert invocations({"inputs": {"a": 1.0, "b": 2.0}}).rows == [{"a": 1.0, "b": 2.0}]


def test_a_one_column_model_takes_a_flat_list() -> None:
    """For a one-column signature, ``inputs: [1, 2]`` is that column's values, MLflow's rule."""
    assert invocations({"inputs": [1.0, 2.0]}, ["x"]).rows == [{"x": 1.0}, {"x": 2.0}]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"temperature": 0.5}, {"temperature": 0.5}, id="object"),
        pytest.param(3, None, id="not-an-object-ignored-like-mlflow"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_params_are_returned_beside_the_rows(params: Any, expected: Any) -> None:
    """``params`` comes back as given when it is an object; anything else is ignored, as MLflow does."""
    payload: dict[str, Any] = {"inputs": ROWS}
    if params is not None:
        payload["params"] = params
    assert invocations(payload) == ScoringInput(ROWS, expected)


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        pytest.param(
            {"dataframe_split": {"data": [[1.0, 2.0]]}}, "dataframe_split", id="split-without-columns"
        ),
        pytest.param({"instances": [[1.0, 2.0]]}, "instances", id="instances-list-of-lists"),
        pytest.param({"inputs": [[1.0, 2.0]]}, "inputs", id="inputs-list-of-lists"),
        pytest.param({"dataframe_records": [[1.0, 2.0]]}, "dataframe_records", id="records-as-arrays"),
    ],
)
def test_rows_without_column_names_are_refused_as_mlflow_refuses_them(payload: Any, where: str) -> None:
    """Arrays of values without names are a 400 schema error, never read in signature order."""
    error = refused(invocations, payload)
    body = error.body()
    assert error.status == 400
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert body["error_class"] == "SCHEMA_ENFORCEMENT_FAILED"
    assert f"'{where}' sends rows as arrays of values without column names" in body["problems"][0]
    assert "'a', 'b'" in body["problems"][0]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        pytest.param({"records": ROWS}, "expected exactly one of dataframe_split", id="wrong-format-key"),
        pytest.param(
            {"dataframe_records": ROWS, "inputs": ROWS}, "got keys 'dataframe_records', 'inputs'", id="two"
        ),
        pytest.param({"params": {}}, "got keys 'params'", id="params-only"),
        pytest.param([ROWS], "expected a JSON object", id="top-level-array"),
        pytest.param(
            {"dataframe_split": [[1, 2]]}, "must be an object with 'columns' and 'data'", id="split-list"
        ),
        pytest.param(
            {"dataframe_split": {"data": [[1, 2]], "x": 1}}, "got keys 'data', 'x'", id="split-extra-key"
        ),
        pytest.param({"dataframe_split": {"columns": ["a", "b"]}}, "takes 'data'", id="split-no-data"),
        pytest.param(
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0]]}},
            "row 0 must be arrays of 2 values",
            id="split-short-row",
        ),
        pytest.param(
            {"dataframe_split": {"columns": ["a", "a"], "data": [[1.0, 2.0]]}},
            "names 'a' more than once",
            id="split-repeated-column",
        ),
        pytest.param(
            {"dataframe_split": {"columns": ["a", "b"], "index": [1, 2], "data": [[1.0, 2.0]]}},
            "'dataframe_split.index' must be an array of 1 label",
            id="split-index-length",
        ),
        pytest.param(
            {"dataframe_split": {"columns": [1, 2], "data": [[1, 2]]}}, "array of names", id="split-int-names"
        ),
        pytest.param({"dataframe_records": {"a": 1}}, "must be an array of objects", id="records-object"),
        pytest.param({"dataframe_records": []}, "is empty", id="records-empty"),
        pytest.param({"dataframe_records": [1, ROWS[0]]}, "row 0 must be objects", id="records-scalar-row"),
        pytest.param({"inputs": {"a": [1.0], "b": [1.0, 2.0]}}, "same number of values", id="ragged-columns"),
        pytest.param({"inputs": {}}, "has no columns", id="inputs-empty-object"),
        pytest.param({"inputs": "abc"}, 'got string "abc"', id="inputs-string"),
        pytest.param({"inputs": [1.0, 2.0]}, "rows 0, 1 must be objects", id="flat-list-for-two-columns"),
    ],
)
def test_malformed_scoring_bodies_are_400_bad_request(payload: Any, fragment: str) -> None:
    """A malformed scoring body is a 400 BAD_REQUEST naming what is wrong."""
    error = refused(invocations, payload)
    assert error.status == 400
    assert error.body()["error_code"] == "BAD_REQUEST"
    assert fragment in str(error)


def test_predict_body_gives_its_records() -> None:
    """/predict takes {"records": [...]} and returns the rows as sent."""
    assert read_predict(json.dumps({"records": ROWS}).encode(), JSON, max_rows=10) == ROWS


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        pytest.param({}, "missing key 'records'", id="no-records"),
        pytest.param({"records": []}, "is empty", id="empty-records"),
        pytest.param({"records": {"a": 1}}, "must be an array of objects such as", id="records-object"),
        pytest.param({"records": [[1, 2]]}, "row 0 must be objects", id="row-array"),
        pytest.param({"records": ROWS, "extra": 1}, "unexpected keys 'extra'", id="extra-key"),
        pytest.param({"dataframe_records": ROWS}, "missing key 'records'", id="mlflow-format"),
    ],
)
def test_bad_predict_bodies_are_400_with_the_reason(payload: Any, fragment: str) -> None:
    """A malformed /predict body raises a 400 naming what is wrong; /predict takes only its own format."""
    error = refused(read_predict, json.dumps(payload).encode(), JSON, max_rows=10)
    assert error.status == 400
    assert fragment in str(error)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"dataframe_records": ROWS * 3}, id="records"),
        pytest.param({"dataframe_split": {"columns": COLUMNS, "data": [[1, 2]] * 6}}, id="split"),
        pytest.param({"inputs": {"a": [1] * 6, "b": 2}}, id="columns"),
    ],
)
def test_more_rows_than_the_limit_is_413_naming_the_variable(payload: Any) -> None:
    """Over MLFACTOR_MAX_ROWS is 413 with the count, the limit and the variable to change."""
    error = refused(invocations, payload, max_rows=5)
    assert error.status == 413
    assert error.body()["error_code"] == "REQUEST_TOO_LARGE"
    assert "got 6 rows; the limit is 5 (MLFACTOR_MAX_ROWS)" in error.problems[0]


def test_predict_row_limit_is_413() -> None:
    """/predict counts rows against the same limit."""
    error = refused(read_predict, json.dumps({"records": ROWS * 2}).encode(), JSON, max_rows=3)
    assert error.status == 413


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        pytest.param("application/json", MediaType.JSON, id="json"),
        pytest.param("Application/JSON", MediaType.JSON, id="json-any-case"),
        pytest.param("application/json; charset=UTF-8", MediaType.JSON, id="charset-upper"),
        pytest.param(' application/json ; Charset="utf-8" ', MediaType.JSON, id="spaces-quotes-param-case"),
        pytest.param("application/json;", MediaType.JSON, id="trailing-semicolon"),
        pytest.param("text/csv", MediaType.CSV, id="csv"),
        pytest.param("TEXT/CSV; charset=utf-8", MediaType.CSV, id="csv-upper"),
        pytest.param("application/vnd.apache.parquet", MediaType.PARQUET, id="parquet"),
        pytest.param(None, MediaType.JSON, id="none-is-json"),
        pytest.param("", MediaType.JSON, id="empty-is-json"),
    ],
)
def test_media_types_are_matched_case_insensitively(content_type: str | None, expected: MediaType) -> None:
    """JSON, CSV and parquet are recognised in any case, with an optional utf-8 charset."""
    assert media_type(content_type, list(MediaType)) is expected


@pytest.mark.parametrize(
    ("content_type", "fragment"),
    [
        pytest.param(
            "application/x-www-form-urlencoded", "expected 'application/json' or 'text/csv'", id="form"
        ),
        pytest.param("application/x-parquet", "'application/vnd.apache.parquet'", id="x-parquet"),
        pytest.param("application/json; charset=latin-1", "charset 'latin-1' is not supported", id="latin1"),
        pytest.param(
            "application/json; charset=utf8", "charset 'utf8' is not supported", id="utf8-like-mlflow"
        ),
        pytest.param("application/json; something=something", "unknown parameter 'something'", id="param"),
        pytest.param("not_a_supported_content_type", "expected", id="mlflow-test-value"),
    ],
)
def test_other_content_types_are_415_like_mlflow(content_type: str, fragment: str) -> None:
    """Other types, charsets and parameters are 415, as mlflow models serve answers them."""
    error = refused(invocations, {"inputs": ROWS}, content_type=content_type)
    assert error.status == 415
    assert error.body()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert fragment in error.problems[0]


def test_predict_takes_json_only() -> None:
    """/predict answers 415 to CSV, naming the one type it takes."""
    error = refused(read_predict, b"a,b\n1,2\n", "text/csv", max_rows=10)
    assert error.status == 415
    assert "this endpoint takes only 'application/json'" in error.problems[0]


def test_csv_cells_are_typed_by_the_schema_when_it_is_given() -> None:
    """With the InputSchema a string column keeps "95120"; with names only, cells are inferred."""
    schema = InputSchema((Field("zip", "string"), Field("cost", "double")))
    body = b"zip,cost\n95120,10.45\n"
    assert read_invocations(body, "text/csv", schema, max_rows=10).rows == [{"zip": "95120", "cost": 10.45}]
    assert read_invocations(body, "text/csv", ["zip", "cost"], max_rows=10).rows == [
        {"zip": 95120, "cost": 10.45}
    ]


def test_error_bodies_have_mlflow_keys_and_a_bounded_problem_list() -> None:
    """The body carries error_code, error_class, sqlstate, message and at most MAX_PROBLEMS + 1 problems."""
    error = RequestError(400, "checked", [f"problem {i}" for i in range(500)])
    body = error.body()
    assert set(body) == {"error_code", "error_class", "sqlstate", "message", "problems"}
    assert (body["error_code"], body["error_class"], body["sqlstate"]) == (
        "BAD_REQUEST",
        "INVALID_PARAMETER_VALUE",
        "KAM00",
    )
    assert len(body["problems"]) == MAX_PROBLEMS + 1
    assert body["problems"][-1] == f"... and {500 - MAX_PROBLEMS} more problems of the same kinds"


def test_errors_describe_values_without_echoing_them() -> None:
    """A long string in a bad place is described by type and a short prefix, never copied whole."""
    secret = "s3cr3t-" + "x" * 500
    error = refused(read_predict, json.dumps({"records": secret}).encode(), JSON, max_rows=10)
    assert secret not in str(error)
    assert "got string" in str(error)


def test_huge_key_lists_are_cut_in_messages() -> None:
    """A body with 200 000 top-level keys and no format key names ten of them and counts the rest."""
    payload = {f"k{i}": i for i in range(200_000)}
    error = refused(invocations, payload)
    assert "and 199990 more" in error.problems[0]
    assert len(str(error)) < 1000


def test_messages_always_encode_as_utf8() -> None:
    """A key spelled with a lone surrogate escape is named in a message that still encodes as UTF-8."""
    body = b'{"records": [{"a": 1, "\\ud800": 2}]}'
    rows = read_predict(body, JSON, max_rows=10)
    with pytest.raises(RequestError) as caught:
        InputSchema((Field("a", "double"),)).validate(rows)
    assert "\\ud800" in caught.value.problems[0]
    json.dumps(caught.value.body(), ensure_ascii=False).encode("utf-8")
