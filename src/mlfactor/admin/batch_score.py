"""``mlfactor admin batch-score``: score a CSV or Parquet file in bounded memory.

The model is resolved exactly as the service resolves it (the Bento's packed
model when ``MLFACTOR_BENTO_MODEL`` is set, else ``--model-uri`` or
``MLFACTOR_MODEL_URI`` / ``NAME@ALIAS`` resolved once to a concrete version) and
loaded with the service's own loader, and predictions come from the service's
own :meth:`~mlfactor.serving.model.ServedModel.predict`, so a row scores the
same here as over HTTP.

The input is streamed with pyarrow, a few MiB at a time, and scored in slices
of ``chunk_rows`` rows: peak memory does not grow with the file. Every value
is checked against the model signature; a bad file is read to the end so the
error lists every bad column with its row numbers, and nothing is written.
Output goes to a temporary file beside the target and is moved into place
only when every row was scored: a failure never leaves a truncated output.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlfactor.bento_store import bentoml_stores
from mlfactor.errors import NotFoundError, ValidationError
from mlfactor.log import event, get_logger
from mlfactor.names import did_you_mean, rows_text
from mlfactor.serving.model import load_from_bento_store, load_from_registry
from mlfactor.settings import Settings

logger = get_logger(__name__)

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
NUMERIC = {"double": pa.float64(), "float": pa.float64(), "long": pa.int64(), "integer": pa.int64()}
CSV_BLOCK_BYTES = 4 << 20
MAX_ROWS_SHOWN = 20
Progress = Callable[[int, int | None], None]  # (rows done, estimated total rows)


@dataclass(frozen=True)
class BatchResult:
    """What a batch-scoring job did."""

    input: str
    output: str
    rows: int
    model_name: str
    model_version: str
    model_source: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping of every field."""
        return dict(self.__dict__)


def file_format(path: Path, role: str) -> str:
    """Return ``csv`` or ``parquet`` from the file suffix; ValidationError otherwise."""
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValidationError(
            f"{role} file",
            [f"{path}: unknown format {path.suffix or '(no suffix)'!r}; expected .csv or .parquet"],
        )
    return found


def load_served_model(settings: Settings, model_uri: str | None = None) -> Any:
    """Load the model the service would serve (same resolution, same loader)."""
    if settings.bento_model and model_uri is None:
        with bentoml_stores(settings):
            return load_from_bento_store(settings.bento_model, settings.environ)
    uri = model_uri or settings.resolved_model_uri
    return load_from_registry(settings, [uri])[uri]


def _csv_names(path: Path) -> list[str]:
    with path.open("rb") as handle:
        return list(pacsv.open_csv(handle, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names)


def _csv_batches(path: Path, names: list[str]) -> Iterator[pa.RecordBatch]:
    """Stream a CSV with every column as text (types are checked against the signature, not guessed).

    The reader gets an open file object, not a path: given a path, pyarrow reads
    ahead in the background without bound (a 200 MiB file held 150 MiB before
    the first batch was used); from a file object it reads one block at a time.
    """
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, null_values=[""], strings_can_be_null=True
    )
    options = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False)
    with path.open("rb") as handle:
        yield from pacsv.open_csv(handle, read_options=options, convert_options=convert)


def _parquet_batches(path: Path, chunk_rows: int) -> tuple[list[str], Iterator[pa.RecordBatch], int]:
    parquet = pq.ParquetFile(path)
    names = list(parquet.schema_arrow.names)
    return names, parquet.iter_batches(batch_size=chunk_rows), parquet.metadata.num_rows


def _rows_text(rows: list[int], total: int, csv: bool) -> str:
    """``data rows 1, 2 and 3 more (CSV lines 2, 3 and 3 more)``: data row numbers, and file lines for CSV."""
    text = "data " + rows_text(rows, MAX_ROWS_SHOWN, total=total)
    if csv:
        text += f" (CSV {rows_text([r + 1 for r in rows], MAX_ROWS_SHOWN, total=total, noun='line')})"
    return text


