"""`mlfactor deploy argo` and `deploy airflow` as a new user runs them: the demo, a recorded release."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_DIR, store_environment
from hera.workflows.models import CronWorkflow, Workflow

from mlfactor.release.records import record_release
from mlfactor.settings import load_settings
from mlfactor.tracking import connect

pytestmark = pytest.mark.slow
MLFACTOR = str(Path(sys.executable).with_name("mlfactor"))
BENTO = {
    "bento_tag": "mlfactor:v1-0123456789ab",
    "app": "mlfactor",
    "registered_model": "iris-classifier",
    "model_version": "1",
    "model_tag": "iris-classifier:v1-0123456789ab",
}


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store holding one release of the demo (`current`), as `mlfactor release` records it."""
    env = store_environment(tmp_path_factory.mktemp("released"))
    settings = load_settings(env)
    record_release(connect(settings), settings, BENTO, settings)
    return env


def deploy(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `mlfactor deploy ARGS` from the project folder."""
    return subprocess.run(
        [MLFACTOR, "deploy", *args],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_demo_pipeline_renders_for_argo_from_the_current_release(
    released: dict[str, str], tmp_path: Path
) -> None:
    """`deploy argo` writes a Workflow and CronWorkflow that Argo's schema reads back unchanged; JSON last."""
    done = deploy(
        released, "argo", "pipelines/train.yaml", "--release", "current", "--out", str(tmp_path / "argo"),
        "--schedule", "0 3 * * *", "--registry", "ghcr.io/acme",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["image"] == "ghcr.io/acme/mlfactor:v1-0123456789ab"
    assert {"workflow.yaml", "cronworkflow.yaml", "configmap.yaml"} <= set(summary["files"])
    assert "argo submit" in done.stderr
    for name, model in (("workflow.yaml", Workflow), ("cronworkflow.yaml", CronWorkflow)):
        obj = yaml.safe_load((tmp_path / "argo" / name).read_text())
        assert model.model_validate(obj).model_dump(by_alias=True, exclude_none=True, mode="json") == obj


def test_demo_pipeline_renders_an_airflow_dag_file(released: dict[str, str], tmp_path: Path) -> None:
    """`deploy airflow` writes a Python DAG file (it compiles) naming both demo steps, and the ConfigMap."""
    done = deploy(
        released, "airflow", "pipelines/train.yaml", "--release", "current", "--out", str(tmp_path / "af")
    )
    assert done.returncode == 0, done.stderr
    source = (tmp_path / "af" / "mlfactor_train.py").read_text()
    compile(source, "mlfactor_train.py", "exec")
    assert "tasks['train'] >> tasks['evaluate']" in source
    assert (tmp_path / "af" / "configmap.yaml").is_file()


def test_bad_options_exit_65_naming_each_problem_and_write_nothing(
    released: dict[str, str], tmp_path: Path
) -> None:
    """A schedule that is not cron is refused (exit 65) before any file is written."""
    out = tmp_path / "argo"
    done = deploy(
        released,
        "argo",
        "pipelines/train.yaml",
        "--release",
        "current",
        "--out",
        str(out),
        "--schedule",
        "3am",
    )
    assert done.returncode == 65
    assert "--schedule '3am': expected 5 cron fields" in done.stderr
    assert not out.exists()
