"""Input validation derived from the MLflow model signature.

:class:`InputSchema` holds the signature's columns (name, MLflow type,
required) and the limits a model declares beyond MLflow's types in its
MLmodel metadata (``metadata.mlfactor.constraints``: ``min_length`` and
``max_length`` of strings, counted on the text without surrounding blanks
for the minimum, ``minimum`` and ``maximum`` of numbers), so a string field is
checked like a numeric one: missing, wrong type, blank or too long are 400s.
:meth:`InputSchema.validate` checks every row and raises one
:class:`~mlfactor.serving.protocol.RequestError` listing every bad field, the
expected type and what arrived (grouped by field, with the rows concerned).
:meth:`InputSchema.to_matrix` turns valid numeric rows into the float matrix
the native estimator predicts on, in signature order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

from mlfactor.masking import is_secret_name
from mlfactor.names import did_you_mean
from mlfactor.serving.request_error import (
    MAX_PROBLEMS,
    MAX_SHOWN_ROWS,
    RequestError,
    Row,
    describe,
    name_text,
    rows_text,
)

NUMERIC = {"double", "float", "long", "integer"}
_INT_RANGES = {"long": (-(2**63), 2**63), "integer": (-(2**31), 2**31)}
_EXPECTED = {
    "double": "a number",
    "float": "a number",
    "long": "a 64-bit integer",
    "integer": "a 32-bit integer",
    "boolean": "true or false",
    "string": "a string",
}


@dataclass(frozen=True)
class Field:
    """One input column of the model signature."""

    name: str
    kind: str  # MLflow type name: double, float, long, integer, boolean, string, ... or "any"
    required: bool = True
    min_length: int | None = None  # strings: fewest characters once surrounding blanks are removed
    max_length: int | None = None  # strings: most characters
    minimum: float | None = None  # numbers: smallest value
    maximum: float | None = None  # numbers: largest value

    @property
    def expected(self) -> str:
        """Human description of the accepted JSON values, with the field's limits."""
        text = _EXPECTED.get(self.kind, "any value")
        if self.kind == "string" and (self.min_length or self.max_length is not None):
            text = "a non-blank string" if self.min_length == 1 else text
            if self.min_length and self.min_length > 1:
                text += f" of at least {self.min_length} characters"
            if self.max_length is not None:
                text += f" of at most {self.max_length} characters"
        elif self.kind in NUMERIC and (self.minimum is not None or self.maximum is not None):
            if self.minimum is not None and self.maximum is not None:
                text += f" from {self.minimum:g} to {self.maximum:g}"
            elif self.minimum is not None:
                text += f" of at least {self.minimum:g}"
            else:
                text += f" of at most {self.maximum:g}"
        return f"{text} ({self.kind})" if self.kind in _EXPECTED else text

    def json_limits(self) -> dict[str, float]:
        """The field's limits as JSON Schema keywords (minLength, maxLength, minimum, maximum)."""
        keywords = {
            "minLength": self.min_length,
            "maxLength": self.max_length,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }
        return {key: value for key, value in keywords.items() if value is not None}

    def breaks_limits(self, value: Any) -> str | None:
        """How ``value`` (of the right type) breaks the field's limits, or None when it keeps them."""
        if isinstance(value, str):
            if self.min_length and len(value.strip()) < self.min_length:
                return "an empty string" if not value else f"a string of {len(value.strip())} characters"
            if self.max_length is not None and len(value) > self.max_length:
                return f"a string of {len(value)} characters"
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (
                (self.minimum is not None and value < self.minimum)
                or (self.maximum is not None and value > self.maximum)
            )
        ):
            return describe(value)
        return None

    def accepts(self, value: Any) -> bool:
        """Tell whether ``value`` (not null) is a JSON value this field takes, in the type's range."""
        kind = self.kind
        if kind in {"double", "float"}:
            if type(value) is float:  # NaN and Infinity are not JSON numbers
                return math.isfinite(value)
            return type(value) is int and _fits_float(value)
        if kind in _INT_RANGES:
            low, high = _INT_RANGES[kind]
            return type(value) is int and low <= value < high
        if kind == "boolean":
            return isinstance(value, bool)
        if kind == "string":
            return isinstance(value, str)
        return True


def _fits_float(value: int) -> bool:
    try:
        float(value)
    except OverflowError:  # a 400-digit integer: no double holds it
        return False
    return True


