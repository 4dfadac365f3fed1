"""Failure semantics of `mlfactor run`: exit codes, MLflow run states, kept notebooks, no process left."""

from __future__ import annotations

import datetime as dt
import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import store_environment
from mlflow.tracking import MlflowClient
from pipeline_harness import Finished, Running, alive, fixture, write_pipeline

pytestmark = pytest.mark.slow


@dataclass
class Scenario:
    """One pipeline run of the failure matrix."""

    result: Finished
    env: dict[str, str]
    folder: Path
    leftovers: list[psutil.Process]

    @property
    def client(self) -> MlflowClient:
        """A client of the scenario's store."""
        return MlflowClient(
            tracking_uri=self.env["MLFLOW_TRACKING_URI"], registry_uri=self.env["MLFLOW_TRACKING_URI"]
        )

    def runs(self) -> dict[str, str]:
        """Run name -> status of every run in the store."""
        experiment = self.client.get_experiment_by_name("tests")
        assert experiment is not None
        runs = self.client.search_runs([experiment.experiment_id])
        return {
            f"{r.info.run_name}{'' if r.data.tags.get('mlflow.parentRunId') else ' (pipeline)'}"
            f"#{r.data.tags.get('mlfactor.attempt', '')}": r.info.status
            for r in runs
        }


def _two_steps(first: str, **parameters: object) -> list[dict[str, object]]:
    step: dict[str, object] = {"name": "first", "notebook": fixture(first)}
    if parameters:
        step["parameters"] = parameters
    return [step, {"name": "after", "notebook": fixture("records-output.ipynb")}]


SCENARIOS: dict[str, dict[str, object]] = {
    "fails": {"steps": _two_steps("fails-on-cell-2.ipynb")},
    "timeout": {
        "steps": [
            {**_two_steps("sleeps-forever.ipynb", seconds=3601.0)[0], "timeout": "15s"},
            _two_steps("x")[1],
        ]
    },
    "dies": {"steps": _two_steps("dies.ipynb", code=9)},
    "retry": {
        "steps": [
            {"name": "first", "notebook": fixture("flaky-once.ipynb"), "retries": 1},
            _two_steps("x")[1],
        ]
    },
    "sigterm": {"steps": _two_steps("sleeps-forever.ipynb", seconds=3602.0), "signal": signal.SIGTERM},
    "sigint": {"steps": _two_steps("sleeps-forever.ipynb", seconds=3603.0), "signal": signal.SIGINT},
}


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Scenario]]:
    """Run every failure scenario at once, each in its own store; signal the two signal scenarios."""
    started: dict[str, tuple[Running, dict[str, str], Path]] = {}
    for name, spec in SCENARIOS.items():
        folder = tmp_path_factory.mktemp(name)
        env = store_environment(folder)
        steps = spec["steps"]
        assert isinstance(steps, list)
        if name == "retry":
            steps[0]["parameters"] = {"marker": str(folder / "marker")}
        path = write_pipeline(folder, name, steps)
        running = Running(["run", str(path), "--output-dir", str(folder / "out")], env, folder / "proc")
        started[name] = (running, env, folder)
    leftovers: dict[str, list[psutil.Process]] = {}
    for name, spec in SCENARIOS.items():
        if "signal" in spec:
            running = started[name][0]
            seconds = str(int(spec["steps"][0]["parameters"]["seconds"]))  # type: ignore[index]
            leftovers[name] = running.wait_for_descendant(lambda cmd, s=seconds: cmd[:2] == ["sleep", s])
            running.proc.send_signal(int(spec["signal"]))  # type: ignore[call-overload]
    done = {}
    for name, (running, env, folder) in started.items():
        result = running.wait(timeout=240)
        done[name] = Scenario(result, env, folder, leftovers.get(name, []))
    yield done


def test_failing_cell_exits_1_naming_step_cell_and_exception(scenarios: dict[str, Scenario]) -> None:
    """A cell raising exits 1 with step, cell number and exception named; downstream never starts."""
    s = scenarios["fails"]
    assert s.result.returncode == 1, s.result.stderr
    message = "step 'first' failed in cell 2 of"
    assert message in s.result.stderr and "ValueError: boom: value was 1" in s.result.stderr
    summary = s.result.summary
    assert summary["status"] == "FAILED" and summary["exit_code"] == 1
    assert summary["steps"]["after"]["status"] == "NOT_STARTED"
    assert s.runs() == {"first#1": "FAILED", "fails (pipeline)#": "FAILED"}