@dataclass
class _Problems:
    """Bad values found so far, per column: (first row numbers, total count, a sample value)."""

    wrong: dict[str, tuple[list[int], int, Any]]
    missing: dict[str, tuple[list[int], int]]

    def add_wrong(self, name: str, rows: list[int], sample: Any) -> None:
        seen, count, first = self.wrong.get(name, ([], 0, sample))
        self.wrong[name] = ((seen + rows)[:MAX_ROWS_SHOWN], count + len(rows), first)

    def add_missing(self, name: str, rows: list[int]) -> None:
        seen, count = self.missing.get(name, ([], 0))
        self.missing[name] = ((seen + rows)[:MAX_ROWS_SHOWN], count + len(rows))

    def __bool__(self) -> bool:
        return bool(self.wrong or self.missing)

    def messages(self, schema: Any, csv: bool) -> list[str]:
        by_name = {f.name: f for f in schema.fields}
        out = [
            f"column '{name}': expected {by_name[name].expected}, got {sample!r} "
            f"at {_rows_text(rows, n, csv)}"
            for name, (rows, n, sample) in self.wrong.items()
        ]
        out += [
            f"column '{name}' has no value (empty or NaN) at {_rows_text(rows, n, csv)}; "
            f"expected {by_name[name].expected}"
            for name, (rows, n) in self.missing.items()
        ]
        return out


def _nan_or_null(array: pa.Array) -> pa.Array:
    if pa.types.is_floating(array.type):
        return pc.fill_null(pc.or_(array.is_null(), pc.is_nan(array)), True)
    return array.is_null()


