"""Strict JSON bodies: what Python's parser would turn into a 500 or a silent surprise is a 400 instead."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from mlfactor.serving.json_body import count_members, decode_json
from mlfactor.serving.protocol import RequestError

RECORD = {"sepal_length": 5.1, "sepal_width": 3.5}


def refused(body: bytes) -> RequestError:
    """The RequestError decode_json raises on ``body``."""
    with pytest.raises(RequestError) as caught:
        decode_json(body)
    assert caught.value.status == 400
    assert caught.value.body()["error_code"] == "BAD_REQUEST"
    return caught.value


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"", "expected a JSON object", id="empty"),
        pytest.param(b" \n\t ", "expected a JSON object", id="blank"),
        pytest.param(
            b"this is,,,, not valid json", "Expecting value at line 1 column 1 (found 't')", id="mlflow"
        ),
        pytest.param(b'{"inputs": [', "at line 1 column 13 (found the end of the body)", id="truncated"),
        pytest.param(b'{"inputs": []} x', "Extra data", id="trailing-garbage"),
        pytest.param(b'{"inputs": "\xff"}', "byte 0xff at position 12 is not valid UTF-8", id="invalid-utf8"),
        pytest.param(b'{"a": NaN}', "NaN is not valid JSON", id="nan"),
        pytest.param(b'{"a": -Infinity}', "-Infinity is not valid JSON", id="minus-infinity"),
        pytest.param(b'{"a": 1' + b"0" * 5000 + b"}", "more than 4300 digits", id="5000-digit-integer"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested too deeply", id="deep-arrays"),
        pytest.param(b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply", id="deep-objects"),
        pytest.param(
            b'{"dataframe_records": [{"x": 1, "x": 2}]}',
            "key 'x' appears more than once",
            id="duplicate-in-row",
        ),
        pytest.param(
            b'{"inputs": [], "inputs": [1]}', "key 'inputs' appears more than once", id="duplicate-top"
        ),
        pytest.param(
            b'{"a": {"b": {"c": {"d": {"e": 1, "e": 2}}}}}',
            "key 'e' appears more than once",
            id="duplicate-deep",
        ),
        pytest.param(
            b'{"t": "12:30", "x": 1, "x": 2}',
            "key 'x' appears more than once",
            id="duplicate-beside-colon-string",
        ),
    ],
)
def test_malformed_json_is_400_naming_the_problem(body: bytes, fragment: str) -> None:
    """Each malformed body is one 400 BAD_REQUEST problem saying what is wrong."""
    assert fragment in refused(body).problems[0]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'\xef\xbb\xbf{"inputs": [1]}', id="utf8-bom"),
        pytest.param('{"inputs": [1]}'.encode("utf-16"), id="utf16-with-bom"),
        pytest.param('{"inputs": [1]}'.encode("utf-32-le"), id="utf32"),
        pytest.param(b'  \n{"inputs": [1]}\n ', id="surrounding-whitespace"),
    ],
)
def test_encodings_mlflow_accepts_are_accepted(body: bytes) -> None:
    """UTF-8 with a BOM and UTF-16/32 bodies parse, as json.loads (and so mlflow models serve) reads them."""
    assert decode_json(body) == {"inputs": [1]}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"dataframe_records": [{"time": "12:30", "url": "http://x"}]}, id="colons-in-values"),
        pytest.param({"inputs": [{"a:b": 1}]}, id="colon-in-key"),
        pytest.param({"inputs": [{"a": {"nested": {"deeper": [{"x": 1}]}}}]}, id="deep-objects"),
        pytest.param({"inputs": [RECORD, [1, 2], "x"]}, id="mixed-list"),
        pytest.param(
            {"params": {"a": {"b": 1}}, "inputs": {"x": [1], "y": [{"z": 2}]}}, id="objects-in-columns"
        ),
    ],
)
def test_bodies_without_repeated_keys_are_never_refused(payload: dict[str, Any]) -> None:
    """Colons in strings and objects the fast count skips take the exact path and still parse."""
    assert decode_json(json.dumps(payload).encode()) == payload


def test_the_fast_count_never_exceeds_the_true_member_count() -> None:
    """count_members counts a subset of members, so equality with the ':' count proves no key repeats."""
    rng = random.Random(10)  # noqa: S311 - a seeded generator for test data, not for secrets

    def value(depth: int) -> Any:
        kind = rng.choice(["dict", "list", "scalar"] if depth < 5 else ["scalar"])
        if kind == "dict":
            return {f"k{i}": value(depth + 1) for i in range(rng.randrange(4))}
        if kind == "list":
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return rng.choice([1, 2.5, "s", None, True])

    def every_member(item: Any) -> int:
        if isinstance(item, dict):
            return len(item) + sum(every_member(v) for v in item.values())
        if isinstance(item, list):
            return sum(every_member(v) for v in item)
        return 0

    for _ in range(500):
        sample = value(0)
        assert count_members(sample) <= every_member(sample) == json.dumps(sample).count(":")
    records = {"dataframe_records": [RECORD] * 100}
    assert count_members(records) == every_member(records)  # the common body takes the fast path


def test_large_numbers_a_double_cannot_hold_parse_for_the_schema_to_name() -> None:
    """A 400-digit integer parses (the schema then refuses it by field); 1e999 becomes inf for the same."""
    payload = decode_json(b'{"a": 1' + b"0" * 400 + b', "b": 1e999}')
    assert payload["a"] == 10**400
    assert payload["b"] == float("inf")
