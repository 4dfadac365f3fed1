"""One step per process: open the pipeline run, run each step alone, finish it; errors and exit codes.

That the run tree equals `mlfactor run`'s is proven with the rendered Argo and Airflow tasks
(test_deploy_workflows.py), which are these commands.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import store_environment
from pipeline_harness import fixture, run_mlfactor, write_pipeline

from mlfactor.settings import load_settings
from mlfactor.tracking import connect

pytestmark = pytest.mark.slow


def chain_pipeline(folder: Path) -> Path:
    """Two steps: `second` takes `first`'s int output (typed) and a label formatted into text."""
    return write_pipeline(
        folder,
        "chain",
        [
            {"name": "first", "notebook": fixture("records-output.ipynb"), "parameters": {"value": 3}},
            {
                "name": "second",
                "notebook": fixture("takes-input.ipynb"),
                "parameters": {
                    "number": "${steps.first.outputs.doubled}",
                    "text": "label ${steps.first.outputs.label}",
                },
            },
        ],
    )


def run_steps_apart(
    path: Path,
    env: dict[str, str],
    folder: Path,
    steps: list[str],
    parameters: Sequence[str] = ("first.value=4",),
) -> tuple[str, list[int]]:
    """Open a run of ``path``, run ``steps`` each in its own process, finish it; the id and exit codes."""
    opened = run_mlfactor(
        [
            "run",
            str(path),
            "--open-run",
            *(a for p in parameters for a in ("-p", p)),
            "--run-id-file",
            str(folder / "id"),
        ],
        env,
        folder / "open",
    )
    assert opened.returncode == 0, opened.stderr
    run_id = (folder / "id").read_text()
    assert opened.summary["run_id"] == run_id and opened.summary["status"] == "RUNNING"
    codes = []
    for step in steps:
        done = run_mlfactor(
            [
                "run",
                str(path),
                "--step",
                step,
                "--pipeline-run-id",
                run_id,
                "--output-dir",
                str(folder / "out"),
            ],
            env,
            folder / step,
        )
        codes.append(done.returncode)
    finished = run_mlfactor(
        ["run", str(path), "--finish-run", "--pipeline-run-id", run_id], env, folder / "end"
    )
    codes.append(finished.returncode)
    return run_id, codes


def test_a_step_before_its_prerequisite_fails_and_finish_reports_what_never_ran(tmp_path: Path) -> None:
    """`--step second` before `first` exits 1 naming `first`; finishing then ends the run KILLED (143)."""
    path = chain_pipeline(tmp_path)
    env = store_environment(tmp_path)
    run_id, codes = run_steps_apart(path, env, tmp_path, ["second"])
    assert codes == [1, 143]
    second = (tmp_path / "second" / "stderr").read_text()
    assert "step 'second' waits for step 'first', which has not finished" in second
    parent = connect(load_settings(env)).get_run(run_id)
    assert parent.info.status == "KILLED"
    assert "before steps first, second ran" in parent.data.tags["mlfactor.error"]


def test_a_failed_step_keeps_its_exit_code_and_fails_the_finished_run(tmp_path: Path) -> None:
    """A failing cell exits 1 in its own process, also when retried; finishing records FAILED and exits 1."""
    path = write_pipeline(
        tmp_path,
        "breaks",
        [
            {"name": "first", "notebook": fixture("fails-on-cell-2.ipynb")},
            {"name": "second", "notebook": fixture("records-output.ipynb")},
        ],
    )
    env = store_environment(tmp_path)
    opened = run_mlfactor(["run", str(path), "--open-run"], env, tmp_path / "open")
    run_id = opened.summary["run_id"]
    step = run_mlfactor(
        ["run", str(path), "--step", "first", "--pipeline-run-id", run_id], env, tmp_path / "s"
    )
    assert step.returncode == 1
    assert step.summary["steps"]["first"]["status"] == "FAILED"
    retried = run_mlfactor(
        ["run", str(path), "--step", "first", "--pipeline-run-id", run_id], env, tmp_path / "r"
    )
    assert retried.returncode == 1, "an engine's retry of a failed cell gets the same code, at once"
    assert retried.named("step_not_run_again") and not retried.named("step_started")
    assert retried.summary["steps"]["first"]["attempts"] == 1
    end = run_mlfactor(["run", str(path), "--finish-run", "--pipeline-run-id", run_id], env, tmp_path / "end")
    assert end.returncode == 1
    assert end.summary["status"] == "FAILED"
    assert end.summary["steps"]["second"]["status"] == "NOT_STARTED"
    assert "failed in cell 2" in end.summary["error"]
    again = run_mlfactor(
        ["run", str(path), "--step", "second", "--pipeline-run-id", run_id], env, tmp_path / "x"
    )
    assert again.returncode == 65
    assert f"pipeline run {run_id} is FAILED, expected RUNNING" in again.stderr


def test_an_unknown_pipeline_run_id_exits_66(tmp_path: Path) -> None:
    """A step pointed at a run id the store does not have exits 66 and says how to open one."""
    path = chain_pipeline(tmp_path)
    done = run_mlfactor(
        ["run", str(path), "--step", "first", "--pipeline-run-id", "0" * 32],
        store_environment(tmp_path),
        tmp_path,
    )
    assert done.returncode == 66
    assert "--open-run" in done.stderr


def test_a_step_past_its_timeout_exits_3_and_the_finished_run_keeps_the_code(tmp_path: Path) -> None:
    """The timeout stops the step's kernel in its own process (exit 3); finishing reads 3 from the store."""
    path = write_pipeline(
        tmp_path, "slow", [{"name": "wait", "notebook": fixture("sleeps-forever.ipynb"), "timeout": "2s"}]
    )
    env = store_environment(tmp_path)
    run_id, codes = run_steps_apart(path, env, tmp_path, ["wait"], parameters=[])
    assert codes == [3, 3]
    step = json.loads((tmp_path / "wait" / "stdout").read_text().strip().splitlines()[-1])
    assert step["steps"]["wait"]["status"] == "FAILED"
    assert "timed out after 2 s" in step["steps"]["wait"]["error"]
    assert connect(load_settings(env)).get_run(run_id).info.status == "FAILED"


def test_a_step_whose_pod_was_killed_runs_again_as_the_next_attempt(tmp_path: Path) -> None:
    """A run left RUNNING by a killed process is ended KILLED; the engine's retry runs attempt 2 through."""
    path = chain_pipeline(tmp_path)
    env = store_environment(tmp_path)
    opened = run_mlfactor(["run", str(path), "--open-run"], env, tmp_path / "open")
    run_id = opened.summary["run_id"]
    client = connect(load_settings(env))
    parent = client.get_run(run_id)
    left = client.create_run(  # what a SIGKILLed step process leaves behind: its run, still RUNNING
        parent.info.experiment_id,
        tags={"mlflow.parentRunId": run_id, "mlfactor.step": "first", "mlfactor.attempt": "1"},
        run_name="first",
    )
    again = run_mlfactor(
        ["run", str(path), "--step", "first", "--pipeline-run-id", run_id], env, tmp_path / "s"
    )
    assert again.returncode == 0, again.stderr
    assert client.get_run(left.info.run_id).info.status == "KILLED"
    assert again.named("step_started")[0]["attempt"] == 2
    assert again.summary["steps"]["first"]["outputs"]["doubled"] == 6
