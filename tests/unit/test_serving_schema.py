"""Validation from the model signature: every bad field named, with expected type and what arrived."""

from __future__ import annotations

import pytest

from mlfactor.serving.protocol import RequestError
from mlfactor.serving.request_error import MAX_PROBLEMS
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
    assert "field 'n': expected a 64-bit integer (long), got number 1.5 (rows 0, 1)" in text
    assert "field 'x' is missing: expected a number (double) (row 1)" in text
    assert "unexpected field 'nn' (row 0). Did you mean 'n'?" in text
    assert len(problems) == 4
    assert caught.value.body()["error_class"] == "SCHEMA_ENFORCEMENT_FAILED"


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


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param(Field("x", "double"), 10**400, id="400-digit-int-for-double"),
        pytest.param(Field("n", "long"), 2**63, id="past-int64"),
        pytest.param(Field("n", "integer"), 2**31, id="past-int32"),
        pytest.param(Field("n", "long"), -(2**63) - 1, id="below-int64"),
    ],
)
def test_integers_outside_the_column_type_are_refused(field: Field, value: int) -> None:
    """An integer no double (or int64/int32) can hold is a 400 naming the field, not a 500 on conversion."""
    with pytest.raises(RequestError, match=f"field '{field.name}': expected"):
        InputSchema((field,)).validate([{field.name: value}])


def test_a_short_description_stands_for_a_huge_integer() -> None:
    """A 5000-bit integer is described by its size, never printed."""
    with pytest.raises(RequestError) as caught:
        InputSchema((Field("x", "double"),)).validate([{"x": 2**5000}])
    assert "got integer of about 1506 digits" in str(caught.value)


def test_200000_unknown_fields_give_a_bounded_error() -> None:
    """A row with 200 000 unknown fields lists MAX_PROBLEMS of them and counts the rest, each once."""
    row = {"x": 1.0, "n": 1, **{f"f{i}": i for i in range(200_000)}}
    with pytest.raises(RequestError) as caught:
        SCHEMA.validate([row])
    problems = caught.value.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0].startswith("unexpected field 'f0' (row 0).")
    assert problems[-1] == f"... and {200_000 - MAX_PROBLEMS} more problems of the same kinds"
    assert len(set(problems)) == len(problems)


def test_10000_rows_wrong_in_every_field_give_one_line_per_field() -> None:
    """10 000 rows each wrong in every field: one problem per field with its first rows and a count."""
    with pytest.raises(RequestError) as caught:
        SCHEMA.validate([{"x": "bad", "n": "bad", "flag": 1, "name": 2}] * 10_000)
    assert caught.value.problems == [
        f"field '{name}': expected {expected}, got {got} (rows 0, 1, 2, 3, 4 and 9995 more)"
        for name, expected, got in [
            ("x", "a number (double)", 'string "bad"'),
            ("n", "a 64-bit integer (long)", 'string "bad"'),
            ("flag", "true or false (boolean)", "number 1"),
            ("name", "a string (string)", "number 2"),
        ]
    ]


def test_problems_are_listed_wrong_then_missing_then_unexpected() -> None:
    """The order of the list does not depend on which row came first."""
    with pytest.raises(RequestError) as caught:
        SCHEMA.validate([{"zz": 1}, {"x": "a"}])
    kinds = [p.split(":")[0] for p in caught.value.problems]
    assert kinds[0] == "field 'x'"
    assert "missing" in caught.value.problems[1]
    assert caught.value.problems[-1].startswith("unexpected field 'zz'")
