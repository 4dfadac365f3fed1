"""A notebook using only plain MLflow: under `mlfactor run` it lands in the step's run, with lineage."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import store_environment
from mlflow.tracking import MlflowClient
from pipeline_harness import PROJECT_DIR, Finished, fixture, run_mlfactor, write_pipeline

pytestmark = pytest.mark.slow
NOTEBOOK = "plain-mlflow-registers-two-versions.ipynb"


@dataclass
class PlainRun:
    """One pipeline run of the plain-MLflow notebook, and a client of its store."""

    result: Finished
    client: MlflowClient
    folder: Path


def _client(env: dict[str, str]) -> MlflowClient:
    uri = env["MLFLOW_TRACKING_URI"]
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainRun]:
    """Run the notebook as the only step of a pipeline."""
    folder = tmp_path_factory.mktemp("plain")
    env = store_environment(folder)
    path = write_pipeline(folder, "plain", [{"name": "train", "notebook": fixture(NOTEBOOK)}])
    result = run_mlfactor(["run", str(path), "--output-dir", str(folder / "output")], env, folder / "proc")
    yield PlainRun(result, _client(env), folder)


def test_start_run_and_autolog_attach_to_the_step_run(plain: PlainRun) -> None:
    """`with mlflow.start_run()` and autologging write into the step's run; nested runs are its children."""
    assert plain.result.returncode == 0, plain.result.stderr
    step_id = plain.result.summary["steps"]["train"]["run_id"]
    step = plain.client.get_run(step_id)
    assert step.data.params["C"] == "1.0" and "training_accuracy_score" in step.data.metrics
    experiments = [e.experiment_id for e in plain.client.search_experiments()]
    assert [e.name for e in plain.client.search_experiments()] == ["tests", "Default"]
    runs = plain.client.search_runs(experiments)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == step_id]
    assert len(runs) == 3 and len(children) == 1
    assert children[0].info.experiment_id == step.info.experiment_id


@pytest.mark.parametrize(
    "model", ["plain-iris", "plain-iris-small"], ids=["registered_model_name", "register_model"]
)
def test_every_registered_version_carries_the_lineage(plain: PlainRun, model: str) -> None:
    """Both APIs' versions lead to the commit, dirty flag, pipeline run, step and executed notebook."""
    assert plain.result.returncode == 0, plain.result.stderr
    summary = plain.result.summary
    (version,) = plain.client.search_model_versions(f"name = '{model}'")
    tags = version.tags
    commit = tags["mlflow.source.git.commit"]
    ancestor = ["git", "-C", str(PROJECT_DIR), "merge-base", "--is-ancestor", commit, "HEAD"]
    assert subprocess.run(ancestor, check=False).returncode == 0, "the commit the notebook came from"
    assert tags["mlfactor.git.dirty"] in ("true", "false")
    assert tags["mlfactor.pipeline.run_id"] == summary["run_id"]
    assert tags["mlfactor.step"] == "train"
    step_id = summary["steps"]["train"]["run_id"]
    assert commit == plain.client.get_run(step_id).data.tags["mlflow.source.git.commit"]
    assert tags["mlfactor.notebook.artifact"] == f"runs:/{step_id}/notebook/train.ipynb"
    kept = plain.client.download_artifacts(step_id, "notebook/train.ipynb", str(plain.folder))
    assert "register_model" in Path(kept).read_text()


def test_the_same_notebook_runs_by_hand_with_plain_papermill(tmp_path: Path) -> None:
    """Outside the runner (as in JupyterLab) it opens its own run in its own experiment and registers."""
    env = store_environment(tmp_path)
    out = tmp_path / "executed.ipynb"
    command = [sys.executable, "-m", "papermill", fixture(NOTEBOOK), str(out), "-p", "model_name", "by-hand"]
    done = subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    client = _client(env)
    (version,) = client.search_model_versions("name = 'by-hand'")
    run = client.get_run(version.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "plain-mlflow"
    assert "mlflow.parentRunId" not in run.data.tags
    assert len(client.search_model_versions("name = 'by-hand-small'")) == 1
