"""The demo pipeline end to end: `mlfactor run pipelines/train.yaml` against a temporary sqlite store."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import store_environment
from mlflow.tracking import MlflowClient
from pipeline_harness import PROJECT_DIR, Finished, run_mlfactor

from mlfactor.aliases import alias_history

pytestmark = pytest.mark.slow
PIPELINE = PROJECT_DIR / "pipelines" / "train.yaml"


@dataclass
class DemoRuns:
    """Two runs of the demo pipeline on one store: the first trains v1, the second a worse v2."""

    first: Finished
    second: Finished
    env: dict[str, str]
    folder: Path

    @property
    def client(self) -> MlflowClient:
        """A client of the test store."""
        return MlflowClient(
            tracking_uri=self.env["MLFLOW_TRACKING_URI"], registry_uri=self.env["MLFLOW_TRACKING_URI"]
        )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRuns]:
    """Run the demo pipeline twice: defaults, then a heavily regularised (worse) model."""
    folder = tmp_path_factory.mktemp("demo")
    env = store_environment(folder)
    out = str(folder / "output")
    first = run_mlfactor(["run", str(PIPELINE), "--output-dir", out], env, folder / "first")
    second = run_mlfactor(
        ["run", str(PIPELINE), "-p", "train.C=0.0005", "--output-dir", out], env, folder / "second"
    )
    yield DemoRuns(first, second, env, folder)


def test_run_succeeds_with_json_lines_and_a_final_summary(demo: DemoRuns) -> None:
    """Exit 0; every stdout line is JSON; the last one summarises steps, durations and outputs."""
    assert demo.first.returncode == 0, demo.first.stderr
    summary = demo.first.summary
    assert summary["pipeline"] == "train" and summary["status"] == "FINISHED" and summary["exit_code"] == 0
    assert list(summary["steps"]) == ["train", "evaluate"]
    assert all(s["duration_s"] > 0 and s["status"] == "FINISHED" for s in summary["steps"].values())
    assert summary["outputs"]["train"]["model_version"] == "1"
    assert summary["outputs"]["evaluate"] == {"promoted": True, "champion_version": "1"}
    assert summary["metric"]["name"] == "train.accuracy" and summary["metric"]["value"] > 0.8
    assert [e["event"] for e in demo.first.named("step_finished")] == ["step_finished"] * 2


def test_parent_and_step_runs_carry_lineage(demo: DemoRuns) -> None:
    """Parent run: file hash, git commit, version, packages; step runs: nested, params, notebook artifacts."""
    client = demo.client
    parent = client.get_run(demo.first.summary["run_id"])
    tags = parent.data.tags
    assert tags["mlfactor.pipeline.sha256"] == hashlib.sha256(PIPELINE.read_bytes()).hexdigest()
    head = tags["mlflow.source.git.commit"]
    ancestor = ["git", "-C", str(PROJECT_DIR), "merge-base", "--is-ancestor", head, "HEAD"]
    assert subprocess.run(ancestor, check=False).returncode == 0, "the commit the run was made from"
    assert tags["mlfactor.git.dirty"] in ("true", "false")
    assert tags["mlfactor.version"] and tags["mlfactor.package.mlflow"]
    assert parent.data.params["train.C"] == "1.0"
    packages = Path(client.download_artifacts(parent.info.run_id, "lineage/packages.txt", str(demo.folder)))
    assert any(line.startswith("papermill==") for line in packages.read_text().splitlines())
    for name, step in demo.first.summary["steps"].items():
        run = client.get_run(step["run_id"])
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["mlflow.source.git.commit"] and run.data.tags["mlfactor.git.dirty"]
        assert run.data.tags["mlfactor.step"] == name
        artifacts = {a.path for a in client.list_artifacts(step["run_id"], "notebook")}
        assert artifacts == {f"notebook/{name}.ipynb", f"notebook/{name}.html"}
    train = client.get_run(demo.first.summary["steps"]["train"]["run_id"])
    assert train.data.params["C"] == "1.0"
    assert {"accuracy", "f1"} <= set(train.data.metrics)
    assert "confusion_matrix.png" in {a.path for a in client.list_artifacts(train.info.run_id)}


def test_first_version_is_promoted_and_a_worse_one_is_not(demo: DemoRuns) -> None:
    """v1 becomes champion (recorded with the pipeline run id); the worse v2 leaves champion on v1."""
    assert demo.second.returncode == 0, demo.second.stderr
    assert demo.second.summary["outputs"]["train"]["model_version"] == "2"
    assert demo.second.summary["outputs"]["evaluate"] == {"promoted": False, "champion_version": "1"}
    client = demo.client
    assert str(client.get_model_version_by_alias("iris-classifier", "champion").version) == "1"
    moves = alias_history(client, "iris-classifier", "champion")
    assert [m.to_version for m in moves] == ["1"]
    assert moves[0].pipeline_run_id == demo.first.summary["run_id"]


def test_executed_notebooks_stay_out_of_the_repository(demo: DemoRuns) -> None:
    """Executed notebooks land in the output folder; the committed notebooks keep no outputs."""
    for step in demo.first.summary["steps"].values():
        kept = Path(step["notebook"])
        assert kept.is_relative_to(demo.folder / "output") and kept.with_suffix(".html").is_file()
        cells = json.loads(kept.read_text())["cells"]
        assert any(c.get("outputs") for c in cells)
    for notebook in (PROJECT_DIR / "notebooks").glob("*.ipynb"):
        cells = json.loads(notebook.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), notebook


def test_executed_notebooks_read_well(demo: DemoRuns) -> None:
    """The confusion matrix is an inline PNG in the kept notebook and its HTML; no tqdm or kernel noise."""
    train = Path(demo.first.summary["steps"]["train"]["notebook"])
    cells = json.loads(train.read_text())["cells"]
    figure = next(c for c in cells if "confusion_matrix.png" in "".join(c["source"]))
    assert any("image/png" in o.get("data", {}) for o in figure["outputs"])
    assert re.search(r'<img [^>]*src="data:image/png;base64,', train.with_suffix(".html").read_text())
    for step in demo.first.summary["steps"].values():
        assert "TqdmWarning" not in Path(step["notebook"]).read_text()
    assert "without encryption" not in demo.first.stderr and "IPKernelApp" not in demo.first.stderr
