"""Pure rules of the admin jobs: durations, file formats, column conversion with row numbers."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from mlfactor.admin.batch_score import _Problems, convert_column, file_format
from mlfactor.errors import ValidationError
from mlfactor.serving.schema import Field, InputSchema


@pytest.mark.parametrize(
    ("name", "fmt"), [("a.csv", "csv"), ("a.CSV", "csv"), ("a.parquet", "parquet"), ("a.pq", "parquet")]
)
def test_file_formats_come_from_the_suffix(name: str, fmt: str) -> None:
    """CSV and Parquet are recognised from the file suffix."""
    assert file_format(Path(name), "input") == fmt


def test_unknown_file_format_is_refused() -> None:
    """Another suffix is an error naming the file and the accepted formats."""
    with pytest.raises(
        ValidationError, match=r"a\.json: unknown format '\.json'; expected \.csv or \.parquet"
    ):
        file_format(Path("a.json"), "input")


def test_text_values_convert_and_bad_rows_are_numbered_from_the_chunk_offset() -> None:
    """Numbers in text convert exactly; bad and empty values are reported with file-wide row numbers."""
    problems = _Problems({}, {})
    field = Field("x", "double")
    converted = convert_column(field, pa.array(["1.5", "abc", None, "1e-3", "nan"]), 5, 101, problems)
    assert converted.to_pylist()[:2] == [1.5, None]
    assert converted.to_pylist()[3] == 0.001
    schema = InputSchema((field,))
    messages = problems.messages(schema, csv=True)
    assert messages == [
        "column 'x': expected a number (double), got 'abc' at data row 102 (CSV line 103)",
        "column 'x' has no value (empty or NaN) at data rows 103, 105 (CSV lines 104, 106); "
        "expected a number (double)",
    ]


def test_integer_columns_refuse_fractions_and_optional_columns_may_be_empty() -> None:
    """A long column refuses 2.5; an optional column may be empty or absent."""
    problems = _Problems({}, {})
    convert_column(Field("n", "long"), pa.array(["2", "2.5"]), 2, 1, problems)
    convert_column(Field("o", "double", required=False), pa.array([None, None]), 2, 1, problems)
    absent = convert_column(Field("o", "double", required=False), None, 2, 1, problems)
    assert absent.null_count == 2
    assert list(problems.wrong) == ["n"]
    assert problems.wrong["n"][0] == [2]
    assert not problems.missing
