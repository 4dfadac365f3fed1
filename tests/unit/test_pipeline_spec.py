"""Pipeline files: structure checks, every problem at once, did-you-mean hints."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfactor.errors import ExitCode, NotFoundError, ValidationError
from mlfactor.pipeline.spec import load_pipeline

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_DIR / "tests" / "fixtures" / "notebooks"

ISSUE_2_SHAPE = """\
name: train
experiment: demo
steps:
  - name: train
    notebook: notebooks/01-train.ipynb
    parameters: {C: 1.0}
  - name: evaluate
    notebook: notebooks/02-evaluate.ipynb
"""


def write(tmp_path: Path, text: str) -> Path:
    """Write a pipeline file."""
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return path


def test_first_shape_loads_with_paths_relative_to_project_root(tmp_path: Path) -> None:
    """The issue-2 file shape loads, steps in file order, notebooks resolved from the project root."""
    spec = load_pipeline(write(tmp_path, ISSUE_2_SHAPE), project_dir=PROJECT_DIR)
    assert spec.name == "train"
    assert spec.experiment == "demo"
    assert spec.step_names == ["train", "evaluate"]
    assert spec.step("train").notebook == PROJECT_DIR / "notebooks" / "01-train.ipynb"
    assert spec.step("train").parameters == {"C": 1.0}
    assert not spec.explicit_dependencies


def test_project_root_is_the_folder_holding_pyproject() -> None:
    """Without an explicit root, notebook paths resolve from the folder holding pyproject.toml."""
    spec = load_pipeline(PROJECT_DIR / "pipelines" / "train.yaml")
    assert spec.project_dir == PROJECT_DIR
    assert spec.step("evaluate").notebook == PROJECT_DIR / "notebooks" / "02-evaluate.ipynb"
    assert len(spec.sha256) == 64


def test_three_mistakes_give_one_error_listing_all_three(tmp_path: Path) -> None:
    """A misspelt key, a missing notebook and a bad timeout are reported together, with hints."""
    text = ISSUE_2_SHAPE.replace("parameters: {C: 1.0}", "paramters: {C: 1.0}\n    timeout: soon").replace(
        "02-evaluate", "02-evaluat"
    )
    with pytest.raises(ValidationError) as caught:
        load_pipeline(write(tmp_path, text), project_dir=PROJECT_DIR)
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert any("'paramters'" in p and "Did you mean 'parameters'?" in p for p in problems)
    assert any("timeout" in p and "'soon'" in p for p in problems)
    assert any(
        "02-evaluat.ipynb" in p and "Did you mean 'notebooks/02-evaluate.ipynb'?" in p for p in problems
    )
    assert caught.value.exit_code == ExitCode.INVALID_INPUT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("steps: []\n", "steps: missing or empty", id="no-steps"),
        pytest.param(
            "name: 'a b'\nsteps: [{name: x, notebook: notebooks/01-train.ipynb}]\n",
            "name: got 'a b'",
            id="bad-name",
        ),
        pytest.param(
            "steps: [{name: x, notebook: notebooks/01-train.ipynb}, "
            "{name: x, notebook: notebooks/01-train.ipynb}]\n",
            "more than one step",
            id="duplicate",
        ),
        pytest.param("steps: [{name: x, notebook: README.md}]\n", "is not a notebook", id="not-ipynb"),
        pytest.param(
            "steps: [{name: x, notebook: notebooks/01-train.ipynb, retries: -1}]\n",
            "retries",
            id="bad-retries",
        ),
        pytest.param(
            "steps: [{name: x, notebook: notebooks/01-train.ipynb}]\nmetric: {step: y, name: a}\n",
            "no step named 'y'",
            id="metric-step",
        ),
        pytest.param("steps: [x: 1\n", "not valid YAML at line", id="yaml"),
    ],
)
def test_structure_problems_are_named(tmp_path: Path, text: str, expected: str) -> None:
    """Each structural mistake is reported with what was wrong."""
    with pytest.raises(ValidationError) as caught:
        load_pipeline(write(tmp_path, text), project_dir=PROJECT_DIR)
    assert expected in str(caught.value)


def test_missing_file_is_not_found_with_hint(tmp_path: Path) -> None:
    """A missing pipeline file exits 66 and suggests a close file name."""
    (tmp_path / "train.yaml").write_text(ISSUE_2_SHAPE)
    with pytest.raises(NotFoundError) as caught:
        load_pipeline(tmp_path / "trian.yaml")
    assert "Did you mean 'train.yaml'?" in str(caught.value)
    assert caught.value.exit_code == ExitCode.NOT_FOUND


def test_absolute_notebook_paths_and_durations(tmp_path: Path) -> None:
    """Absolute notebook paths are accepted and timeouts take units."""
    text = f"name: t\nsteps:\n  - name: a\n    notebook: {FIXTURES / 'sleeps.ipynb'}\n    timeout: 2m\n"
    spec = load_pipeline(write(tmp_path, text))
    assert spec.step("a").notebook == FIXTURES / "sleeps.ipynb"
    assert spec.step("a").timeout == 120.0


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param(
            BOMB + "name: p\nsteps: []\n", "expands to more than 100000 values", id="billion-laughs"
        ),
        pytest.param("name: p\nsteps: &s [*s]\n", "refers to a value that contains it", id="self-reference"),
    ],
)
def test_yaml_alias_bombs_are_refused(tmp_path: Path, text: str, fragment: str) -> None:
    """Alias expansion is counted before anything is built; too much (or a cycle) is an exit-65 error."""
    with pytest.raises(ValidationError) as caught:
        load_pipeline(write(tmp_path, text))
    assert fragment in str(caught.value)
    assert caught.value.exit_code == ExitCode.INVALID_INPUT


def test_modest_aliases_still_work(tmp_path: Path) -> None:
    """Anchors reused a few times are ordinary YAML and load."""
    text = f"name: p\nsteps:\n  - &s {{name: a, notebook: {FIXTURES / 'records-output.ipynb'}}}\n"
    assert load_pipeline(write(tmp_path, text)).step_names == ["a"]


def test_notebooks_outside_the_project_are_refused(tmp_path: Path) -> None:
    """A notebook outside the project root is an error saying how to opt in."""
    outside = tmp_path / "elsewhere.ipynb"
    outside.write_text((FIXTURES / "records-output.ipynb").read_text())
    text = f"name: p\nsteps:\n  - name: a\n    notebook: {outside}\n"
    with pytest.raises(ValidationError) as caught:
        load_pipeline(write(tmp_path, text), project_dir=PROJECT_DIR)
    assert f"is {outside}, outside the project {PROJECT_DIR}" in str(caught.value)
    assert "allow_notebooks_outside_project: true" in str(caught.value)
    opted_in = load_pipeline(
        write(tmp_path, "allow_notebooks_outside_project: true\n" + text), project_dir=PROJECT_DIR
    )
    assert opted_in.steps[0].notebook == outside.resolve()


def test_a_pipeline_outside_the_project_resolves_against_the_working_directory_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file in a folder without pyproject.toml uses the working directory's project, as the message says."""
    monkeypatch.chdir(PROJECT_DIR / "docs")
    spec = load_pipeline(
        write(tmp_path, "name: p\nsteps:\n  - name: a\n    notebook: notebooks/01-train.ipynb\n")
    )
    assert spec.project_dir == PROJECT_DIR
    assert spec.steps[0].notebook == PROJECT_DIR / "notebooks" / "01-train.ipynb"
    with pytest.raises(ValidationError) as caught:
        load_pipeline(write(tmp_path, "name: p\nsteps:\n  - name: a\n    notebook: notebooks/nope.ipynb\n"))
    assert f"Relative paths start at the project root {PROJECT_DIR}" in str(caught.value)
