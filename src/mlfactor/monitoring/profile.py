"""A compact profile of a model's training data, so monitoring never needs the data itself.

Per numeric feature: quantiles, equal-frequency histogram bin edges with
counts, mean and standard deviation; per categorical feature (or numeric
with at most :data:`DISCRETE_MAX` distinct values): category counts, the rarest
folded into ``other``. A profile is a few kilobytes of JSON, logged as the
``profile.json`` artifact of the run that logged the model.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlfactor.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from mlflow import MlflowClient

PROFILE_ARTIFACT = "profile.json"
PROFILE_VERSION = 1
BINS = 40  # equal-frequency bins per numeric feature (fewer when values repeat)
DISCRETE_MAX = 5  # a numeric feature with at most this many distinct values is profiled as categories
MAX_CATEGORIES = 50  # the rest are counted as ``other``
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_TAILS = (0.001, 0.003, 0.006, 0.01, 0.015, 0.02)  # extra edges in both tails: wide end bins bias Wasserstein
NUMERIC = "numeric"
CATEGORICAL = "categorical"


def category_key(value: object) -> str:
    """The key a value is counted under: ``1``, ``1.0`` and ``True``-free numbers agree, text as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class FeatureProfile:
    """One feature's training distribution: numeric bins or categorical counts."""

    kind: str
    count: int
    missing: int = 0
    mean: float = 0.0
    std: float = 0.0
    quantiles: dict[str, float] = field(default_factory=dict)
    edges: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    categories: dict[str, int] = field(default_factory=dict)
    other: int = 0


@dataclass(frozen=True)
class TrainingProfile:
    """The profile of a training frame: its row count and one :class:`FeatureProfile` per column."""

    row_count: int
    features: dict[str, FeatureProfile]
    version: int = PROFILE_VERSION

    def to_json(self) -> str:
        """Compact JSON text (what ``profile.json`` holds)."""
        return json.dumps(asdict(self), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str, *, source: str = "profile") -> TrainingProfile:
        """Read a profile written by :meth:`to_json`; ValidationError naming ``source`` otherwise."""
        try:
            data = json.loads(text)
            features = {str(k): FeatureProfile(**v) for k, v in data["features"].items()}
            profile = cls(int(data["row_count"]), features, int(data.get("version", PROFILE_VERSION)))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValidationError(
                source,
                [f"not a training profile ({exc}); expected what profile_frame(...).to_json() writes"],
            ) from exc
        if profile.version > PROFILE_VERSION:
            raise ValidationError(
                source, [f"profile version {profile.version} is newer than this mlfactor reads"]
            )
        return profile


def _numeric_profile(values: pd.Series) -> FeatureProfile:
    finite = values.to_numpy(dtype=float)
    missing = int((~np.isfinite(finite)).sum())
    data = np.sort(finite[np.isfinite(finite)])
    if data.size == 0:
        return FeatureProfile(NUMERIC, 0, missing)
    levels = np.concatenate([np.linspace(0.0, 1.0, BINS + 1), _TAILS, 1.0 - np.asarray(_TAILS)])
    edges = np.unique(np.quantile(data, levels))
    counts = bin_counts(edges, data)[1:-1] if edges.size > 1 else np.array([data.size])
    return FeatureProfile(
        NUMERIC,
        int(data.size),
        missing,
        mean=float(data.mean()),
        std=float(data.std()),
        quantiles={str(q): float(np.quantile(data, q)) for q in QUANTILES},
        edges=[float(e) for e in edges],
        counts=[int(c) for c in counts],
    )


def _categorical_profile(values: pd.Series) -> FeatureProfile:
    present = values.dropna()
    counts = present.map(category_key).value_counts()
    kept = counts.iloc[:MAX_CATEGORIES]
    return FeatureProfile(
        CATEGORICAL,
        int(present.size),
        int(values.size - present.size),
        categories={str(k): int(v) for k, v in kept.items()},
        other=int(counts.iloc[MAX_CATEGORIES:].sum()),
    )


def bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in len(edges)+1 cells: below the first edge, each bin, above the last.

    Bins are [e_i, e_{i+1}) except the last, which includes its right edge.
    """
    k = edges.size - 1
    cells = np.searchsorted(edges[1:-1], values, side="right") + 1 if k > 0 else np.ones(values.size, int)
    cells[values < edges[0]] = 0
    cells[values > edges[-1]] = k + 1
    return np.bincount(cells, minlength=k + 2)


def profile_frame(frame: pd.DataFrame) -> TrainingProfile:
    """Profile every column of ``frame`` (numbers as histograms, anything else as categories)."""
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(
            "training profile", [f"expected a pandas DataFrame, got {type(frame).__name__}"]
        )
    features: dict[str, FeatureProfile] = {}
    for name in frame.columns:
        column = frame[name]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if numeric and column.nunique(dropna=True) > DISCRETE_MAX:
            features[str(name)] = _numeric_profile(column)
        else:
            features[str(name)] = _categorical_profile(column)
    return TrainingProfile(len(frame), features)


def read_profile(path: Path) -> TrainingProfile:
    """Read a profile JSON file; NotFoundError / ValidationError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFoundError(f"profile file {str(path)!r} does not exist.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(str(path), [f"cannot read it as UTF-8 text ({exc})"]) from exc
    return TrainingProfile.from_json(text, source=str(path))


def log_profile(client: MlflowClient | ModuleType, run_id: str, frame: pd.DataFrame) -> TrainingProfile:
    """Profile ``frame`` and log it as artifact ``profile.json`` of run ``run_id``; return the profile.

    ``client`` is an ``MlflowClient`` or the ``mlflow`` module itself (then a
    client on the module's current tracking URI logs it).
    """
    import mlflow

    profile = profile_frame(frame)
    target = client if isinstance(client, mlflow.MlflowClient) else mlflow.MlflowClient()
    target.log_text(run_id, profile.to_json(), PROFILE_ARTIFACT)
    return profile


def download_profile(client: MlflowClient, name: str, version: str) -> TrainingProfile:
    """The profile logged with version ``version`` of model ``name`` (its run's ``profile.json``)."""
    from mlflow.exceptions import MlflowException

    source = f"models:/{name}/{version}"
    try:
        run_id = client.get_model_version(name, version).run_id
    except MlflowException as exc:
        raise NotFoundError(f"model version {source} does not exist; check the name and version.") from exc
    if not run_id:
        raise NotFoundError(f"{source} has no run, so no {PROFILE_ARTIFACT}; pass --reference PROFILE.json.")
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = Path(client.download_artifacts(run_id, PROFILE_ARTIFACT, folder))
        except (MlflowException, OSError) as exc:
            raise NotFoundError(
                f"{source} (run {run_id}) has no {PROFILE_ARTIFACT} artifact; log one with "
                "mlfactor.monitoring.log_profile(client, run_id, training_frame) or pass --reference."
            ) from exc
        profile = read_profile(path)
    return profile


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
