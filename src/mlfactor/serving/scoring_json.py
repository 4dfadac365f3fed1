"""The JSON shapes of a scoring request turned into rows: MLflow's four formats and ``/predict``.

``/invocations`` takes what ``mlflow models serve`` takes, with the same meaning:
``dataframe_split`` (``columns``, ``data``, optional ``index``),
``dataframe_records``, ``instances`` and ``inputs`` (records, a dict of
columns, scalars broadcast over the columns, one flat list for a one-column
model), plus an optional ``params`` object; other top-level keys are ignored.
Rows without column names (arrays of values) are refused as MLflow refuses them
for a model with named columns: reading them in signature order would turn a
wrong column order into wrong predictions. ``/predict`` takes only
``{"records": [{column: value, ...}, ...]}``.

Row counts are checked against the limit before any row is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlfactor.serving.request_error import (
    RequestError,
    Row,
    describe,
    name_text,
    names_text,
    plural,
    rows_text,
)

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
SPLIT_KEYS = ("columns", "data", "index")
RECORDS_HINT = 'objects such as {"column": value, ...}'


def _bad(*problems: str) -> RequestError:
    return RequestError(400, "invalid request", list(problems))


def repeated(names: Sequence[str]) -> list[str]:
    """Names that occur more than once in ``names``, each once, in order."""
    seen: set[str] = set()
    found: dict[str, None] = {}
    for name in names:
        if name in seen:
            found[name] = None
        seen.add(name)
    return list(found)


def check_row_count(count: int, max_rows: int) -> None:
    """RequestError 413 naming MLFACTOR_MAX_ROWS when ``count`` rows exceed ``max_rows``."""
    if count > max_rows:
        raise RequestError(
            413,
            "too many rows",
            [f"got {count} rows; the limit is {max_rows} (MLFACTOR_MAX_ROWS); send smaller batches"],
        )


def unnamed(where: str, columns: Sequence[str]) -> RequestError:
    """The schema error for rows sent as arrays of values, without column names."""
    if columns:
        expected = f"the model takes named columns ({names_text(columns, 6)})"
        fix = f'send {RECORDS_HINT} or "dataframe_split" with "columns"'
    else:
        expected = "the model has no signature to name them"
        fix = f"send {RECORDS_HINT}"
    return RequestError(
        400,
        "input without column names",
        [
            f"'{where}' sends rows as arrays of values without column names; {expected}, "
            f"so a wrong column order would silently give wrong predictions; {fix}"
        ],
        schema=True,
    )


def _records(value: list[Any], where: str, columns: Sequence[str] | None, max_rows: int) -> list[Row]:
    """Check ``value`` is a non-empty list of objects and return it (``columns`` None: no MLflow hint)."""
    if not value:
        raise _bad(f"'{where}' is empty; send at least one row")
    check_row_count(len(value), max_rows)
    kinds = set(map(type, value))
    if kinds == {dict}:
        return value
    if kinds == {list} and columns is not None:
        raise unnamed(where, columns)
    bad = [i for i, row in enumerate(value) if not isinstance(row, dict)]
    raise _bad(
        f"'{where}' {rows_text(bad)} must be {RECORDS_HINT}, got {describe(value[bad[0]])}",
    )


def _array(value: Any, where: str, columns: Sequence[str], max_rows: int) -> list[Row]:
    """Rows of ``instances``/``inputs`` given as an array."""
    one_column = isinstance(value, list) and value and len(columns) == 1
    if one_column and not any(isinstance(item, list | dict) for item in value):  # MLflow's rule
        check_row_count(len(value), max_rows)
        return [{columns[0]: item} for item in value]
    if not isinstance(value, list):
        raise _bad(
            f"'{where}' must be an array of {RECORDS_HINT} or an object of columns, got {describe(value)}"
        )
    return _records(value, where, columns, max_rows)


def _columns(value: dict[str, Any], where: str, max_rows: int) -> list[Row]:
    """Rows from a dict of columns ``{"a": [1, 2], "b": [3, 4]}``; scalars repeat, as in pandas."""
    if not value:
        raise _bad(f"'{where}' has no columns; send an object of columns such as {{\"a\": [1, 2]}}")
    lengths = {len(v) for v in value.values() if isinstance(v, list)}
    if len(lengths) > 1:
        sizes = {name: len(v) for name, v in value.items() if isinstance(v, list)}
        listed = ", ".join(f"{name_text(n)} has {s}" for n, s in list(sizes.items())[:6])
        raise _bad(f"'{where}' columns must all hold the same number of values; {listed}")
    count = lengths.pop() if lengths else 1
    if count == 0:
        raise _bad(f"'{where}' columns are empty; send at least one row")
    check_row_count(count, max_rows)
    if count == 1 and not any(isinstance(v, list) for v in value.values()):
        return [value]
    columns = [(name, v if isinstance(v, list) else [v] * count) for name, v in value.items()]
    return [{name: cells[i] for name, cells in columns} for i in range(count)]  # faster than dict(zip())


def _split(value: Any, columns: Sequence[str], max_rows: int) -> list[Row]:
    if not isinstance(value, dict):
        raise _bad(f"'dataframe_split' must be an object with 'columns' and 'data', got {describe(value)}")
    unknown = [key for key in value if key not in SPLIT_KEYS]
    if unknown or "data" not in value:
        raise _bad(
            "'dataframe_split' takes 'data' and optionally 'columns' and 'index'; "
            f"got keys {names_text(list(value))}"
        )
    data, names = value["data"], value.get("columns")
    if not isinstance(data, list):
        raise _bad(f"'dataframe_split.data' must be an array of rows, got {describe(data)}")
    if not data:
        raise _bad("'dataframe_split.data' is empty; send at least one row")
    check_row_count(len(data), max_rows)
    if names is None:
        raise unnamed("dataframe_split", columns)
    problems = []
    if not isinstance(names, list) or set(map(type, names)) - {str}:
        problems.append(f"'dataframe_split.columns' must be an array of names, got {describe(names)}")
    elif len(set(names)) != len(names):
        problems.append(f"'dataframe_split.columns' names {names_text(repeated(names))} more than once")
    index = value.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        problems.append(
            f"'dataframe_split.index' must be an array of {plural(len(data), 'label')} (one per row), "
            f"got {describe(index)}"
        )
    if problems:
        raise _bad(*problems)
    width = len(names)
    bad = [i for i, row in enumerate(data) if not isinstance(row, list) or len(row) != width]
    if bad:
        raise _bad(
            f"'dataframe_split.data' {rows_text(bad)} must be arrays of {plural(width, 'value')} "
            f"(one per column), got {describe(data[bad[0]])}"
        )
    positions = list(enumerate(names))
    return [{name: row[i] for i, name in positions} for row in data]  # faster than dict(zip())


def parse_invocations(
    payload: Any, columns: Sequence[str], *, max_rows: int
) -> tuple[list[Row], dict[str, object] | None]:
    """Rows and ``params`` of an MLflow scoring body; ``columns`` are the signature's names."""
    if not isinstance(payload, dict):
        raise _bad(f"expected a JSON object with one of {', '.join(FORMATS)}; got {describe(payload)}")
    formats = [key for key in FORMATS if key in payload]
    if len(formats) != 1:
        raise _bad(
            f"expected exactly one of {', '.join(FORMATS)} (plus optional 'params'); "
            f"got keys {names_text(list(payload))}"
        )
    kind = formats[0]
    value = payload[kind]
    params = payload.get("params")
    params = params if isinstance(params, dict) else None  # like MLflow: anything else is ignored
    if kind == "dataframe_split":
        return _split(value, columns, max_rows), params
    if kind == "dataframe_records":
        if not isinstance(value, list):
            raise _bad(f"'dataframe_records' must be an array of {RECORDS_HINT}, got {describe(value)}")
        return _records(value, kind, columns, max_rows), params
    if isinstance(value, dict):
        return _columns(value, kind, max_rows), params
    return _array(value, kind, columns, max_rows), params


def parse_predict(payload: Any, *, max_rows: int) -> list[Row]:
    """Rows of a ``/predict`` body ``{"records": [...]}`` (nothing else accepted)."""
    example = '{"records": [{column: value, ...}, ...]}'
    if not isinstance(payload, dict):
        raise _bad(f"expected a JSON object {example}, got {describe(payload)}")
    unknown = [key for key in payload if key != "records"]
    problems = [f"unexpected keys {names_text(unknown)}; the body has only 'records'"] if unknown else []
    if "records" not in payload:
        problems.insert(0, f"missing key 'records': expected {example}")
    if problems:
        raise _bad(*problems)
    records = payload["records"]
    if not isinstance(records, list):
        raise _bad(f"'records' must be an array of {RECORDS_HINT}, got {describe(records)}")
    return _records(records, "records", None, max_rows)
