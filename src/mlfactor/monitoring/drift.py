"""Streaming drift check: prediction events against a training profile, in bounded memory.

Each feature keeps only counts in its profile's bins (numbers) or categories
(plus ``other``), filled in batches of :data:`BATCH` values, so memory does
not grow with the number of events. Events are grouped by the model version
they name, each group against its own profile, unless one profile is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlfactor.errors import ValidationError
from mlfactor.monitoring import drift_tests as dt
from mlfactor.monitoring.events import PREDICTION, EventLine, event_rows
from mlfactor.monitoring.profile import (
    NUMERIC,
    FeatureProfile,
    TrainingProfile,
    bin_counts,
    category_key,
    finite,
)

BATCH = 4096
DEFAULT_ALPHA = 0.05
OTHER = "(other)"

ProfileLookup = Callable[[str, str], TrainingProfile]  # (model name, version) -> profile


class _Numeric:
    """Counts of one numeric feature's live values in the profile's cells, plus exact tail sums."""

    def __init__(self, profile: FeatureProfile) -> None:
        self.edges = np.asarray(profile.edges, dtype=float)
        self.cells = np.zeros(self.edges.size + 1, dtype=np.int64)
        self.below = 0.0
        self.above = 0.0
        self.missing = 0
        self.total = 0.0
        self.pending: list[float] = []

    def add(self, value: object) -> None:
        number = finite(value)
        if number is None:
            self.missing += 1
        else:
            self.pending.append(number)
            if len(self.pending) >= BATCH:
                self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        values = np.asarray(self.pending, dtype=float)
        self.pending.clear()
        self.cells += bin_counts(self.edges, values)
        self.below += float(np.sum(np.clip(self.edges[0] - values, 0.0, None)))
        self.above += float(np.sum(np.clip(values - self.edges[-1], 0.0, None)))
        self.total += float(values.sum())

    @property
    def count(self) -> int:
        return int(self.cells.sum())


class _Categorical:
    """Counts of one categorical feature's live values over the profile's categories and ``other``."""

    def __init__(self, profile: FeatureProfile) -> None:
        self.index = {key: i for i, key in enumerate(profile.categories)}
        self.cells = np.zeros(len(self.index) + 1, dtype=np.int64)  # last cell: other
        self.missing = 0

    def add(self, value: object) -> None:
        if value is None:
            self.missing += 1
            return
        self.cells[self.index.get(category_key(value), len(self.index))] += 1

    def flush(self) -> None:
        """Nothing is buffered."""

    @property
    def count(self) -> int:
        return int(self.cells.sum())


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's verdict: test, score, threshold, live count and a summary of both sides."""

    feature: str
    kind: str
    count: int
    missing: int
    test: str
    score: float
    threshold: float
    drifted: bool
    reference_mean: float | None = None
    current_mean: float | None = None
    edges: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)  # shares per cell (plots)
    current: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DriftGroup:
    """The drift of the events of one model version (or of all events, against one profile)."""

    model: str
    events: int
    rows: int
    features: list[FeatureDrift]

    @property
    def drifted(self) -> list[FeatureDrift]:
        """The features found drifted."""
        return [f for f in self.features if f.drifted]


@dataclass(frozen=True)
class DriftReport:
    """Every group's table and the overall verdict (drift when any feature of any group drifted)."""

    groups: list[DriftGroup]
    alpha: float
    skipped: int

    @property
    def drift(self) -> bool:
        """The overall verdict."""
        return any(group.drifted for group in self.groups)


