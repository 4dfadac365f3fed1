"""Validation from the model signature: every bad field named, with expected type and what arrived."""

from __future__ import annotations

import pytest

from mlfactor.serving.protocol import RequestError
from mlfactor.serving.schema import Field, InputSchema

SCHEMA = InputSchema(
    (
        Field("x", "double"),
        Field("n", "long"),
        Field("flag", "boolean", required=False),
        Field("name", "string", required=False),
    )
)


def test_valid_rows_pass() -> None:
    """Rows with the right types (ints accepted for doubles) raise nothing."""
    SCHEMA.validate([{"x": 1, "n": 2, "flag": True, "name": "a"}, {"x": 1.5, "n": -3}])


def test_every_problem_is_reported_at_once() -> None:
    """Wrong types, missing and extra fields all appear in one error, with rows and expectations."""
    rows = [{"x": "abc", "n": 1.5, "nn": 1}, {"n": True}]
    with pytest.raises(RequestError) as caught:
        SCHEMA.validate(rows)
    problems = caught.value.problems
    text = "\n".join(problems)
    assert caught.value.status == 400
    assert "field 'x': expected a number (double), got string \"abc\" (row 0)" in text
    assert "field 'n': expected an integer (long), got number 1.5 (rows 0, 1)" in text
    assert "field 'x' is missing: expected a number (double) (row 1)" in text
    assert "unexpected field 'nn' (row 0). Did you mean 'n'?" in text
    assert len(problems) == 4


def test_extra_fields_are_allowed_when_asked() -> None:
    """The MLflow protocol path ignores extra columns, as mlflow models serve does."""
    SCHEMA.validate([{"x": 1.0, "n": 1, "other": "z"}], allow_extra=True)


def test_booleans_are_not_numbers() -> None:
    """True is not accepted where a number is expected (JSON booleans are not 1/0)."""
    with pytest.raises(RequestError, match="got boolean true"):
        SCHEMA.validate([{"x": True, "n": 1}])


def test_secret_looking_fields_are_masked_in_errors() -> None:
    """A bad value in a field whose name looks secret is not shown."""
    schema = InputSchema((Field("api_token", "double"),))
    with pytest.raises(RequestError) as caught:
        schema.validate([{"api_token": "hunter2"}])
    assert "hunter2" not in str(caught.value)
    assert "masked" in str(caught.value)


def test_many_bad_rows_are_summarised() -> None:
    """Thousands of bad rows give one line per field, listing the first rows and a count."""
    with pytest.raises(RequestError) as caught:
        SCHEMA.validate([{"x": "bad", "n": 1}] * 5000)
    assert caught.value.problems == [
        "field 'x': expected a number (double), got string \"bad\" (rows 0, 1, 2, 3, 4 and 4995 more)"
    ]


def test_matrix_follows_signature_order() -> None:
    """The float matrix lists columns in signature order whatever the key order of each row."""
    schema = InputSchema((Field("a", "double"), Field("b", "long")))
    matrix = schema.to_matrix([{"b": 2, "a": 1.5}])
    assert matrix.tolist() == [[1.5, 2.0]]
    assert schema.numeric


def test_schema_from_an_mlflow_signature() -> None:
    """Names, types and required flags come from the MLflow signature."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("double", "a"), ColSpec("string", "b", required=False)])
    )
    schema = InputSchema.from_signature(signature)
    assert schema.to_dict() == [
        {"name": "a", "type": "double", "required": True},
        {"name": "b", "type": "string", "required": False},
    ]
    assert not schema.numeric


def test_nan_and_infinity_literals_are_refused() -> None:
    """Python's JSON parser accepts NaN and Infinity; the schema refuses them where a number is expected."""
    with pytest.raises(RequestError, match="got number nan"):
        SCHEMA.validate([{"x": float("nan"), "n": 1}])
    with pytest.raises(RequestError, match="got number inf"):
        SCHEMA.validate([{"x": float("inf"), "n": 1}])
