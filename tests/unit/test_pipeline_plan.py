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


@pytest.mark.parametrize(
    ("overrides", "expected", "source"),
    [
        pytest.param(["C=0.5"], 0.5, "-p C", id="global-beats-the-step-parameter"),
        pytest.param(["C=0.5", "train.C=0.2"], 0.2, "-p train.C", id="step-override-beats-global"),
        pytest.param(["train.C=0.2", "C=0.5"], 0.2, "-p train.C", id="whatever-the-order"),
        pytest.param([], 1.0, "the pipeline file", id="file-without-overrides"),
    ],
)
def test_global_overrides_apply_with_the_documented_precedence(
    overrides: list[str], expected: float, source: str
) -> None:
    """Pipeline parameters < step parameters < -p NAME=V < -p STEP.NAME=V."""
    plan = make_plan(PROJECT_DIR / "pipelines" / "train.yaml", overrides)
    assert plan.parameters["train"]["C"] == expected
    assert plan.sources["train"]["C"] == source


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        pytest.param("max_iter=wide", "parameter 'max_iter' got 'wide' (str)", id="global-override"),
        pytest.param("train.max_iter=wide", "parameter 'max_iter' got 'wide' (str)", id="step-override"),
        pytest.param("seed=[1]", "parameter 'seed' got [1] (list)", id="global-reaching-two-steps"),
    ],
)
def test_overrides_are_type_checked(override: str, fragment: str) -> None:
    """A -p value that does not fit the notebook's default is refused, naming the -p it came from."""
    with pytest.raises(ValidationError) as caught:
        make_plan(PROJECT_DIR / "pipelines" / "train.yaml", [override])
    assert fragment in str(caught.value)
    assert "(from -p" in str(caught.value)


def test_pipeline_level_parameters_are_type_checked(tmp_path: Path) -> None:
    """A pipeline-level value of the wrong type is refused for each step declaring it."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\nparameters: {seed: many}\nsteps:\n"
        f"  - name: train\n    notebook: {PROJECT_DIR / 'notebooks' / '01-train.ipynb'}\n"
    )
    with pytest.raises(ValidationError) as caught:
        make_plan(path)
    assert "step 'train' (from pipeline parameters): parameter 'seed' got 'many' (str)" in str(caught.value)