class _Group:
    def __init__(self, label: str, profile: TrainingProfile) -> None:
        self.label = label
        self.profile = profile
        self.features: dict[str, _Numeric | _Categorical] = {
            name: _Numeric(p) if p.kind == NUMERIC and len(p.edges) > 1 else _Categorical(p)
            for name, p in profile.features.items()
        }
        self.events = 0
        self.rows = 0

    def add(self, rows: list[object], outputs: list[object]) -> None:
        """Count one event: each feature from its input row, else from its output when that is a dict.

        A model may report features of its own per row (a search model: query length and embedding
        norm) in dict outputs; the profile then names them like input columns.
        """
        self.events += 1
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                continue
            self.rows += 1
            output = outputs[index] if index < len(outputs) else None
            for name, acc in self.features.items():
                value = row.get(name)
                if value is None and isinstance(output, dict):
                    value = output.get(name)
                acc.add(value)

    def result(self, alpha: float) -> DriftGroup:
        per_test = alpha / max(1, len(self.features))  # Bonferroni: the verdict's false-alarm rate is alpha
        out = [self._feature(name, acc, per_test) for name, acc in self.features.items()]
        return DriftGroup(self.label, self.events, self.rows, out)

    def _feature(self, name: str, acc: _Numeric | _Categorical, alpha: float) -> FeatureDrift:
        acc.flush()
        ref = self.profile.features[name]
        if acc.count == 0:
            return FeatureDrift(name, ref.kind, 0, acc.missing, "none", float("nan"), alpha, False)
        if isinstance(acc, _Numeric):
            ref_cells = np.concatenate([[0], np.asarray(ref.counts, dtype=np.int64), [0]])
            small = dt.is_small(ref.count, acc.count)
            score = (
                dt.ks_binned(ref_cells, acc.cells, alpha)
                if small
                else dt.wasserstein_binned(acc.edges, ref_cells, acc.cells, (acc.below, acc.above), ref.std)
            )
            return _verdict(
                name, ref, acc, score, ref_cells,
                reference_mean=ref.mean, current_mean=acc.total / acc.count, edges=list(ref.edges),
            )  # fmt: skip
        ref_cells = np.asarray([*ref.categories.values(), ref.other], dtype=np.int64)
        small = dt.is_small(ref.count, acc.count)
        score = (
            dt.chi_squared(ref_cells, acc.cells, alpha) if small else dt.jensen_shannon(ref_cells, acc.cells)
        )
        return _verdict(name, ref, acc, score, ref_cells, labels=[*ref.categories, OTHER])


def _verdict(
    name: str,
    ref: FeatureProfile,
    acc: _Numeric | _Categorical,
    score: dt.DriftScore,
    ref_cells: np.ndarray,
    **extra: Any,
) -> FeatureDrift:
    return FeatureDrift(
        feature=name,
        kind=ref.kind,
        count=acc.count,
        missing=acc.missing,
        test=score.test,
        score=score.score,
        threshold=score.threshold,
        drifted=score.drifted,
        reference=[float(x) for x in ref_cells / ref_cells.sum()],
        current=[float(x) for x in acc.cells / acc.count],
        **extra,
    )


def check_drift(
    events: Iterable[EventLine],
    *,
    profile: TrainingProfile | None = None,
    lookup: ProfileLookup | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> DriftReport:
    """Compare the inputs of ``prediction`` events with ``profile`` (or each version's, via ``lookup``).

    A profiled feature that is not an input column is read from the row's output when the model
    answers a dict per row (features the model reports, e.g. a search model's embedding norm).

    Shadow predictions and feedback are ignored. Raises ValidationError when
    an event names no model version and neither ``profile`` nor ``lookup`` can
    place it, or when ``alpha`` is not in (0, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise ValidationError("--alpha", [f"got {alpha}; expected a level between 0 and 1, e.g. 0.05"])
    groups: dict[tuple[str, str], _Group] = {}
    skipped = 0
    for item in events:
        data = item.data
        if item.name != PREDICTION or data.get("shadow"):
            continue
        key = (
            ("", "")
            if profile is not None
            else (str(data.get("model_name", "")), str(data.get("model_version", "")))
        )
        group = groups.get(key)
        if group is None:
            group = _new_group(key, item, profile, lookup)
            groups[key] = group
        rows = event_rows(data, "inputs")
        if not rows:
            skipped += 1
            continue
        group.add(rows, event_rows(data, "outputs"))
    return DriftReport([g.result(alpha) for g in groups.values()], alpha, skipped)


def _new_group(
    key: tuple[str, str], item: EventLine, profile: TrainingProfile | None, lookup: ProfileLookup | None
) -> _Group:
    if profile is not None:
        return _Group("reference", profile)
    name, version = key
    if not name or not version or lookup is None:
        raise ValidationError(
            item.where(),
            [
                "this prediction event names no model_name/model_version to find its training profile; "
                "pass --model models:/NAME/VERSION or --reference PROFILE.json"
            ],
        )
    return _Group(f"models:/{name}/{version}", lookup(name, version))
