"""A DAG run: independent steps run at the same time; outputs flow to later steps as parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import store_environment
from pipeline_harness import fixture, run_mlfactor, write_pipeline

pytestmark = pytest.mark.slow


def test_independent_steps_overlap_and_outputs_flow(tmp_path: Path) -> None:
    """Steps a and b overlap in time; join waits for both and gets b's int output and a's label."""
    steps = [
        {
            "name": "a",
            "notebook": fixture("sleeps.ipynb"),
            "depends_on": [],
            "parameters": {"seconds": 3.0, "label": "from-a"},
        },
        {
            "name": "b",
            "notebook": fixture("sleeps.ipynb"),
            "depends_on": [],
            "parameters": {"seconds": 3.0, "label": "from-b"},
        },
        {
            "name": "join",
            "notebook": fixture("takes-input.ipynb"),
            "depends_on": ["a", "b"],
            "parameters": {"number": "${steps.b.outputs.slept}", "text": "label ${steps.a.outputs.label}"},
        },
    ]
    path = write_pipeline(tmp_path, "dag", steps)
    result = run_mlfactor(
        ["run", str(path), "--max-parallel", "2", "--output-dir", str(tmp_path / "out")],
        store_environment(tmp_path),
        tmp_path / "proc",
    )
    assert result.returncode == 0, result.stderr
    outputs = result.summary["outputs"]
    a, b = outputs["a"], outputs["b"]
    assert a["started"] < b["ended"] and b["started"] < a["ended"], "a and b ran at the same time"
    assert outputs["join"] == {"received": 3, "text": "label from-a"}
    order = [
        (e["event"], e["step"]) for e in result.events if e.get("event") in ("step_started", "step_finished")
    ]
    assert order.index(("step_started", "join")) > max(
        order.index(("step_finished", "a")), order.index(("step_finished", "b"))
    )
