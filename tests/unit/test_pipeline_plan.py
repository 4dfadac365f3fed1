"""Planning: parameters merged from file, pipeline level and -p, all checked before any kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfactor.errors import ValidationError
from mlfactor.pipeline.plan import make_plan

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_DIR / "tests" / "fixtures" / "notebooks"


def test_demo_pipeline_plans_with_overrides() -> None:
    """pipelines/train.yaml plans; -p STEP.NAME wins over the file, NAME=V reaches every declaring step."""
    plan = make_plan(PROJECT_DIR / "pipelines" / "train.yaml", ["train.C=0.5", "seed=7"])
    assert plan.parameters["train"]["C"] == 0.5
    assert plan.parameters["train"]["seed"] == 7
    assert plan.parameters["evaluate"]["seed"] == 7
    assert plan.parameters["evaluate"]["model_version"] == "${steps.train.outputs.model_version}"
    assert plan.graph.needs["evaluate"] == frozenset({"train"})


def test_every_parameter_problem_at_once(tmp_path: Path) -> None:
    """Unknown names, secret names, bad types, unknown steps and a missing parameters cell: one error."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\nparameters: {sed: 1}\nsteps:\n"
        f"  - name: train\n    notebook: {PROJECT_DIR / 'notebooks' / '01-train.ipynb'}\n"
        "    parameters: {C: high, api_token: abc, max_iters: 3}\n"
        f"  - name: plain\n    notebook: {FIXTURES / 'no-parameters-cell.ipynb'}\n"
        "    parameters: {value: 2}\n"
    )
    with pytest.raises(ValidationError) as caught:
        make_plan(path, ["trian.C=1"])
    text = str(caught.value)
    assert "no step 'trian'" in text and "Did you mean 'train'?" in text
    assert "no step's notebook declares parameter 'sed'" in text and "Did you mean 'seed'?" in text
    assert "'C' got 'high'" in text
    assert "'api_token' looks like a secret" in text
    assert "no parameter 'max_iters'" in text and "Did you mean 'max_iter'?" in text
    assert "no cell tagged 'parameters'" in text
    assert len(caught.value.problems) == 6


def test_injection_attempts_are_refused(tmp_path: Path) -> None:
    """A parameter name with a newline or a tuple-like YAML value never reaches papermill."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\nsteps:\n"
        f"  - name: a\n    notebook: {FIXTURES / 'records-output.ipynb'}\n"
        '    parameters: {"value\\nimport os": 1, label: !!binary aGVsbG8=}\n'
    )
    with pytest.raises(ValidationError) as caught:
        make_plan(path)
    text = str(caught.value)
    assert "not a Python identifier" in text
    assert "bytes value is not JSON-compatible" in text
