"""Notebook parameters: safe names and values, checked against the parameters cell before any kernel."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mlfactor.pipeline.parameters import (
    check_parameters,
    inspect_parameters,
    name_problems,
    parse_override,
    python_parameters,
    references,
    resolve_references,
    syntax_problem,
    value_problems,
)

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_DIR / "tests" / "fixtures" / "notebooks"
TRAIN = PROJECT_DIR / "notebooks" / "01-train.ipynb"


def test_demo_notebook_declares_its_parameters() -> None:
    """The parameters cell of 01-train is read without a kernel, with types from the defaults."""
    declared = inspect_parameters(TRAIN)
    assert declared.has_parameters_cell
    assert declared.kernel_name == "python3"
    assert set(declared.declared) == {"C", "max_iter", "test_size", "seed", "model_name"}
    assert declared.declared["C"].type_name == "float"
    assert declared.declared["model_name"].type_name == "str"


def test_unknown_parameter_gets_did_you_mean() -> None:
    """An unknown name is an error naming the notebook's parameters and the closest one."""
    problems = check_parameters({"max_iters": 10}, inspect_parameters(TRAIN), "step 'train'")
    assert len(problems) == 1
    assert "no parameter 'max_iters'" in problems[0]
    assert "Did you mean 'max_iter'?" in problems[0]


def test_missing_parameters_cell_is_an_error() -> None:
    """Parameters for a notebook without a cell tagged parameters are refused."""
    problems = check_parameters({"value": 2}, inspect_parameters(FIXTURES / "no-parameters-cell.ipynb"), "s")
    assert len(problems) == 1
    assert "no cell tagged 'parameters'" in problems[0]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        pytest.param((1, 2), "tuple", id="tuple"),
        pytest.param(b"abc", "bytes", id="bytes"),
        pytest.param({1, 2}, "set", id="set"),
        pytest.param(dt.date(2026, 1, 1), "date", id="date"),
        pytest.param(float("nan"), "finite", id="nan"),
        pytest.param({"a": [1, (2,)]}, "tuple", id="nested"),
        pytest.param({1: "a"}, "JSON keys must be strings", id="int-key"),
    ],
)
def test_non_json_values_are_refused(value: object, fragment: str) -> None:
    """Values papermill would inject as code (tuple, bytes, set, dates) are refused."""
    problems = value_problems(value, "p")
    assert problems
    assert fragment in problems[0]


@pytest.mark.parametrize("value", [None, True, 3, 2.5, "text", [1, "a"], {"k": [1, {"n": None}]}])
def test_json_values_pass(value: object) -> None:
    """JSON-compatible values are accepted."""
    assert value_problems(value, "p") == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        pytest.param("a\nimport os", "not a Python identifier", id="newline"),
        pytest.param("class", "not a Python identifier", id="keyword"),
        pytest.param("1st", "not a Python identifier", id="digit"),
        pytest.param("api_token", "looks like a secret", id="token"),
        pytest.param("db_password", "looks like a secret", id="password"),
        pytest.param("passwd", "looks like a secret", id="passwd"),
        pytest.param("aws_secret", "looks like a secret", id="secret"),
        pytest.param("key", "looks like a secret", id="key"),
        pytest.param("gcp_credential", "looks like a secret", id="credential"),
    ],
)
def test_unsafe_names_are_refused(name: str, fragment: str) -> None:
    """Non-identifiers and secret-looking names are refused; the latter say how to pass a secret."""
    problems = name_problems(name, "p")
    assert problems and fragment in problems[0]
    if "secret" in fragment:
        assert "environment" in problems[0]
        assert "ctx.secret(" in problems[0]


def test_types_must_fit_defaults() -> None:
    """A string for a float default is refused; an int for a float default is accepted."""
    declared = inspect_parameters(TRAIN)
    assert check_parameters({"C": 2}, declared, "s") == []
    problems = check_parameters({"C": "big", "seed": True}, declared, "s")
    assert len(problems) == 2
    assert "expects float" in problems[0]
    assert "expects int" in problems[1]


def test_overrides_parse_yaml_values() -> None:
    """-p values are YAML: numbers, booleans, lists and plain text."""
    assert parse_override("train.C=0.5") == ("train", "C", 0.5)
    assert parse_override("seed=7") == (None, "seed", 7)
    assert parse_override("train.tags=[a, b]") == ("train", "tags", ["a", "b"])
    assert parse_override("train.name=hello world") == ("train", "name", "hello world")
    with pytest.raises(ValueError, match=r"STEP\.NAME=VALUE"):
        parse_override("train.C")


def test_references_resolve_with_their_type() -> None:
    """A whole-value reference keeps the output's type; inside text it is formatted."""
    outputs = {"train": {"model_version": "3", "n": 5}}
    assert references("${steps.train.outputs.n}") == [("train", "n")]
    assert resolve_references("${steps.train.outputs.n}", outputs) == 5
    assert resolve_references("v${steps.train.outputs.model_version}", outputs) == "v3"
    assert resolve_references(["${ steps.train.outputs.n }"], outputs) == [5]
    with pytest.raises(KeyError):
        resolve_references("${steps.train.outputs.missing}", outputs)


def test_a_parameters_cell_that_is_not_python_is_reported() -> None:
    """A broken parameters cell is a validation problem naming the line and the syntax error."""
    notebook = inspect_parameters(FIXTURES / "parameters-cell-is-not-python.ipynb")
    problems = check_parameters({}, notebook, "step 'a'")
    assert len(problems) == 1
    assert "is not valid Python, line 2: '(' was never closed ('max_iter = (200')" in problems[0]


def test_magics_in_a_parameters_cell_are_valid() -> None:
    """IPython syntax (a line magic) in the parameters cell is not a syntax error."""
    assert syntax_problem("%matplotlib inline\nC = 1.0\n") is None
    assert syntax_problem("%matplotlib inline\nC = (\n") is not None


def test_python_parameters_read_the_cell_like_papermill_without_importing_it() -> None:
    """Assignments give name, type (annotation, type comment or literal) and default; magics are skipped."""
    source = (
        "# tuning\n"
        "C = 1.0  # regularisation\n"
        "max_iter: int = 200\n"
        "name: 'str' = \"x\"\n"
        "tags = [\n    'a',\n    'b',\n]\n"
        "seed = 7  # type: int\n"
        "%matplotlib inline\n"
        "a = b = 3\n"
    )
    found = {p.name: (p.type_name, p.default) for p in python_parameters(source)}
    assert found == {
        "C": ("float", "1.0"),
        "max_iter": ("int", "200"),
        "name": ("str", '"x"'),
        "tags": ("list", "[\n    'a',\n    'b',\n]"),
        "seed": ("int", "7"),
    }
    assert [p.name for p in python_parameters("C = 1.0\nmax_iter = (200")] == ["C"]
