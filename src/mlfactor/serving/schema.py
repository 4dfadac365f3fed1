"""Input validation derived from the MLflow model signature.

:class:`InputSchema` holds the signature's columns (name, MLflow type,
required). :meth:`InputSchema.validate` checks every row and raises one
:class:`~mlfactor.serving.protocol.RequestError` listing every bad field, the
expected type and what arrived (grouped by field, with the rows concerned).
:meth:`InputSchema.to_matrix` turns valid numeric rows into the float matrix
the native estimator predicts on, in signature order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlfactor.masking import is_secret_name
from mlfactor.names import did_you_mean
from mlfactor.serving.protocol import RequestError, Row, describe, rows_text

NUMERIC = {"double", "float", "long", "integer"}
_EXPECTED = {
    "double": "a number",
    "float": "a number",
    "long": "an integer",
    "integer": "an integer",
    "boolean": "true or false",
    "string": "a string",
}


@dataclass(frozen=True)
class Field:
    """One input column of the model signature."""

    name: str
    kind: str  # MLflow type name: double, float, long, integer, boolean, string, ... or "any"
    required: bool = True

    @property
    def expected(self) -> str:
        """Human description of the accepted JSON values."""
        text = _EXPECTED.get(self.kind, "any value")
        return f"{text} ({self.kind})" if self.kind in _EXPECTED else text

    def accepts(self, value: Any) -> bool:
        """Tell whether ``value`` (not null) has a JSON type this field takes."""
        kind = self.kind
        if kind in {"double", "float"}:  # NaN and Infinity literals are not JSON numbers
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if kind in {"long", "integer"}:
            return isinstance(value, int) and not isinstance(value, bool)
        if kind == "boolean":
            return isinstance(value, bool)
        if kind == "string":
            return isinstance(value, str)
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

    def to_dict(self) -> list[dict[str, Any]]:
        """Return the schema as JSON (for /metadata)."""
        return [{"name": f.name, "type": f.kind, "required": f.required} for f in self.fields]

    def validate(self, rows: Sequence[Row], *, allow_extra: bool = False) -> None:
        """Raise RequestError 400 naming every bad field; do nothing when every row is valid."""
        if not self.fields:
            return
        by_name = {f.name: f for f in self.fields}
        missing, wrong, extra = self._collect(rows, by_name, allow_extra=allow_extra)
        problems = []
        for name, (where, sample) in wrong.items():
            field = by_name[name]
            shown = "a value (masked)" if is_secret_name(name) else describe(sample)
            problems.append(f"field '{name}': expected {field.expected}, got {shown} ({rows_text(where)})")
        for name, where in missing.items():
            problems.append(
                f"field '{name}' is missing: expected {by_name[name].expected} ({rows_text(where)})"
            )
        for name, where in extra.items():
            hint = did_you_mean(name, list(by_name))
            problems.append(
                f"unexpected field '{name}' ({rows_text(where)}).{hint} "
                f"Expected only {', '.join(self.names)}."
            )
        if problems:
            subject = (
                f"{len(rows)} row{'s' if len(rows) != 1 else ''} checked against the model's input schema"
            )
            raise RequestError(400, subject, problems)

    def _collect(
        self, rows: Sequence[Row], by_name: dict[str, Field], *, allow_extra: bool
    ) -> tuple[dict[str, list[int]], dict[str, tuple[list[int], Any]], dict[str, list[int]]]:
        """Rows with each missing field, each wrongly typed field (with a sample) and each extra key."""
        missing: dict[str, list[int]] = {}
        wrong: dict[str, tuple[list[int], Any]] = {}
        extra: dict[str, list[int]] = {}
        for index, row in enumerate(rows):
            for field in self.fields:
                value = row.get(field.name)
                if value is None:
                    if field.required:
                        missing.setdefault(field.name, []).append(index)
                elif not field.accepts(value):
                    wrong.setdefault(field.name, ([], value))[0].append(index)
            if not allow_extra:
                for key in row:
                    if key not in by_name:
                        extra.setdefault(key, []).append(index)
        return missing, wrong, extra

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
        return pd.DataFrame.from_records(list(rows), columns=self.names)
