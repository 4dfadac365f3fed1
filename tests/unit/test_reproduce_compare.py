"""Reproduction checks: metrics within rtol, exact parameters, package differences, predictions."""

from __future__ import annotations

import math

import pytest

from mlfactor.reproduce.compare import (
    compare_metrics,
    compare_packages,
    compare_parameters,
    compare_predictions,
)
from mlfactor.reproduce.report import Report


@pytest.mark.parametrize(
    ("original", "reproduced", "rtol", "ok"),
    [
        pytest.param(0.93, 0.93, 1e-6, True, id="equal"),
        pytest.param(0.93, 0.93 * (1 + 1e-7), 1e-6, True, id="within-rtol"),
        pytest.param(0.93, 0.931, 1e-6, False, id="beyond-rtol"),
        pytest.param(0.93, 0.931, 1e-2, True, id="looser-rtol"),
        pytest.param(0.0, 1e-12, 1e-6, False, id="zero-has-no-relative-slack"),
        pytest.param(math.nan, math.nan, 1e-6, True, id="nan-both"),
    ],
)
def test_metrics_match_within_relative_tolerance(
    original: float, reproduced: float, rtol: float, ok: bool
) -> None:
    """|a - b| <= rtol * max(|a|, |b|) decides."""
    (check,) = compare_metrics({"accuracy": original}, {"accuracy": reproduced}, rtol)
    assert check.ok is ok


def test_a_metric_only_one_run_has_differs() -> None:
    """A metric missing on either side is a difference, named."""
    checks = compare_metrics({"accuracy": 1.0}, {"accuracy": 1.0, "f1": 0.9}, 1e-6)
    assert [(c.name, c.ok) for c in checks] == [("accuracy", True), ("f1", False)]


def test_parameters_compare_as_text_except_skipped() -> None:
    """Parameters must be equal; those resolved from another step's output are skipped."""
    checks = compare_parameters(
        {"C": "1.0", "model_version": "3"}, {"C": "0.5", "model_version": "1"}, ["model_version"]
    )
    assert [(c.name, c.ok) for c in checks] == [("C", False)]


def test_packages_list_only_differences_after_a_summary() -> None:
    """One summary row, then each package whose version differs or that one side lacks."""
    checks = compare_packages(["a==1", "b==2", "c==3"], ["a==1", "b==2.1", "d==4"])
    assert [(c.name, c.original, c.reproduced) for c in checks[1:]] == [
        ("b", "2", "2.1"),
        ("c", "3", None),
        ("d", None, "4"),
    ]
    assert not checks[0].ok
    assert compare_packages(["a==1"], ["a==1"])[0].ok


@pytest.mark.parametrize(
    ("before", "after", "ok"),
    [
        pytest.param([1, 1, 0], [1, 1, 0], True, id="same-labels"),
        pytest.param([1, 1, 0], [1, 2, 0], False, id="one-label-differs"),
        pytest.param([0.5, 0.25], [0.5, 0.25 * (1 + 1e-9)], True, id="floats-within-rtol"),
        pytest.param(["a", "b"], ["a", "b"], True, id="strings"),
        pytest.param([1, 2], [1, 2, 3], False, id="shape"),
    ],
)
def test_predictions_match(before: list[object], after: list[object], ok: bool) -> None:
    """Numeric predictions within rtol, others exactly, shapes equal."""
    assert compare_predictions(before, after, 1e-6).ok is ok


def test_report_exit_codes() -> None:
    """0 when every check holds; 1 when one differs, none ran, or the re-run failed."""
    report = Report("m", "1", None, "abc", 1e-6, "run", "parent", "exp")
    assert report.exit_code == 1, "no checks: nothing was shown to match"
    report.checks = compare_metrics({"a": 1.0}, {"a": 1.0}, 1e-6)
    assert (report.status, report.exit_code) == ("REPRODUCED", 0)
    report.error = "the re-run failed: boom"
    assert report.exit_code == 1 and report.to_dict()["error"] == "the re-run failed: boom"
