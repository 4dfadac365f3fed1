"""String and number limits a model declares in its MLmodel metadata, checked as 400s."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, DataType, Schema

from mlfactor.search.model import search_metadata
from mlfactor.serving.request_error import RequestError
from mlfactor.serving.schema import InputSchema, read_constraints


@pytest.fixture(scope="module")
def schema() -> InputSchema:
    """The docs-search model's input schema, built from a real MLflow Model with its metadata."""
    signature = ModelSignature(
        inputs=Schema([ColSpec(DataType.string, "query"), ColSpec(DataType.long, "k", required=False)])
    )
    return InputSchema.from_model(Model(signature=signature, metadata=search_metadata()))


def problems(schema: InputSchema, rows: list[dict[str, Any]]) -> list[str]:
    """The problems of an invalid request (fails the test when the rows are valid)."""
    with pytest.raises(RequestError) as caught:
        schema.validate(rows)
    assert caught.value.status == 400
    return caught.value.problems


def test_limits_are_read_from_the_metadata(schema: InputSchema) -> None:
    """query: 1 to 1000 characters; k: 1 to 50; both shown in the schema /metadata lists."""
    assert schema.to_dict() == [
        {"name": "query", "type": "string", "required": True, "min_length": 1, "max_length": 1000},
        {"name": "k", "type": "long", "required": False, "minimum": 1, "maximum": 50},
    ]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        pytest.param({}, "field 'query' is missing: expected a non-blank string", id="missing"),
        pytest.param({"query": 5}, "got number 5", id="wrong-type"),
        pytest.param({"query": ""}, "got an empty string", id="empty"),
        pytest.param({"query": "   "}, "got a string of 0 characters", id="blank"),
        pytest.param(
            {"query": "x" * 1001}, "of at most 1000 characters (string), got a string of 1001", id="long"
        ),
        pytest.param(
            {"query": "ok", "k": 0}, "field 'k': expected a 64-bit integer from 1 to 50", id="k-low"
        ),
        pytest.param({"query": "ok", "k": "3"}, 'got string "3"', id="k-string"),
    ],
)
def test_bad_values_name_field_value_and_limit(
    schema: InputSchema, row: dict[str, Any], expected: str
) -> None:
    """Each bad row is one problem naming the field, what was expected and what arrived."""
    found = problems(schema, [row])
    assert len(found) == 1 and expected in found[0], found


def test_valid_rows_pass_and_k_may_be_left_out(schema: InputSchema) -> None:
    """A query alone, or with k in range, is valid; the frame leaves out a k no row gives."""
    schema.validate([{"query": "how do I roll back"}, {"query": "x" * 1000, "k": 50}])
    assert list(schema.to_frame([{"query": "a"}]).columns) == ["query"]
    assert list(schema.to_frame([{"query": "a"}, {"query": "b", "k": 2}]).columns) == ["query", "k"]


def test_metadata_without_constraints_changes_nothing() -> None:
    """Malformed or absent constraint sections are ignored (the signature alone applies)."""
    assert read_constraints({}) == {}
    assert read_constraints({"mlfactor": {"constraints": {"q": {"max_length": "10", "minimum": True}}}}) == {
        "q": {}
    }


def test_limits_as_json_schema_keywords(schema: InputSchema) -> None:
    """/docs.json can show the limits: minLength/maxLength of query, minimum/maximum of k."""
    query, k = schema.fields
    assert query.json_limits() == {"minLength": 1, "maxLength": 1000}
    assert k.json_limits() == {"minimum": 1, "maximum": 50}
