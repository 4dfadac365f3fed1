"""Sweeps: the grid runs as separate, traceable pipeline runs in parallel, ranked by the metric."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import store_environment
from mlflow.tracking import MlflowClient
from pipeline_harness import Running, alive, fixture, run_mlfactor, write_pipeline

pytestmark = pytest.mark.slow


def test_sweep_runs_every_point_and_ranks_them(tmp_path: Path) -> None:
    """Each point runs (via --sweep-index) as a tagged pipeline run, in parallel; the last line ranks them."""
    path = write_pipeline(
        tmp_path,
        "sweep",
        [{"name": "a", "notebook": fixture("records-output.ipynb")}],
        metric={"step": "a", "name": "doubled", "goal": "max"},
    )
    env = store_environment(tmp_path)
    result = run_mlfactor(
        [
            "run",
            str(path),
            "--sweep",
            "a.value=1,3",
            "--max-parallel",
            "2",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        env,
        tmp_path / "proc",
    )
    assert result.returncode == 0, result.stderr
    final = result.summary
    assert final["points"] == 2 and final["status"] == "FINISHED"
    assert [(r["index"], r["value"]) for r in final["ranking"]] == [(1, 6.0), (0, 2.0)]
    assert "rank" in result.stderr and "a.doubled (max)" in result.stderr
    assert {e["sweep_index"] for e in result.events if "sweep_index" in e} == {0, 1}
    assert len([e for e in result.events if "event" not in e and "steps" in e]) == 2
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    for entry in final["ranking"]:
        run = client.get_run(entry["run_id"])
        assert run.data.tags["mlfactor.sweep.id"] == final["sweep_id"]
        assert run.data.tags["mlfactor.sweep.index"] == str(entry["index"])
        assert run.data.params["a.value"] == str(entry["parameters"]["a.value"])
        assert run.data.metrics["a.doubled"] == entry["value"]


def test_sigterm_stops_every_running_point_and_the_sweep_exits_143(tmp_path: Path) -> None:
    """SIGTERM to the sweep reaches every running point: each run ends KILLED, nothing is left, exit 143."""
    path = write_pipeline(
        tmp_path, "sweep-stop", [{"name": "a", "notebook": fixture("sleeps-forever.ipynb")}]
    )
    env = store_environment(tmp_path)
    running = Running(
        ["run", str(path), "--sweep", "a.seconds=3611.0,3612.0", "--max-parallel", "2"],
        env,
        tmp_path / "proc",
    )
    seen = running.wait_for_descendant(lambda cmd: cmd[:2] == ["sleep", "3611"])
    seen += running.wait_for_descendant(lambda cmd: cmd[:2] == ["sleep", "3612"])
    os.kill(running.proc.pid, signal.SIGTERM)
    result = running.wait(timeout=120)
    assert result.returncode == 143, result.stderr
    final = result.summary
    assert (final["status"], final["exit_code"], final["points"]) == ("KILLED", 143, 2)
    assert {entry["status"] for entry in final["ranking"]} == {"KILLED"}
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    for entry in final["ranking"]:
        assert client.get_run(entry["run_id"]).info.status == "KILLED"
    assert alive(seen) == []