@dataclass(frozen=True)
class InputSchema:
    """The input columns a model expects, in signature order."""

    fields: tuple[Field, ...]

    @property
    def names(self) -> list[str]:
        """Column names in signature order."""
        return [f.name for f in self.fields]

    @property
    def numeric(self) -> bool:
        """True when every column is a number (the fast float-matrix path applies)."""
        return bool(self.fields) and all(f.kind in NUMERIC for f in self.fields)

    @classmethod
    def from_signature(cls, signature: Any) -> InputSchema:
        """Build from an ``mlflow.models.ModelSignature`` with a column-based input schema."""
        inputs = getattr(signature, "inputs", None)
        if inputs is None or not getattr(inputs, "has_input_names", lambda: False)():
            return cls(())
        fields = []
        for spec in inputs.inputs:
            kind = getattr(getattr(spec, "type", None), "name", None) or "any"
            fields.append(Field(str(spec.name), kind, bool(getattr(spec, "required", True))))
        return cls(tuple(fields))

    @classmethod
    def from_model(cls, model_metadata: Any) -> InputSchema:
        """Build from a loaded pyfunc's ``metadata`` (an MLflow ``Model``): signature plus declared limits."""
        schema = cls.from_signature(getattr(model_metadata, "signature", None))
        extra = getattr(model_metadata, "metadata", None)
        return schema.with_constraints(read_constraints(extra if isinstance(extra, Mapping) else {}))

    def with_constraints(self, constraints: Mapping[str, Mapping[str, float]]) -> InputSchema:
        """The same fields with the limits ``constraints`` gives by field name (unknown names ignored)."""
        fields = []
        for field in self.fields:
            limits = constraints.get(field.name) or {}
            fields.append(
                replace(
                    field,
                    min_length=_limit(limits, "min_length", field.min_length),
                    max_length=_limit(limits, "max_length", field.max_length),
                    minimum=limits.get("minimum", field.minimum),
                    maximum=limits.get("maximum", field.maximum),
                )
            )
        return InputSchema(tuple(fields))

    def to_dict(self) -> list[dict[str, Any]]:
        """Return the schema as JSON (for /metadata)."""
        described = []
        for f in self.fields:
            item: dict[str, Any] = {"name": f.name, "type": f.kind, "required": f.required}
            item.update({k: getattr(f, k) for k in LIMITS if getattr(f, k) is not None})
            described.append(item)
        return described

    def validate(self, rows: Sequence[Row], *, allow_extra: bool = False) -> None:
        """Raise RequestError 400 naming the bad fields; do nothing when every row is valid.

        Work is linear in the input; the error lists at most ``MAX_PROBLEMS``
        problems (one per field and kind, with its first rows) and counts the rest.
        """
        if not self.fields:
            return
        found = _Problems()
        names = {f.name for f in self.fields}
        for index, row in enumerate(rows):
            for field in self.fields:
                value = row.get(field.name)
                if value is None:
                    if field.required:
                        found.add("missing", field.name, index, None)
                elif not field.accepts(value):
                    found.add("wrong", field.name, index, value)
                else:
                    broken = field.breaks_limits(value)
                    if broken is not None:
                        found.add("limit", field.name, index, broken)
            if not allow_extra and not row.keys() <= names:
                for key in row:
                    if key not in names:
                        found.add("extra", key, index, None)
        if found.count:
            subject = (
                f"{len(rows)} row{'s' if len(rows) != 1 else ''} checked against the model's input schema"
            )
            problems = [self._problem(*item) for item in found.first(MAX_PROBLEMS)]
            raise RequestError(400, subject, problems, schema=True, more=found.count - len(problems))

    def _problem(self, kind: str, name: str, where: list[int], count: int, sample: Any) -> str:
        rows = rows_text(where, total=count)
        if kind == "extra":
            hint = did_you_mean(name, self.names)
            return (
                f"unexpected field {name_text(name)} ({rows}).{hint} Expected only {', '.join(self.names)}."
            )
        field = next(f for f in self.fields if f.name == name)
        if kind == "missing":
            return f"field '{name}' is missing: expected {field.expected} ({rows})"
        if kind == "limit":
            return f"field '{name}': expected {field.expected}, got {sample} ({rows})"
        shown = "a value (masked)" if is_secret_name(name) else describe(sample)
        return f"field '{name}': expected {field.expected}, got {shown} ({rows})"

    def to_matrix(self, rows: Sequence[Row]) -> Any:
        """Return a float64 numpy matrix of ``rows`` in signature order (numeric schemas only)."""
        import numpy as np

        names = self.names
        return np.array([[row.get(name) for name in names] for row in rows], dtype=np.float64)

    def to_frame(self, rows: Sequence[Row]) -> Any:
        """Return a pandas DataFrame of ``rows`` with the signature's columns (extra keys dropped)."""
        import pandas as pd

        if not self.fields:
            return pd.DataFrame.from_records(list(rows))
        # An optional column no row gives is left out, as MLflow's signature check expects
        # (a column of nulls would fail its type conversion, e.g. long from NaN).
        names = [
            f.name for f in self.fields if f.required or any(row.get(f.name) is not None for row in rows)
        ]
        return pd.DataFrame.from_records(list(rows), columns=names)


LIMITS = ("min_length", "max_length", "minimum", "maximum")


def _limit(limits: Mapping[str, float], key: str, default: int | None) -> int | None:
    return int(limits[key]) if key in limits else default


def read_constraints(model_metadata: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The ``mlfactor.constraints`` a model's MLmodel metadata declares, numbers only, by field name."""
    section = model_metadata.get("mlfactor")
    declared = section.get("constraints") if isinstance(section, Mapping) else None
    if not isinstance(declared, Mapping):
        return {}
    found: dict[str, dict[str, float]] = {}
    for name, limits in declared.items():
        if isinstance(limits, Mapping):
            found[str(name)] = {
                key: value
                for key, value in limits.items()
                if key in LIMITS and isinstance(value, int | float) and not isinstance(value, bool)
            }
    return found


class _Problems:
    """Problems grouped by kind and field: the first rows, a count and one sample value each."""

    def __init__(self) -> None:
        self.by_kind: dict[str, dict[str, list[Any]]] = {"wrong": {}, "limit": {}, "missing": {}, "extra": {}}

    def add(self, kind: str, name: str, index: int, sample: Any) -> None:
        """Record that row ``index`` has problem ``kind`` in field ``name``."""
        group = self.by_kind[kind]
        entry = group.get(name)
        if entry is None:
            group[name] = [[index], 1, sample]
            return
        entry[1] += 1
        if len(entry[0]) < MAX_SHOWN_ROWS:
            entry[0].append(index)

    @property
    def count(self) -> int:
        """Distinct problems found."""
        return sum(map(len, self.by_kind.values()))

    def first(self, limit: int) -> list[tuple[str, str, list[int], int, Any]]:
        """Up to ``limit`` problems: wrong types, then missing fields, then unexpected ones."""
        every = (
            (kind, name, where, count, sample)
            for kind, group in self.by_kind.items()
            for name, (where, count, sample) in group.items()
        )
        return list(islice(every, limit))
