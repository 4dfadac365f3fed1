"""The step graph: file order by default, depends_on when declared, references, cycles."""

from __future__ import annotations

import random
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


@pytest.mark.parametrize("order", ["forward", "reversed", "shuffled"])
def test_a_1200_step_chain_validates_in_any_order(tmp_path: Path, order: str) -> None:
    """1 200 steps each depending on the one before, written in any order, plan without recursion."""
    names = [f"s{i}" for i in range(1200)]
    lines = [
        step(n, f"    depends_on: [{names[i - 1]}]\n" if i else "    depends_on: []\n")
        for i, n in enumerate(names)
    ]
    if order == "reversed":
        lines.reverse()
    elif order == "shuffled":
        random.Random(12).shuffle(lines)  # noqa: S311 - a fixed shuffle, not cryptography
    plan = make_plan(spec_of(tmp_path, "".join(lines)))
    assert plan.graph.needs["s1199"] == frozenset({"s1198"})
    assert plan.graph.ancestors("s1199") == set(names[:-1])
    assert plan.graph.ready([], []) == ["s0"]


def test_a_1200_step_cycle_is_reported(tmp_path: Path) -> None:
    """The longest cycle is found (no RecursionError) and named."""
    names = [f"s{i}" for i in range(1200)]
    lines = [step(n, f"    depends_on: [{names[i - 1]}]\n") for i, n in enumerate(names)]
    with pytest.raises(ValidationError) as caught:
        make_plan(spec_of(tmp_path, "".join(lines)))
    assert "steps form a cycle: " in str(caught.value) and "s0 -> s1199" in str(caught.value)