def _cast_per_value(array: pa.Array, target: pa.DataType) -> tuple[pa.Array, list[int]]:
    """Cast value by value (only on the error path) to find every index that does not convert."""
    converted: list[Any] = []
    bad: list[int] = []
    for index, value in enumerate(array.to_pylist()):
        if value is None:
            converted.append(None)
            continue
        try:
            converted.append(pc.cast(pa.array([value]), target)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            converted.append(None)
            bad.append(index)
    return pa.array(converted, type=target), bad


def convert_column(
    field: Any, array: pa.Array | None, length: int, first_row: int, problems: _Problems
) -> pa.Array:
    """Return ``array`` typed as the signature field says; record bad and empty values by row number."""
    if array is None:  # an optional column absent from the file
        return pa.nulls(length)
    target = NUMERIC.get(field.kind) or {"boolean": pa.bool_(), "string": pa.string()}.get(field.kind)
    bad: list[int] = []
    converted = array
    if target is not None and array.type != target:
        try:
            converted = pc.cast(array, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            converted, bad = _cast_per_value(array, target)
            problems.add_wrong(field.name, [first_row + i for i in bad], array[bad[0]].as_py())
    if field.required:
        empty = set(pc.indices_nonzero(_nan_or_null(converted)).to_pylist()) - set(bad)
        if empty:
            problems.add_missing(field.name, [first_row + i for i in sorted(empty)])
    return converted


def _predictions_array(values: list[Any]) -> pa.Array:
    if values and isinstance(values[0], list | dict):
        return pa.array([json.dumps(v) for v in values], type=pa.string())
    return pa.array(values)


class _Writer:
    """Write batches to a temporary file beside the target; move it into place only on :meth:`commit`."""

    def __init__(self, target: Path, fmt: str) -> None:
        self.target = target
        self.fmt = fmt
        self.temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        self._writer: Any = None
        self._schema: pa.Schema | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            self.temp.parent.mkdir(parents=True, exist_ok=True)
            if self.fmt == "csv":
                self._writer = pacsv.CSVWriter(
                    str(self.temp), batch.schema, write_options=pacsv.WriteOptions(quoting_style="needed")
                )
            else:
                self._writer = pq.ParquetWriter(str(self.temp), batch.schema)
            self._schema = batch.schema
        elif batch.schema != self._schema:
            batch = batch.cast(self._schema)
        self._writer.write_batch(batch)

    def commit(self, empty_schema: pa.Schema) -> None:
        if self._writer is None:  # no rows at all: write the header only
            self.write(pa.RecordBatch.from_pylist([], schema=empty_schema))
        self._writer.close()
        self._writer = None
        self.temp.replace(self.target)

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self.temp.unlink(missing_ok=True)


def _check_columns(schema: Any, names: list[str], prediction_column: str, source: Path) -> None:
    problems = []
    if not schema.fields:
        problems.append(
            "the model has no column-based input signature; log it with a signature to batch score"
        )
    unknown = [n for n in names if n not in schema.names]
    for field in schema.fields:
        if field.required and field.name not in names:
            problems.append(
                f"column '{field.name}' is missing ({field.expected}).{did_you_mean(field.name, unknown)} "
                f"The file has columns: {', '.join(names) or 'none'}"
            )
    if prediction_column in names:
        problems.append(
            f"the file already has a column '{prediction_column}'; choose another --prediction-column"
        )
    if problems:
        raise ValidationError(
            f"{source} against the model's input schema ({', '.join(schema.names)})", problems
        )


def _score_piece(
    served: Any,
    piece: pa.RecordBatch,
    *,
    names: list[str],
    first_row: int,
    problems: _Problems,
    writer: _Writer,
    prediction_column: str,
) -> None:
    """Check one slice of rows; once every row so far is valid, predict it and write it."""
    schema = served.schema
    columns = [
        convert_column(
            f, piece.column(f.name) if f.name in names else None, piece.num_rows, first_row, problems
        )
        for f in schema.fields
    ]
    if problems:
        return  # keep reading to report every bad row, write nothing
    records = pa.Table.from_arrays(columns, names=schema.names).to_pylist()
    predictions = _predictions_array(served.predict(records))
    typed = dict(zip(schema.names, columns, strict=True))
    out = [_as_written(piece.column(name), typed.get(name)) for name in names]
    writer.write(pa.RecordBatch.from_arrays([*out, predictions], names=[*names, prediction_column]))


def _as_written(read: pa.Array, typed: pa.Array | None) -> pa.Array:
    """The column as written: text read from a CSV gets the signature's type (numbers stay numbers).

    Columns the model does not use, and typed (Parquet) columns, are written as read.
    """
    if typed is not None and pa.types.is_string(read.type) and not pa.types.is_string(typed.type):
        return typed
    return read


def batch_score(
    settings: Settings,
    input_path: Path,
    output_path: Path,
    *,
    model_uri: str | None = None,
    chunk_rows: int = 20_000,
    prediction_column: str = "prediction",
    progress: Progress | None = None,
    model: Any = None,
) -> BatchResult:
    """Score every row of ``input_path`` into ``output_path`` (CSV or Parquet), streaming in chunks.

    ``model`` is a model from :func:`load_served_model`, to score several files
    with one load; by default the model is resolved and loaded here.

    Raises ValidationError (exit 65) listing every bad column with its row
    numbers; the output file is then neither created nor touched.
    """
    started = time.perf_counter()
    in_fmt = file_format(input_path, "input")
    out_fmt = file_format(output_path, "output")
    if not input_path.is_file():
        raise NotFoundError(f"input file {input_path} does not exist.")
    if output_path.resolve() == input_path.resolve():
        raise ValidationError("output file", [f"{output_path} is the input file; write to another path"])
    served = model if model is not None else load_served_model(settings, model_uri)
    schema = served.schema
    total: int | None = None
    if in_fmt == "csv":
        names = _csv_names(input_path)
        batches = _csv_batches(input_path, names)
    else:
        names, batches, total = _parquet_batches(input_path, chunk_rows)
    _check_columns(schema, names, prediction_column, input_path)
    event(
        logger,
        "batch_score_started",
        input=str(input_path),
        output=str(output_path),
        model_name=served.name,
        model_version=served.version,
        model_source=served.source,
    )
    writer = _Writer(output_path, out_fmt)
    problems = _Problems({}, {})
    done = 0
    try:
        for batch in batches:
            if total is None and batch.num_rows:  # CSV: estimate rows from the first block's density
                total = max(
                    int(input_path.stat().st_size * batch.num_rows / max(batch.nbytes, 1)), batch.num_rows
                )
            for offset in range(0, batch.num_rows, chunk_rows):
                piece = batch.slice(offset, chunk_rows)
                _score_piece(
                    served,
                    piece,
                    names=names,
                    first_row=done + 1,
                    problems=problems,
                    writer=writer,
                    prediction_column=prediction_column,
                )
                done += piece.num_rows
                if progress is not None:
                    progress(done, max(total or done, done))
        if problems:
            raise ValidationError(
                f"{input_path}: {done} rows checked against the model's input schema; no output written",
                problems.messages(schema, in_fmt == "csv"),
            )
        empty = pa.schema(
            [*(pa.field(n, pa.string()) for n in names), pa.field(prediction_column, pa.string())]
        )
        writer.commit(empty)
    except BaseException:
        writer.abort()
        raise
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # release the input file now, not at garbage collection
    result = BatchResult(
        input=str(input_path),
        output=str(output_path),
        rows=done,
        model_name=served.name,
        model_version=served.version,
        model_source=served.source,
        seconds=round(time.perf_counter() - started, 3),
    )
    event(logger, "batch_score_finished", **result.to_dict())
    return result