def test_failed_notebook_is_kept_with_the_error_marked(scenarios: dict[str, Scenario]) -> None:
    """The executed notebook with papermill's error marker is kept on disk and as MLflow artifacts."""
    s = scenarios["fails"]
    step = s.result.summary["steps"]["first"]
    kept = json.loads(Path(step["notebook"]).read_text())
    assert any("papermill-error-cell-tag" in c["metadata"].get("tags", []) for c in kept["cells"])
    assert any(o.get("ename") == "ValueError" for c in kept["cells"] for o in c.get("outputs", []))
    artifacts = {a.path for a in s.client.list_artifacts(step["run_id"], "notebook")}
    assert artifacts == {"notebook/first.ipynb", "notebook/first.html"}


@pytest.mark.parametrize(
    ("name", "code", "error", "fragment"),
    [
        pytest.param("timeout", 3, "StepTimeoutError", "timed out after 15 s in cell 3", id="timeout"),
        pytest.param("dies", 4, "KernelDiedError", "the kernel died in cell 2", id="kernel-died"),
    ],
)
def test_timeout_and_dead_kernel_have_their_own_exit_codes(
    scenarios: dict[str, Scenario], name: str, code: int, error: str, fragment: str
) -> None:
    """A step timeout exits 3 and a dead kernel 4; runs FAILED, notebook kept and marked, no hang."""
    s = scenarios[name]
    assert s.result.returncode == code, s.result.stderr
    assert fragment in s.result.stderr
    finished = s.result.named("step_finished")
    assert [e["error"] for e in finished] == [error]
    assert sorted(s.runs().values()) == ["FAILED", "FAILED"]
    kept = json.loads(Path(s.result.summary["steps"]["first"]["notebook"]).read_text())
    assert any("mlfactor-stopped" in c["metadata"].get("tags", []) for c in kept["cells"])


def test_timeout_leaves_no_process(scenarios: dict[str, Scenario]) -> None:
    """The timed-out kernel and the process it started are gone."""
    assert scenarios["timeout"].result.returncode == 3
    assert not [
        p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[:2] == ["sleep", "3601"]
    ]


def test_retry_reruns_only_the_failed_step(scenarios: dict[str, Scenario]) -> None:
    """retries: 1 re-runs the failing step as a new run; the pipeline then succeeds."""
    s = scenarios["retry"]
    assert s.result.returncode == 0, s.result.stderr
    assert s.result.summary["steps"]["first"]["attempts"] == 2
    assert s.runs() == {
        "first#1": "FAILED",
        "first#2": "FINISHED",
        "after#1": "FINISHED",
        "retry (pipeline)#": "FINISHED",
    }


@pytest.mark.parametrize(("name", "code"), [("sigterm", 143), ("sigint", 130)])
def test_signal_shuts_kernels_down_and_exits(scenarios: dict[str, Scenario], name: str, code: int) -> None:
    """SIGTERM/SIGINT: exit 143/130 within seconds, runs KILLED, partial notebook kept, no orphan."""
    s = scenarios[name]
    assert s.result.returncode == code, s.result.stderr
    interrupted = s.result.named("pipeline_interrupted")[0]["timestamp"]
    finished = s.result.named("pipeline_finished")[0]["timestamp"]
    assert (dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(interrupted)).total_seconds() < 10
    assert s.leftovers, "the kernel and its child were seen before the signal"
    assert alive(s.leftovers) == []
    assert sorted(s.runs().values()) == ["KILLED", "KILLED"]
    summary = s.result.summary
    assert summary["status"] == "KILLED"
    assert summary["steps"]["after"]["status"] == "NOT_STARTED"
    kept = json.loads(Path(summary["steps"]["first"]["notebook"]).read_text())
    assert kept["metadata"]["papermill"]["parameters"]["seconds"] > 3600
