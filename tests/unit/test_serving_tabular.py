"""CSV and parquet scoring bodies turned into rows the way mlflow models serve reads them."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest

from mlfactor.serving.protocol import RequestError, read_invocations
from mlfactor.serving.schema import Field, InputSchema

SCHEMA = InputSchema((Field("a", "double"), Field("b", "long"), Field("zip", "string", required=False)))
FRAME = pd.DataFrame({"a": [1.5, 2.5], "b": [1, 2]})
ROWS = [{"a": 1.5, "b": 1}, {"a": 2.5, "b": 2}]
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"


def rows(body: bytes, content_type: str, *, max_rows: int = 100) -> list[dict[str, Any]]:
    """The rows read_invocations reads from ``body`` for SCHEMA."""
    return read_invocations(body, content_type, SCHEMA, max_rows=max_rows).rows


def refused(body: bytes, content_type: str, *, max_rows: int = 100) -> RequestError:
    """The RequestError read_invocations raises on ``body``."""
    with pytest.raises(RequestError) as caught:
        rows(body, content_type, max_rows=max_rows)
    return caught.value


def parquet(frame: pd.DataFrame) -> bytes:
    """``frame`` as pandas writes it to parquet."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def parquet_with_metadata(pandas_metadata: bytes) -> bytes:
    """A parquet file whose ``pandas`` metadata entry is ``pandas_metadata`` (damaged on purpose)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"a": [1.5], "b": [1]}).replace_schema_metadata({b"pandas": pandas_metadata})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(FRAME.to_csv(index=False).encode(), id="header"),
        pytest.param(FRAME.to_csv().encode(), id="with-index-column"),
        pytest.param(FRAME[["b", "a"]].to_csv(index=False).encode(), id="reordered-columns"),
        pytest.param(FRAME.to_csv(index=False, lineterminator="\r\n").encode(), id="crlf"),
        pytest.param(b"\xef\xbb\xbf" + FRAME.to_csv(index=False).encode(), id="utf8-bom"),
        pytest.param(b'"a","b"\n1.5,1\n\n2.5,2\n', id="quoted-header-blank-line"),
        pytest.param(b"a,b\n 1.5 , 1\n2.5,+2\n", id="spaces-and-sign"),
    ],
)
def test_csv_as_pandas_writes_it_gives_typed_rows(body: bytes) -> None:
    """CSV with a header (any column order, an index column, CRLF, BOM) gives rows typed by the signature."""
    assert rows(body, CSV) == ROWS


def test_csv_cells_convert_by_column_type() -> None:
    """A string column keeps digits as text, an empty cell is missing, extra columns stay as text."""
    body = b"a,b,zip,note\n1e3,7,095120,\n"
    assert rows(body, CSV) == [{"a": 1000.0, "b": 7, "zip": "095120", "note": None}]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(
            b"a,b\nwide,1\n", "field 'a': expected a number (double), got string \"wide\"", id="text"
        ),
        pytest.param(b"a,b\n1_0,1\n", 'got string "1_0"', id="underscore-digits"),
        pytest.param(b"a,b\n0x10,1\n", 'got string "0x10"', id="hex"),
        pytest.param(b"a,b\nTrue,1\n", 'got string "True"', id="boolean-text-is-not-a-number"),
        pytest.param(b"a,b\nnan,1\n", "got number nan", id="nan"),
        pytest.param(b"a,b\n1" + b"0" * 400 + b",1\n", 'got string "1000000000', id="400-digit-double"),
        pytest.param(b"a,b\n1.5,1" + b"0" * 5000 + b"\n", 'got string "1000000000', id="5000-digit-long"),
        pytest.param(
            b"a,b\n1.5,2.5\n", "field 'b': expected a 64-bit integer (long), got string \"2.5\"", id="float"
        ),
        pytest.param(b"a,b\n,1\n", "field 'a' is missing", id="empty-cell"),
        pytest.param(
            b"a,b\n1.5,\x002\n", "field 'b': expected a 64-bit integer (long), got string", id="nul-byte"
        ),
        pytest.param(b"b\n1\n", "field 'a' is missing", id="missing-column"),
    ],
)
def test_csv_cells_that_do_not_convert_are_named_by_the_schema(body: bytes, fragment: str) -> None:
    """A cell that is not of its column's type is a 400 schema error naming the field and the value."""
    scoring = read_invocations(body, CSV, SCHEMA, max_rows=10)
    with pytest.raises(RequestError) as caught:
        SCHEMA.validate(scoring.rows, allow_extra=True)
    assert caught.value.body()["error_class"] == "SCHEMA_ENFORCEMENT_FAILED"
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"", "got an empty body", id="empty"),
        pytest.param(b"a,b\n", "has a header but no rows", id="header-only"),
        pytest.param(
            b"a,b\n1,2,3\n", "line 2 does not have 2 fields like the header ('a', 'b')", id="long-row"
        ),
        pytest.param(b"a,b\n1\n2\n3,4\n", "lines 2, 3 do not have 2 fields", id="short-rows"),
        pytest.param(b"a,a\n1,2\n", "the header names 'a' more than once", id="repeated-column"),
        pytest.param(b"a,,b\n1,2,3\n", "header column 2 has no name", id="unnamed-column"),
        pytest.param(b"a;b\n1;2\n", "is one column; separate columns with commas", id="semicolons"),
        pytest.param(b"a,b\n\xff,1\n", "byte 0xff at position 4 is not valid UTF-8", id="invalid-utf8"),
        pytest.param(b'a,b\n"1,2\n', "malformed CSV", id="open-quote"),
    ],
)
def test_malformed_csv_is_400_naming_the_problem(body: bytes, fragment: str) -> None:
    """Empty, ragged, badly named or undecodable CSV is a 400 saying what to fix."""
    error = refused(body, CSV)
    assert error.status == 400
    assert fragment in str(error)


