"""Generated malformed bodies: reading and validating them raises RequestError and nothing else, ever."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

from mlfactor.serving.protocol import RequestError, read_invocations, read_predict
from mlfactor.serving.schema import Field, InputSchema

SEED = 20261202
PER_KIND = 300  # bodies generated per kind below (bounded, seeded: the same bodies every run)
SCHEMA = InputSchema((Field("a", "double"), Field("b", "double"), Field("c", "long")))
CONTENT_TYPES = [
    "application/json",
    "text/csv",
    "application/vnd.apache.parquet",
    None,
    "APPLICATION/JSON; charset=utf-8",
    "application/json; charset=latin-1",
    "text/csv; q=1",
    "multipart/form-data; boundary=x",
    "\x00\xff;;==;",
]
VALID_JSON = [
    {"dataframe_split": {"columns": ["a", "b", "c"], "index": [0, 1], "data": [[1.0, 2, 3], [4, 5.5, 6]]}},
    {"dataframe_records": [{"a": 1.0, "b": 2.0, "c": 3, "s": "x"}]},
    {"instances": [{"a": 1, "b": 2, "c": 3}]},
    {"inputs": {"a": [1, 2], "b": [3, 4], "c": 5}, "params": {"p": 1}},
    {"records": [{"a": 1.0, "b": 2.0, "c": 3}]},
]
VALID_CSV = b"a,b,c,s\n1.5,2,3,x\n4,5,6,\n"


def valid_parquet() -> bytes:
    """A small parquet body as pandas writes it."""
    buffer = io.BytesIO()
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5, 6]}).to_parquet(buffer)
    return buffer.getvalue()


def mutate(rng: random.Random, body: bytes) -> bytes:
    """One random damage to ``body``: cut, flipped, inserted or repeated bytes, or a hostile token."""
    tokens = [
        b"NaN",
        b"-Infinity",
        b"1" + b"0" * 400,
        b"9" * 5000,
        b"[" * 3000,
        b'"\\ud800"',
        b"\xff\xfe",
        b"\x00",
    ]
    tokens += [b'"a": 1, "a"', b",,,", b"{", b"}", b'"', b"\r\n", b"\xef\xbb\xbf", b"1e99999", b"-0", b"true"]
    where = rng.randrange(len(body) + 1)
    choice = rng.randrange(6)
    if choice == 0:
        return body[:where]
    if choice == 1 and body:
        at = min(where, len(body) - 1)
        return body[:at] + bytes([rng.randrange(256)]) + body[at + 1 :]
    if choice == 2:
        return body[:where] + rng.choice(tokens) + body[where:]
    if choice == 3:
        return body[:where] + body[where : where + rng.randrange(1, 40)] * rng.randrange(2, 50) + body[where:]
    if choice == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
    return body[where:] + body[:where]


def json_value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: deep, wide, wrongly typed."""
    scalars = [None, True, 0, -1, 10**400, 1e308, "", "a", "x" * 300, 1.5, [], {}]
    if depth > 4 or rng.random() < 0.3:
        return rng.choice(scalars)
    if rng.random() < 0.5:
        return [json_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    keys = ["a", "b", "c", "s", "data", "columns", "index", "inputs", "records", "params", "x"]
    return {rng.choice(keys): json_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def bodies() -> Iterator[tuple[bytes, str | None]]:
    """(body, content type) pairs: damaged JSON/CSV/parquet and random structures, seeded."""
    rng = random.Random(SEED)  # noqa: S311 - reproducible test data, not secrets
    parquet = valid_parquet()
    yield VALID_CSV, "text/csv"
    yield parquet, "application/vnd.apache.parquet"
    for payload in VALID_JSON:
        yield json.dumps(payload).encode(), "application/json"
    for _ in range(PER_KIND):
        yield mutate(rng, json.dumps(rng.choice(VALID_JSON)).encode()), rng.choice(CONTENT_TYPES)
        yield mutate(rng, VALID_CSV), rng.choice(CONTENT_TYPES)
        yield mutate(rng, parquet), "application/vnd.apache.parquet"
        fmt = rng.choice(["dataframe_split", "dataframe_records", "instances", "inputs", "records"])
        yield json.dumps({fmt: json_value(rng)}).encode(), "application/json"
        yield json.dumps(json_value(rng)).encode(), rng.choice(CONTENT_TYPES)


READERS: list[tuple[str, Callable[[bytes, str | None], list[dict[str, Any]]]]] = [
    ("invocations-schema", lambda b, t: read_invocations(b, t, SCHEMA, max_rows=50).rows),
    ("invocations-names", lambda b, t: read_invocations(b, t, SCHEMA.names, max_rows=50).rows),
    ("invocations-no-signature", lambda b, t: read_invocations(b, t, [], max_rows=50).rows),
    ("predict", lambda b, t: read_predict(b, t, max_rows=50)),
]


@pytest.mark.parametrize(("name", "reader"), READERS, ids=[name for name, _ in READERS])
def test_malformed_bodies_raise_only_request_error(name: str, reader: Callable[..., Any]) -> None:
    """Reading, validating and converting generated bad bodies gives rows or a 4xx RequestError, no more."""
    outcomes = {"accepted": 0, "refused": 0}
    for body, content_type in bodies():
        try:
            rows = reader(body, content_type)
            SCHEMA.validate(rows, allow_extra=name != "predict")  # as the service does per endpoint
            SCHEMA.to_matrix(rows)  # what the native path predicts on: valid rows always convert
            outcomes["accepted"] += 1
        except RequestError as exc:
            assert exc.status in {400, 413, 415}, (body[:200], content_type)
            json.dumps(exc.body())  # the error body always serialises
            outcomes["refused"] += 1
    assert outcomes["refused"] > outcomes["accepted"] > 0, outcomes
