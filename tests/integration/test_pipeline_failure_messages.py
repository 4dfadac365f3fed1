"""Failures named as the user sees the notebook: file cell numbers, a bad magic, sys.exit, bad cells."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import store_environment
from pipeline_harness import Finished, fixture, run_mlfactor, write_pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    """Four independent steps started together: stale markers, a bad magic, sys.exit(0) and sys.exit(3)."""
    folder = tmp_path_factory.mktemp("messages")
    steps = [
        {"name": "stale", "notebook": fixture("fails-on-cell-7-after-stale-error-markers.ipynb")},
        {
            "name": "magic",
            "notebook": fixture("fails-on-line-magic-in-cell-2.ipynb"),
            "parameters": {"value": 2},
        },
        {"name": "exit0", "notebook": fixture("stops-early-with-sys-exit.ipynb"), "parameters": {"code": 0}},
        {"name": "exit3", "notebook": fixture("stops-early-with-sys-exit.ipynb"), "parameters": {"code": 3}},
    ]
    path = write_pipeline(folder, "messages", [{**s, "depends_on": []} for s in steps])
    args = ["run", str(path), "--max-parallel", "4", "--output-dir", str(folder / "output")]
    yield run_mlfactor(args, store_environment(folder), folder / "proc")


@pytest.mark.parametrize(
    ("step", "message"),
    [
        pytest.param(
            "stale",
            "failed in cell 7 of {nb}: AssertionError: cell 7 of the file",
            id="stale-error-markers-do-not-shift-the-number",
        ),
        pytest.param(
            "magic",
            "failed in cell 2 of {nb}: UsageError: Line magic function `%this_magic_does_not_exist` "
            "not found.",
            id="line-magic-reports-the-usage-error",
        ),
        pytest.param("exit3", "failed in cell 3 of {nb}: SystemExit: 3", id="sys-exit-nonzero-fails"),
    ],
)
def test_failure_names_the_file_cell_and_the_error(failures: Finished, step: str, message: str) -> None:
    """The step's error names its cell by its place in the notebook file and the real error text."""
    assert failures.returncode == 1, failures.stderr
    summary = failures.summary["steps"][step]
    notebook = next(s["notebook"] for s in _steps(failures) if s["name"] == step)
    assert summary["status"] == "FAILED"
    assert summary["error"] == f"step {step!r} " + message.format(nb=notebook)


def test_sys_exit_0_ends_the_step_as_finished(failures: Finished) -> None:
    """sys.exit(0) stops the notebook at that cell: the step FINISHED, later cells never ran."""
    summary = failures.summary["steps"]["exit0"]
    assert summary["status"] == "FINISHED" and summary["outputs"] == {"before": 1}
    kept = json.loads(Path(summary["notebook"]).read_text())
    last = kept["cells"][-1]
    assert "".join(last["source"]).endswith('record_output("after", 2)') and last["outputs"] == []


def _steps(finished: Finished) -> list[dict[str, str]]:
    """Each step's name and notebook path as given in the pipeline file."""
    started = finished.named("step_started")
    return [{"name": e["step"], "notebook": e["notebook"]} for e in started]


def test_validate_reports_a_parameters_cell_that_is_not_python(tmp_path: Path) -> None:
    """`mlfactor validate` exits 65 naming the broken parameters cell's line and syntax error."""
    path = write_pipeline(
        tmp_path, "bad", [{"name": "a", "notebook": fixture("parameters-cell-is-not-python.ipynb")}]
    )
    result = run_mlfactor(
        ["validate", str(path)], store_environment(tmp_path), tmp_path / "proc", timeout=120
    )
    assert result.returncode == 65
    (problem,) = result.summary["problems"]
    assert "parameters-cell-is-not-python.ipynb is not valid Python, line 2: '(' was never closed" in problem