def test_csv_without_a_header_is_refused_as_a_schema_error() -> None:
    """A first line of numbers is data, not names: a 400 schema error asking for the header, like MLflow."""
    error = refused(b"1.5,1\n2.5,2\n", CSV)
    assert error.body()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "looks like data, not column names" in error.problems[0]
    assert "'a', 'b', 'zip'" in error.problems[0]


def test_csv_stops_reading_at_the_row_limit() -> None:
    """A CSV with more rows than MLFACTOR_MAX_ROWS is 413 as soon as the limit is passed."""
    body = b"a,b\n" + b"1.5,1\n" * 1_000_000
    error = refused(body, CSV, max_rows=10)
    assert error.status == 413
    assert "got 11 rows; the limit is 10 (MLFACTOR_MAX_ROWS)" in error.problems[0]


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(FRAME, id="plain"),
        pytest.param(FRAME.set_index(pd.Index([7, 9], name="id")), id="with-index"),
        pytest.param(FRAME[["b", "a"]], id="reordered-columns"),
        pytest.param(FRAME.astype({"a": "float32"}), id="float32"),
    ],
)
def test_parquet_gives_the_rows_without_the_index(frame: pd.DataFrame) -> None:
    """A parquet file as pandas writes it gives its rows; the pandas index is dropped."""
    assert rows(parquet(frame), PARQUET) == ROWS


def test_parquet_values_become_json_values() -> None:
    """Nulls become missing values, timestamps ISO strings and bytes base64, as in a JSON body."""
    frame = pd.DataFrame(
        {"a": [None, 1.0], "when": pd.to_datetime(["2024-01-02", "2024-01-03"]), "raw": [b"\x01", b"\x02"]}
    )
    assert rows(parquet(frame), PARQUET) == [
        {"a": None, "when": "2024-01-02T00:00:00", "raw": "AQ=="},
        {"a": 1.0, "when": "2024-01-03T00:00:00", "raw": "Ag=="},
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"", "got an empty body", id="empty"),
        pytest.param(b"not parquet at all", "Parquet magic bytes not found", id="junk"),
        pytest.param(
            parquet(FRAME)[:60], "send a parquet file as pandas.DataFrame.to_parquet() writes it", id="cut"
        ),
        pytest.param(parquet(FRAME.iloc[:0]), "has no rows", id="no-rows"),
        pytest.param(parquet_with_metadata(b"{not json"), "Expecting property name", id="damaged-metadata"),
        pytest.param(parquet_with_metadata(b"\xff\xfe"), "can't decode byte", id="undecodable-metadata"),
    ],
)
def test_malformed_parquet_is_400(body: bytes, fragment: str) -> None:
    """Empty, junk, truncated and row-less parquet bodies are a 400 naming the problem."""
    error = refused(body, PARQUET)
    assert error.status == 400
    assert fragment in str(error)


def test_parquet_row_limit_is_checked_before_reading() -> None:
    """A parquet file with more rows than the limit is 413 from its metadata."""
    error = refused(parquet(pd.concat([FRAME] * 10)), PARQUET, max_rows=5)
    assert error.status == 413
    assert "got 20 rows; the limit is 5" in error.problems[0]
