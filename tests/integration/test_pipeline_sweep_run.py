"""Sweeps: the grid runs as separate, traceable pipeline runs in parallel, ranked by the metric."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import store_environment
from mlflow.tracking import MlflowClient
from pipeline_harness import fixture, run_mlfactor, write_pipeline

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
