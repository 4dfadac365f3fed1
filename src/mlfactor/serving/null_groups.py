"""Rows of a request grouped by which optional columns they leave out, for MLflow's signature check.

pandas turns a partly missing integer column into floats with NaN, and MLflow's
signature enforcement then refuses it ("Can not safely convert float64 to
int64"), although each row on its own is valid: ``k`` given in one row, left out
in the next. :func:`split_by_nulls` groups the rows by which of the signature's
optional columns are null and gives each group without those columns (and its
integer columns as integers again), so every group passes the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SignatureColumns:
    """What a model's signature says of its input columns: which are optional, which are integers."""

    optional: frozenset[str]
    integers: frozenset[str]

    @classmethod
    def of(cls, pyfunc: Any) -> SignatureColumns:
        """Read them from a loaded pyfunc's signature (both empty without a column signature)."""
        inputs = getattr(getattr(getattr(pyfunc, "metadata", None), "signature", None), "inputs", None)
        specs = getattr(inputs, "inputs", None) or []
        optional = frozenset(str(s.name) for s in specs if not getattr(s, "required", True))
        kinds = {"long", "integer"}
        integers = frozenset(
            str(s.name) for s in specs if getattr(getattr(s, "type", None), "name", "") in kinds
        )
        return cls(optional, integers)


def split_by_nulls(frame: Any, columns: SignatureColumns) -> list[tuple[Any, list[int]]]:
    """(sub-frame, row positions) per pattern of null optional columns; one group when there is none.

    Only the signature's optional columns are considered: any other null is the model's to handle.
    """
    whole = (frame, list(range(len(frame))))
    optional = [name for name in frame.columns if name in columns.optional]
    if frame.empty or not optional:
        return [whole]
    nulls = frame[optional].isna()
    if not nulls.to_numpy().any():
        return [whole]
    groups: dict[tuple[bool, ...], list[int]] = {}
    for position, row in enumerate(nulls.itertuples(index=False, name=None)):
        groups.setdefault(tuple(row), []).append(position)
    found = []
    for pattern, positions in groups.items():
        dropped = {name for name, null in zip(optional, pattern, strict=True) if null}
        kept = [name for name in frame.columns if name not in dropped]
        rows = frame.iloc[positions][kept].reset_index(drop=True)
        for name in columns.integers.intersection(kept):
            if rows[name].dtype.kind == "f" and not rows[name].isna().any():
                rows[name] = rows[name].astype("int64")
        found.append((rows, positions))
    return found
