"""CSV and parquet request bodies turned into rows, as ``mlflow models serve`` reads them.

CSV (``text/csv``) is what ``pandas.DataFrame.to_csv()`` writes: a header line
naming the columns in any order, an optional unnamed first column (the index,
dropped), one line per row. Cells are converted by the signature's column types
(a number column reads ``5.1``, a string column keeps ``"95120"``), an empty
cell is a missing value; a cell that does not convert stays a string, so the
schema check names it. Parquet (``application/vnd.apache.parquet``) is read
with pyarrow; the pandas index columns it may carry are dropped and values
become JSON values (timestamps as ISO strings, bytes as base64).

Both stop early: the row limit is checked while reading (CSV) or from the
file's metadata before any data is read (parquet). Every failure is a
RequestError, whatever the bytes.
"""

from __future__ import annotations

import base64
import csv
import datetime
import decimal
import io
import math
from collections.abc import Callable, Mapping
from typing import Any

from mlfactor.serving.request_error import RequestError, Row, name_text, names_text, plural, rows_text, short
from mlfactor.serving.scoring_json import check_row_count, repeated

PARQUET_EXPANSION = 64  # parquet data may be at most this many times the body once uncompressed
PARQUET_FLOOR = 16 * 2**20  # ... or this many bytes, whichever is larger
_NUMBER_KINDS = {"double", "float"}
_INTEGER_KINDS = {"long", "integer"}
_NON_FINITE = {"nan", "inf", "infinity"}


def _bad(subject: str, *problems: str) -> RequestError:
    return RequestError(400, subject, list(problems))


def _to_float(cell: str) -> Any:
    text = cell.strip()
    if not text:
        return None
    if "_" not in text:  # float() takes "1_0"; pandas does not
        try:
            value = float(text)
        except ValueError:
            return cell
        if math.isfinite(value) or text.lower().lstrip("+-") in _NON_FINITE:
            return value  # a literal nan/inf is a number the schema refuses by name
    return cell  # out of range or not a number: the schema names the string


def _to_int(cell: str) -> Any:
    text = cell.strip()
    if not text:
        return None
    if "_" not in text:
        try:
            return int(text)
        except ValueError:  # not an integer, or longer than Python's 4300-digit limit
            pass
    return cell


def _to_bool(cell: str) -> Any:
    text = cell.strip()
    return {"true": True, "false": False}.get(text.lower(), cell) if text else None


def _to_text(cell: str) -> Any:
    return cell if cell else None


def _infer(cell: str) -> Any:
    """No declared type (no signature): an integer, else a number, else the string, like pandas."""
    value = _to_int(cell)
    return _to_float(cell) if isinstance(value, str) else value


def _converter(kind: str | None) -> Callable[[str], Any]:
    if kind is None:
        return _infer
    if kind in _NUMBER_KINDS:
        return _to_float
    if kind in _INTEGER_KINDS:
        return _to_int
    return _to_bool if kind == "boolean" else _to_text


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _bad(
            "request body is not UTF-8",
            f"byte 0x{body[exc.start]:02x} at position {exc.start} is not valid UTF-8; "
            "send the CSV encoded as UTF-8",
        ) from None


def _header(names: list[str], kinds: Mapping[str, str | None]) -> list[str]:
    """Check the header line; return the column names (an empty first name is the index: '')."""
    if len(names) == 1 and kinds and names[0] not in kinds and (";" in names[0] or "\t" in names[0]):
        raise _bad(
            "CSV is not comma-separated",
            f"the header {name_text(names[0])} is one column; separate columns with commas",
        )
    unnamed = [i for i, name in enumerate(names) if not name and i > 0]
    if unnamed:
        positions = ", ".join(str(i + 1) for i in unnamed[:5])
        raise _bad("invalid CSV header", f"header column {positions} has no name; name every column")
    twice = repeated(names)
    if twice:
        raise _bad("invalid CSV header", f"the header names {names_text(twice)} more than once")
    if kinds and not set(names) & set(kinds) and all(not isinstance(_infer(n), str) for n in names if n):
        raise RequestError(
            400,
            "CSV without a header",
            [
                f"the first line ({names_text(names, 4)}) looks like data, not column names; "
                f"start the CSV with a header line naming the columns ({names_text(list(kinds), 6)})"
            ],
            schema=True,
        )
    return names


