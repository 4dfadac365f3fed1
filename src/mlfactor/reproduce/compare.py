"""Compare a reproduction with the original: metrics, predictions, packages, parameters.

Each comparison yields :class:`Check` rows; the reproduction holds when every
row is ``ok``. Numbers match within a relative tolerance ``rtol``
(``|a - b| <= rtol * max(|a|, |b|)``); everything else must be equal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Check:
    """One compared quantity."""

    kind: str  # metric, prediction, package, parameter, run
    name: str
    original: Any
    reproduced: Any
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def close(a: float, b: float, rtol: float) -> bool:
    """Equal within ``rtol`` (NaN equals NaN: both runs produced no number)."""
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=rtol, abs_tol=0.0)


def compare_metrics(
    original: Mapping[str, float], reproduced: Mapping[str, float], rtol: float
) -> list[Check]:
    """A row per metric either run logged; a metric only one run has differs."""
    rows = []
    for name in sorted(set(original) | set(reproduced)):
        a, b = original.get(name), reproduced.get(name)
        ok = a is not None and b is not None and close(float(a), float(b), rtol)
        rows.append(Check("metric", name, a, b, ok))
    return rows


def compare_parameters(
    original: Mapping[str, str], reproduced: Mapping[str, str], skip: Iterable[str] = ()
) -> list[Check]:
    """A row per parameter either run logged (as MLflow stores them, text), but those in ``skip``."""
    skipped = set(skip)
    names = sorted((set(original) | set(reproduced)) - skipped)
    return [
        Check("parameter", n, original.get(n), reproduced.get(n), original.get(n) == reproduced.get(n))
        for n in names
    ]


def compare_packages(original: Sequence[str], reproduced: Sequence[str]) -> list[Check]:
    """One row per package whose version differs or that only one environment has; one summary row."""
    a = dict(p.split("==", 1) for p in original if "==" in p)
    b = dict(p.split("==", 1) for p in reproduced if "==" in p)
    rows = [
        Check("package", name, a.get(name), b.get(name), False)
        for name in sorted(set(a) | set(b))
        if a.get(name) != b.get(name)
    ]
    same = len(set(a.items()) & set(b.items()))
    rows.insert(
        0, Check("package", "installed distributions", f"{len(a)}", f"{len(b)} ({same} identical)", not rows)
    )
    return rows


def compare_predictions(original: Any, reproduced: Any, rtol: float) -> Check:
    """The two models' predictions on the original version's input example."""
    a, b = np.asarray(original), np.asarray(reproduced)
    if a.shape != b.shape:
        ok = False
    elif np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number):
        ok = bool(np.allclose(a, b, rtol=rtol, atol=0.0, equal_nan=True))
    else:
        ok = bool(np.array_equal(a, b))
    return Check("prediction", "input example", _short(a), _short(b), ok)


def _short(values: np.ndarray[Any, Any]) -> str:
    flat = values.ravel().tolist()
    text = ", ".join(str(v) for v in flat[:8])
    return f"[{text}{', ...' if len(flat) > 8 else ''}] ({len(flat)} values)"
