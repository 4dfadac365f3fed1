"""Airflow rendering without Airflow: the pod is a valid Kubernetes Pod, files are stable, no secrets."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import kubernetes_validate
import pytest
from test_deploy_render import K8S_VERSION, make_release, make_settings

from mlfactor.deploy.airflow import AirflowOptions, pod_template
from mlfactor.deploy.engines import EngineOptions, render_airflow
from mlfactor.deploy.options import DeployOptions
from mlfactor.deploy.render import release_context
from mlfactor.errors import ValidationError
from mlfactor.settings import Settings

DEMO = Path(__file__).resolve().parents[2] / "pipelines" / "train.yaml"
TOKEN = "tok-airflow-5d2e8b"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of a fresh store with a secret in the environment."""
    return make_settings(tmp_path / "store", MLFLOW_TRACKING_TOKEN=TOKEN)


def test_every_tasks_pod_is_a_valid_kubernetes_pod(settings: Settings) -> None:
    """The operator's pod template passes strict validation as a Pod of Kubernetes 1.37."""
    pod = pod_template(release_context(make_release(settings), DeployOptions(pipelines=())))
    assert kubernetes_validate.validate(pod, K8S_VERSION, strict=True) == K8S_VERSION
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "base" and "command" not in container  # the task gives cmds and arguments
    assert pod["spec"]["enableServiceLinks"] is False


@pytest.mark.parametrize("operator", ["kubernetes", "bash"])
def test_the_dag_file_is_python_stable_and_holds_no_secret(
    operator: str, settings: Settings, tmp_path: Path
) -> None:
    """The DAG file parses, renders byte-identically twice, names the Secret's keys but never their values."""
    release = make_release(settings)
    dag = AirflowOptions(operator=operator, project_dir="/srv/project")
    for out in ("one", "two"):
        render_airflow(settings, release, DEMO, tmp_path / out, options=EngineOptions(), dag=dag)
    first = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    assert first == {p.name: p.read_bytes() for p in (tmp_path / "two").iterdir()}
    source = first["mlfactor_train.py"].decode()
    ast.parse(source)
    assert source.startswith("# Rendered by `mlfactor deploy airflow` from release ")
    assert TOKEN not in "".join(p.decode(errors="replace") for p in first.values())
    summary = json.loads(first["render.json"])
    if operator == "kubernetes":
        assert "MLFLOW_TRACKING_TOKEN" in summary["secret"]["keys"]
        assert "'name': 'MLFLOW_TRACKING_TOKEN'" in source
    else:
        assert "Secrets come from the worker's environment: " in source and "MLFLOW_TRACKING_TOKEN" in source
        assert "'MLFACTOR_PROJECT_DIR': '/srv/project'" in source


def test_a_sweep_is_refused_for_airflow(settings: Settings, tmp_path: Path) -> None:
    """An Airflow DAG is one pipeline run: --sweep is refused with where to render one instead."""
    with pytest.raises(ValidationError, match="render a sweep for Argo or as an Indexed Job"):
        render_airflow(
            settings,
            make_release(settings),
            DEMO,
            tmp_path / "af",
            options=EngineOptions(sweeps=("train.C=1,2",)),
        )
    assert not (tmp_path / "af").exists()
