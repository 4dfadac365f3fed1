"""Parameter sweeps: a grid of ``-p`` overrides run as separate pipeline runs, ranked by a metric.

``--sweep train.C=0.1,1,10 --sweep train.max_iter=100,200`` is the grid of
every combination, in a fixed order: options in the order given, values in
the order written, the last option varying fastest (``itertools.product``).
Point ``N`` (0-based) of that order is what ``mlfactor run --sweep-index N``
runs, alone, in its own process: a Kubernetes Indexed Job maps
``JOB_COMPLETION_INDEX`` to it.

This module is the grid and its outcome, with no processes:
:mod:`mlfactor.pipeline.sweep_driver` runs the points.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlfactor.errors import ExitCode, ValidationError
from mlfactor.pipeline.parameters import name_problems, value_problems
from mlfactor.pipeline.spec import MetricSpec
from mlfactor.tags import SWEEP_ID_TAG, SWEEP_INDEX_TAG, RunStatus


@dataclass(frozen=True)
class SweepAxis:
    """One ``--sweep STEP.NAME=V1,V2`` option."""

    key: str
    values: tuple[Any, ...]


@dataclass
class SweepPoint:
    """One point of the grid and how its run ended (``summary``: the run's last JSON line)."""

    index: int
    overrides: dict[str, Any]
    exit_code: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        """The point's metric value, when its run recorded one."""
        metric = self.summary.get("metric") or {}
        value = metric.get("value")
        return float(value) if isinstance(value, int | float) else None

    @property
    def status(self) -> str:
        """The run's status; FAILED when its process ended without a summary."""
        return str(self.summary.get("status", RunStatus.FAILED))

    def to_dict(self) -> dict[str, Any]:
        """The point as the sweep's JSON summary ranks it."""
        return {
            "index": self.index,
            "parameters": self.overrides,
            "run_id": self.summary.get("run_id"),
            "status": self.summary.get("status"),
            "value": self.value,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True)
class SweepResult:
    """How a whole sweep ended: every point, ranked best first, and the signal that stopped it, if any."""

    sweep_id: str
    pipeline: str
    ranking: tuple[SweepPoint, ...]
    metric: MetricSpec | None
    signum: int | None = None

    @property
    def exit_code(self) -> int:
        """143/130 when stopped by a signal, else the exit code of the first failed point, else 0."""
        if self.signum is not None:
            return int(ExitCode.for_signal(self.signum))
        for p in sorted(self.ranking, key=lambda p: p.index):
            if p.exit_code not in (0, None):
                return int(p.exit_code)
        return int(ExitCode.OK)

    @property
    def status(self) -> RunStatus:
        """FINISHED when every point finished, KILLED after a signal, FAILED otherwise."""
        if self.signum is not None:
            return RunStatus.KILLED
        return RunStatus.FINISHED if self.exit_code == 0 else RunStatus.FAILED

    @property
    def metric_label(self) -> str:
        """``step.name (goal)`` of the ranking metric, or ``metric`` when the pipeline names none."""
        metric = self.metric
        return f"{metric.step}.{metric.name} ({metric.goal})" if metric else "metric"

    def to_dict(self) -> dict[str, Any]:
        """The sweep's last JSON line."""
        metric = self.metric
        return {
            "sweep_id": self.sweep_id,
            "pipeline": self.pipeline,
            "points": len(self.ranking),
            "status": self.status,
            "exit_code": self.exit_code,
            "metric": None if metric is None else f"{metric.step}.{metric.name}",
            "goal": None if metric is None else metric.goal,
            "ranking": [p.to_dict() for p in self.ranking],
        }


def parse_axes(options: Sequence[str]) -> list[SweepAxis]:
    """Parse ``--sweep`` options; one ValidationError lists every malformed one."""
    axes: list[SweepAxis] = []
    problems: list[str] = []
    for text in options:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            problems.append(f"--sweep {text!r}: expected STEP.NAME=V1,V2,... e.g. train.C=0.1,1,10")
            continue
        problems.extend(name_problems(key.rpartition(".")[2], f"--sweep {key}"))
        values = []
        for item in raw.split(","):
            try:
                value = yaml.safe_load(item) if item.strip() else ""
            except yaml.YAMLError:
                value = item
            problems.extend(value_problems(value, f"--sweep {key}"))
            values.append(value)
        if any(a.key == key for a in axes):
            problems.append(f"--sweep {key}: given twice; list every value in one option.")
        axes.append(SweepAxis(key, tuple(values)))
    if problems:
        raise ValidationError("sweep", problems)
    return axes


def grid(axes: Sequence[SweepAxis]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, in the documented deterministic order."""
    keys = [a.key for a in axes]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(a.values for a in axes))]


def point(axes: Sequence[SweepAxis], index: int) -> dict[str, Any]:
    """Point ``index`` (0-based) of the grid; ValidationError when out of range."""
    points = grid(axes)
    if not 0 <= index < len(points):
        raise ValidationError(
            "sweep",
            [
                f"--sweep-index {index} is out of range: the grid has {len(points)} "
                f"points, numbered 0 to {len(points) - 1}."
            ],
        )
    return points[index]


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """``-p`` strings for a point (values in JSON, which YAML reads back unchanged)."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def point_tags(identifier: str, index: int) -> dict[str, str]:
    """The tags that tie point ``index``'s pipeline run to its sweep."""
    return {SWEEP_ID_TAG: identifier, SWEEP_INDEX_TAG: str(index)}


def sweep_id(pipeline: Path, options: Sequence[str]) -> str:
    """Return a stable id for a grid of a pipeline file: the same file and options, the same id."""
    try:
        content = hashlib.sha256(pipeline.read_bytes()).hexdigest()
    except OSError:
        content = ""  # reported as a missing file when the sweep is checked
    digest = hashlib.sha256((content + "\n" + "\n".join(options)).encode()).hexdigest()
    return digest[:12]


def rank(points: Sequence[SweepPoint], metric: MetricSpec | None) -> list[SweepPoint]:
    """Points with a metric value first, best first; the rest after, by index."""
    scored = [p for p in points if p.value is not None]
    rest = [p for p in points if p.value is None]
    if metric is not None:
        sign = 1.0 if metric.goal == "min" else -1.0
        scored.sort(key=lambda p: sign * (p.value or 0.0))
    return [*scored, *sorted(rest, key=lambda p: p.index)]
