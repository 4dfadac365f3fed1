"""The step graph: file order by default, depends_on when declared, references, cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfactor.errors import ValidationError
from mlfactor.pipeline.graph import build_graph
from mlfactor.pipeline.plan import make_plan
from mlfactor.pipeline.spec import load_pipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "notebooks"
NB = FIXTURES / "records-output.ipynb"


def spec_of(tmp_path: Path, steps: str) -> Path:
    """Write a pipeline file with ``steps``."""
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nsteps:\n" + steps)
    return path


def step(name: str, extra: str = "") -> str:
    """YAML of one step."""
    return f"  - name: {name}\n    notebook: {NB}\n{extra}"


def test_without_depends_on_steps_run_in_file_order(tmp_path: Path) -> None:
    """A file with no depends_on chains its steps in the order written."""
    spec = load_pipeline(spec_of(tmp_path, step("a") + step("b") + step("c")))
    graph, problems = build_graph(spec)
    assert problems == []
    assert graph.ready([], []) == ["a"]
    assert graph.ready(["a"], ["a"]) == ["b"]
    assert graph.downstream("a") == {"b", "c"}


def test_declared_dependencies_allow_parallel_steps(tmp_path: Path) -> None:
    """With depends_on, independent steps are ready together and the join waits for both."""
    text = step("a") + step("b") + step("join", "    depends_on: [a, b]\n")
    graph, problems = build_graph(load_pipeline(spec_of(tmp_path, text)))
    assert problems == []
    assert graph.ready([], []) == ["a", "b"]
    assert graph.ready(["a"], ["a", "b"]) == []
    assert graph.ready(["a", "b"], ["a", "b"]) == ["join"]
    assert graph.ancestors("join") == {"a", "b"}


def test_reference_adds_a_dependency(tmp_path: Path) -> None:
    """A parameter referencing another step's output makes the step wait for it."""
    text = step("a", "    depends_on: []\n") + step(
        "b", "    parameters: {value: '${steps.a.outputs.doubled}'}\n"
    )
    graph, problems = build_graph(load_pipeline(spec_of(tmp_path, text)))
    assert problems == []
    assert graph.needs["b"] == frozenset({"a"})


def test_unknown_steps_and_cycles_are_reported_together(tmp_path: Path) -> None:
    """An unknown dependency (with a hint), a bad reference and a cycle come in one error."""
    text = (
        step("prepare", "    depends_on: [train]\n")
        + step("train", "    depends_on: [prepare]\n")
        + step("report", "    depends_on: [trian]\n    parameters: {value: '${steps.nope.outputs.x}'}\n")
    )
    with pytest.raises(ValidationError) as caught:
        make_plan(spec_of(tmp_path, text))
    problems = caught.value.problems
    assert any("unknown step 'trian'" in p and "Did you mean 'train'?" in p for p in problems)
    assert any("there is no step 'nope'" in p for p in problems)
    assert any("cycle: prepare -> train -> prepare" in p for p in problems)
    assert len(problems) == 3
