"""Sweep grids: parsing, deterministic point order, --sweep-index selection, ranking."""

from __future__ import annotations

import pytest

from mlfactor.errors import ExitCode, ValidationError
from mlfactor.pipeline.spec import MetricSpec
from mlfactor.pipeline.sweep import (
    SweepPoint,
    as_overrides,
    grid,
    parse_axes,
    point,
    rank,
    sweep_exit_code,
    table,
)


def test_grid_order_is_deterministic_last_option_fastest() -> None:
    """Points come in option order, values as written, the last option varying fastest."""
    axes = parse_axes(["train.C=0.1,1,10", "train.max_iter=100,200"])
    points = grid(axes)
    assert len(points) == 6
    assert points[0] == {"train.C": 0.1, "train.max_iter": 100}
    assert points[1] == {"train.C": 0.1, "train.max_iter": 200}
    assert points[5] == {"train.C": 10, "train.max_iter": 200}
    assert point(axes, 3) == points[3]
    assert as_overrides(points[3]) == ["train.C=1", "train.max_iter=200"]


def test_sweep_index_out_of_range_names_the_range() -> None:
    """--sweep-index beyond the grid is an error saying how many points exist."""
    with pytest.raises(ValidationError, match="the grid has 2 points, numbered 0 to 1"):
        point(parse_axes(["a.x=1,2"]), 2)


def test_malformed_sweeps_are_reported_together() -> None:
    """A sweep without values and a secret-looking name are both reported."""
    with pytest.raises(ValidationError) as caught:
        parse_axes(["train.C", "train.api_key=a,b"])
    assert len(caught.value.problems) == 2


def test_ranking_follows_the_goal() -> None:
    """Points rank best first for max and min goals; points without a value come last."""
    points = [
        SweepPoint(i, {"a.x": i}, 0, {"metric": {"value": v}, "status": "FINISHED"})
        for i, v in enumerate([0.5, 0.9, None, 0.7])
    ]
    best_max = rank(points, MetricSpec("a", "acc", "max"))
    assert [p.index for p in best_max] == [1, 3, 0, 2]
    best_min = rank(points, MetricSpec("a", "loss", "min"))
    assert [p.index for p in best_min] == [0, 3, 1, 2]
    rendered = table(best_max, MetricSpec("a", "acc", "max"))
    assert rendered.splitlines()[1].split()[:4] == ["1", "1", "FINISHED", "0.9"]


def test_exit_code_of_a_sweep() -> None:
    """A signal wins; otherwise the first failed point's code; otherwise 0."""
    ok, bad = SweepPoint(0, {}, 0), SweepPoint(1, {}, 3)
    assert sweep_exit_code([ok], None) == 0
    assert sweep_exit_code([ok, bad], None) == 3
    assert sweep_exit_code([ok, bad], 15) == ExitCode.TERMINATED
