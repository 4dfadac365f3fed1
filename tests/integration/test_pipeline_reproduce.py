"""`mlfactor reproduce`: a version trained by the demo pipeline in a committed repository is rebuilt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import RegisteredModel
from mlflow.tracking import MlflowClient
from pipeline_harness import PROJECT_DIR, Finished, run_mlfactor

from mlfactor.registry import resolve_model
from mlfactor.reproduce import NotReproducibleError
from mlfactor.settings import sandbox_environment

pytestmark = pytest.mark.slow


@dataclass
class Project:
    """A throwaway git repository holding a copy of the project, with its own store."""

    repo: Path
    env: dict[str, str]
    folder: Path

    @property
    def client(self) -> MlflowClient:
        """A client of the project's store."""
        uri = self.env["MLFLOW_TRACKING_URI"]
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def mlfactor(self, *args: str, name: str) -> Finished:
        """Run `mlfactor ARGS` against the project's store."""
        return run_mlfactor(list(args), self.env, self.folder / name, timeout=600)

    def train(self, name: str) -> Finished:
        """Run the demo pipeline of the copy."""
        pipeline = str(self.repo / "pipelines" / "train.yaml")
        return self.mlfactor("run", pipeline, "--output-dir", str(self.folder / "output"), name=name)


def _git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "-C", str(repo), *identity, *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Copy pyproject, src, pipelines and notebooks into a fresh repository, commit, train once."""
    folder = tmp_path_factory.mktemp("reproduce")
    repo = folder / "repo"
    repo.mkdir()
    shutil.copy(PROJECT_DIR / "pyproject.toml", repo)
    for part in ("src/mlfactor", "pipelines", "notebooks"):
        shutil.copytree(
            PROJECT_DIR / part, repo / part, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]")
        )
    (repo / ".gitignore").write_text("__pycache__/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A", ".")
    _git(repo, "commit", "-qm", "the project as trained")
    env = sandbox_environment(folder / "store", repo, os.environ)
    project = Project(repo, env, folder)
    trained = project.train("train")
    assert trained.returncode == 0, trained.stderr
    yield project


def test_a_clean_version_reproduces(project: Project) -> None:
    """Exit 0 with a REPRODUCED report; the original model and its alias are untouched; report linked."""
    result = project.mlfactor("reproduce", "iris-classifier@champion", name="clean")
    assert result.returncode == 0, result.stderr
    report = result.summary
    assert report["status"] == "REPRODUCED" and report["differences"] == []
    kinds = {c["kind"] for c in report["checks"]}
    assert kinds == {"metric", "prediction", "parameter", "package"}
    client = project.client
    assert [str(v.version) for v in client.search_model_versions("name = 'iris-classifier'")] == ["1"]
    assert str(client.get_model_version_by_alias("iris-classifier", "champion").version) == "1"
    rerun = report["reproduction"]["pipeline_run_id"]
    link = f"runs:/{rerun}/reproduce/report.json"
    assert (
        client.get_run(report["original"]["pipeline_run_id"]).data.tags["mlfactor.reproduce.report"] == link
    )
    assert client.get_run(rerun).data.tags["mlfactor.reproduce.report"] == link
    experiment = client.get_experiment(client.get_run(rerun).info.experiment_id)
    assert experiment.name == "demo-reproduce"
    logged = json.loads(
        Path(client.download_artifacts(rerun, "reproduce/report.json", str(project.folder))).read_text()
    )
    assert logged["status"] == "REPRODUCED"


def test_a_tampered_metric_differs(project: Project) -> None:
    """A changed metric on the original run makes the reproduction exit 1, naming the metric."""
    client = project.client
    run_id = client.get_model_version("iris-classifier", "1").run_id
    assert run_id is not None
    client.log_metric(run_id, "accuracy", 0.5)
    result = project.mlfactor("reproduce", "iris-classifier/1", name="tampered")
    assert result.returncode == 1, result.stderr
    differences = result.summary["differences"]
    assert [(d["kind"], d["name"], d["original"]) for d in differences] == [("metric", "accuracy", 0.5)]


def test_a_version_trained_from_a_dirty_tree_cannot_be_reproduced(project: Project) -> None:
    """A notebook changed without a commit: exit 65, the reason says so, nothing is re-run."""
    notebook = project.repo / "notebooks" / "01-train.ipynb"
    data = json.loads(notebook.read_text())
    data["cells"][0]["source"] = [*data["cells"][0]["source"], "\n\nAn uncommitted edit."]
    notebook.write_text(json.dumps(data, indent=1))
    trained = project.train("dirty-train")
    assert trained.returncode == 0, trained.stderr
    version = trained.summary["outputs"]["train"]["model_version"]
    result = project.mlfactor("reproduce", f"iris-classifier/{version}", name="dirty")
    assert result.returncode == 65
    assert result.summary["status"] == "NOT_REPRODUCIBLE"
    assert "the git tree was dirty when it was trained" in result.summary["reason"]
    assert "dirty" in result.stderr and not result.named("pipeline_started")


def test_a_version_without_pipeline_lineage_cannot_be_reproduced(registered_model: RegisteredModel) -> None:
    """A version registered outside `mlfactor run` has no lineage to rebuild from: exit-65 error."""
    from mlfactor.reproduce.record import read_record
    from mlfactor.tracking import connect

    client = connect(registered_model.settings)
    with pytest.raises(NotReproducibleError) as caught:
        read_record(
            client, resolve_model(client, f"models:/{registered_model.name}/{registered_model.version}")
        )
    assert "it has no pipeline lineage" in caught.value.reason
    assert caught.value.exit_code == 65


def test_an_unknown_commit_cannot_be_reproduced(tmp_path: Path) -> None:
    """A commit the repository does not have (never fetched) is refused before anything runs."""
    from mlfactor.reproduce.worktree import checked_out

    _git(tmp_path, "init", "-q")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "only commit")
    with pytest.raises(NotReproducibleError) as caught, checked_out(tmp_path, "0" * 40, "m/1"):
        pass
    assert f"commit {'0' * 40} is unknown to the repository" in caught.value.reason