def read_csv(body: bytes, kinds: Mapping[str, str | None], *, max_rows: int) -> list[Row]:
    """Rows of a CSV body; ``kinds`` maps the signature's columns to MLflow types (None: infer)."""
    text = _text(body)
    if not text or text.isspace():
        raise _bad("empty request body", "expected CSV with a header line, got an empty body")
    reader = csv.reader(io.StringIO(text))
    rows: list[Row] = []
    ragged: list[int] = []
    ragged_count = 0
    try:
        header = next(line for line in reader if line)
        names = _header(header, kinds)
        width = len(names)
        convert = [_converter(kinds.get(name)) for name in names]
        keep = [i for i, name in enumerate(names) if name]  # drop the unnamed index column
        kept = [names[i] for i in keep]
        for line in reader:
            if not line:
                continue  # blank lines are skipped, as pandas does
            if len(line) != width:
                ragged_count += 1
                if len(ragged) < 5:
                    ragged.append(reader.line_num)
                continue
            check_row_count(len(rows) + 1, max_rows)
            rows.append({names[i]: convert[i](line[i]) for i in keep})
    except csv.Error as exc:
        raise _bad("malformed CSV", f"line {reader.line_num}: {short(str(exc), 80)}") from None
    if ragged_count:
        lines = rows_text(ragged, total=ragged_count, noun="line")
        raise _bad(
            "malformed CSV",
            f"{lines} do{'es' if ragged_count == 1 else ''} not have {plural(width, 'field')} "
            f"like the header ({names_text(kept, 6)}); "
            "give every line one value per header column (quote values that contain commas)",
        )
    if not rows:
        raise _bad("no rows", "the CSV has a header but no rows; send at least one row")
    return rows


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return value


def _parquet_error(problem: Exception) -> RequestError:
    return _bad(
        "invalid parquet body",
        f"{short(str(problem) or type(problem).__name__, 160)}; "
        "send a parquet file as pandas.DataFrame.to_parquet() writes it",
    )


def read_parquet(body: bytes, *, max_rows: int) -> list[Row]:
    """Rows of a parquet body (pandas index columns dropped, values as JSON values)."""
    if not body:
        raise _bad("empty request body", "expected a parquet file, got an empty body")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(body))
        meta = parquet.metadata
        schema = parquet.schema_arrow
        expanded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        pandas = schema.pandas_metadata or {}  # JSON inside the file: may be damaged too
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for bad bytes; all are the client's
        raise _parquet_error(exc) from None
    check_row_count(meta.num_rows, max_rows)
    limit = max(PARQUET_EXPANSION * len(body), PARQUET_FLOOR)
    if expanded > limit:
        raise RequestError(
            413,
            "parquet body too large once uncompressed",
            [
                f"the data takes {expanded} bytes uncompressed; the limit is {limit} bytes "
                f"({PARQUET_EXPANSION} times the body); send smaller batches"
            ],
        )
    listed = pandas.get("index_columns") if isinstance(pandas, dict) else None
    index = {name for name in listed if isinstance(name, str)} if isinstance(listed, list) else set()
    names = [name for name in schema.names if name not in index]
    twice = repeated(names)
    if twice:
        raise _bad("invalid parquet body", f"the file has columns {names_text(twice)} more than once")
    if not meta.num_rows:
        raise _bad("no rows", "the parquet file has no rows; send at least one row")
    try:
        table = parquet.read(columns=names, use_pandas_metadata=False)
        rows: list[Row] = table.to_pylist()
    except Exception as exc:  # noqa: BLE001 - corrupt pages surface only here
        raise _parquet_error(exc) from None
    convert = [
        field.name
        for field in table.schema
        if pa.types.is_temporal(field.type)
        or pa.types.is_binary(field.type)
        or pa.types.is_decimal(field.type)
        or pa.types.is_large_binary(field.type)
        or pa.types.is_fixed_size_binary(field.type)
    ]
    if not rows or not names:
        raise _bad("no columns", "the parquet file has no data columns; send at least one column")
    for row in rows if convert else ():
        for name in convert:
            row[name] = _jsonable(row[name])
    return rows
