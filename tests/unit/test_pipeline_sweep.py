"""Sweep grids: parsing, deterministic point order, --sweep-index selection, ranking."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfactor.errors import ExitCode, ValidationError
from mlfactor.pipeline.spec import MetricSpec
from mlfactor.pipeline.sweep import (
    SweepPoint,
    SweepResult,
    as_overrides,
    grid,
    parse_axes,
    point,
    point_tags,
    rank,
    sweep_id,
)
from mlfactor.tags import SWEEP_ID_TAG, SWEEP_INDEX_TAG, RunStatus


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
    result = SweepResult("s1", "p.yaml", tuple(best_max), MetricSpec("a", "acc", "max"))
    summary = result.to_dict()
    assert [(r["index"], r["value"]) for r in summary["ranking"]] == [(1, 0.9), (3, 0.7), (0, 0.5), (2, None)]
    assert (summary["metric"], summary["goal"], result.metric_label) == ("a.acc", "max", "a.acc (max)")


@pytest.mark.parametrize(
    ("exit_codes", "signum", "code", "status"),
    [
        ((0, 0), None, 0, RunStatus.FINISHED),
        ((0, 3), None, 3, RunStatus.FAILED),
        ((0, None), None, 0, RunStatus.FINISHED),
        ((0, 3), 15, ExitCode.TERMINATED, RunStatus.KILLED),
        ((0, 0), 2, ExitCode.INTERRUPTED, RunStatus.KILLED),
    ],
    ids=["all-ok", "first-failure", "not-started", "sigterm", "sigint"],
)
def test_exit_code_and_status_of_a_sweep(
    exit_codes: tuple[int | None, ...], signum: int | None, code: int, status: RunStatus
) -> None:
    """A signal wins (KILLED); otherwise the first failed point's code (FAILED); otherwise 0 (FINISHED)."""
    points = tuple(SweepPoint(i, {}, c) for i, c in enumerate(exit_codes))
    result = SweepResult("s1", "p.yaml", points, None, signum)
    assert (result.exit_code, result.status) == (code, status)
    assert result.to_dict()["status"] == status


def test_points_are_tagged_and_ids_follow_the_file(tmp_path: Path) -> None:
    """A point's tags name sweep and index; the default id changes with the file's content and the options."""
    assert point_tags("abc", 3) == {SWEEP_ID_TAG: "abc", SWEEP_INDEX_TAG: "3"}
    path = tmp_path / "p.yaml"
    path.write_text("name: a\n")
    first = sweep_id(path, ["a.x=1,2"])
    assert first == sweep_id(path, ["a.x=1,2"]) != sweep_id(path, ["a.x=1,3"])
    path.write_text("name: b\n")
    assert sweep_id(path, ["a.x=1,2"]) != first
