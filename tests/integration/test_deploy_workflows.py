"""Argo and Airflow renders, proven with Airflow's own DagBag and by running their tasks locally.

One small project (two notebook steps, the second taking the first's output) is released and
rendered for both engines. Airflow (in .venv-airflow, `make airflow`) imports the DAG files with
its DagBag. Then, for each engine, every task's container runs here as a local process, in the
order the engine would run them, with the environment the render gives the pod (ConfigMap,
Secret, pod variables), against a real sqlite store: the MLflow run tree equals the one a plain
`mlfactor run` of the same pipeline gives.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
import yaml
from conftest import PROJECT_DIR, store_environment
from pipeline_harness import FIXTURES, run_mlfactor
from run_tree import run_tree

from mlfactor.deploy import airflow
from mlfactor.deploy.airflow import AirflowOptions
from mlfactor.deploy.engines import EngineOptions, render_airflow, render_argo
from mlfactor.deploy.local import local_process
from mlfactor.deploy.options import SCRATCH, DeployOptions
from mlfactor.deploy.render import release_context
from mlfactor.deploy.workflow import OPEN_TASK
from mlfactor.release.records import Release, config_hash, release_config
from mlfactor.settings import Settings, load_settings
from mlfactor.tracking import connect

pytestmark = pytest.mark.slow
AIRFLOW_PYTHON = PROJECT_DIR / ".venv-airflow" / "bin" / "python"
SECRET = "tok-workflows-3e9a1c"
OVERRIDE = "first.value=4"


@dataclass
class Rendered:
    """The released project, its renders for both engines, and the plain run to compare with."""

    folder: Path
    env: dict[str, str]
    settings: Settings
    release: Release
    argo: Path
    airflow: Path
    bash: Path
    image: Path
    plain_run_id: str

    def pod_environment(self) -> dict[str, Any]:
        """What `local_process` needs besides the container: ConfigMap, Secret, image and scratch folders."""
        config = yaml.safe_load((self.argo / "configmap.yaml").read_text())
        keys = json.loads((self.argo / "render.json").read_text())["secret"]["keys"]
        return {
            "config_maps": {config["metadata"]["name"]: config["data"]},
            "secrets": {"mlfactor-secrets": dict.fromkeys(keys, SECRET)},
            "base_env": {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8"},
        }


def make_project(folder: Path) -> Path:
    """A project folder as the image holds it: pyproject.toml, a pipeline file, its notebooks."""
    (folder / "notebooks").mkdir(parents=True)
    (folder / "pipelines").mkdir()
    (folder / "pyproject.toml").write_text('[project]\nname = "workflows"\nversion = "0"\n')
    for name in ("records-output.ipynb", "takes-input.ipynb"):
        shutil.copy(FIXTURES / name, folder / "notebooks" / name)
    steps = [
        {"name": "first", "notebook": "notebooks/records-output.ipynb", "parameters": {"value": 3}},
        {
            "name": "second",
            "notebook": "notebooks/takes-input.ipynb",
            "parameters": {
                "number": "${steps.first.outputs.doubled}",
                "text": "${steps.first.outputs.label}",
            },
        },
    ]
    pipeline = {"name": "chain", "experiment": "workflows", "steps": steps}
    (folder / "pipelines" / "chain.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return folder


def make_release(settings: Settings) -> Release:
    """A release record of this configuration (no Bento needed to render workflows)."""
    config, excluded = release_config(settings)
    return Release(
        release_id="rel-20261207-000000-abcdef",
        app="mlfactor",
        bento_tag="mlfactor:v1-0123456789ab",
        model_name="iris-classifier",
        model_version="1",
        model_tag="iris-classifier:v1-0123456789ab",
        config_hash=config_hash(config),
        created_at="2026-12-07T00:00:00.000+00:00",
        created_ns=1,
        who="tester",
        config=config,
        secrets_excluded=excluded,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """Release the project, render it for Argo and Airflow (both operators), run it once plainly."""
    folder = tmp_path_factory.mktemp("workflows")
    project = make_project(folder / "project")
    image = folder / "image"
    image.mkdir()
    (image / "src").symlink_to(project)  # $(BENTO_PATH)/src is the project inside the image
    env = {
        **store_environment(folder / "store"),
        "MLFACTOR_PROJECT_DIR": str(project),
        "MLFLOW_TRACKING_TOKEN": SECRET,
    }
    settings = load_settings(env)
    release = make_release(settings)
    pipeline = project / "pipelines" / "chain.yaml"
    options = EngineOptions(parameters=(OVERRIDE,))  # -p reaches the run through open-run
    render_argo(settings, release, pipeline, folder / "argo", options=options)
    render_airflow(settings, release, pipeline, folder / "airflow", options=options)
    bash = AirflowOptions(operator="bash", executable="mlfactor", project_dir=str(project))
    render_airflow(settings, release, pipeline, folder / "bash", options=options, dag=bash)
    plain = run_mlfactor(
        ["run", str(pipeline), "-p", OVERRIDE, "--output-dir", str(folder / "plain")], env, folder / "plain"
    )
    assert plain.returncode == 0, plain.stderr
    return Rendered(
        folder, env, settings, release, folder / "argo", folder / "airflow", folder / "bash", image,
        plain.summary["run_id"],
    )  # fmt: skip


@pytest.fixture(scope="module")
def dagbag(rendered: Rendered) -> dict[str, Any]:
    """What Airflow's DagBag found in the two DAG folders (KubernetesPodOperator and BashOperator)."""
    assert AIRFLOW_PYTHON.is_file(), "Airflow is missing: run `make airflow` (make test does it)"
    report = rendered.folder / "dagbag.json"
    home = rendered.folder / "airflow-home"
    env = {
        "PATH": os.environ["PATH"],
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "true",
    }
    script = Path(__file__).with_name("airflow_dagbag.py")
    done = subprocess.run(
        [str(AIRFLOW_PYTHON), str(script), str(report), str(rendered.airflow), str(rendered.bash)],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(report.read_text())
    return found


def test_airflows_dagbag_imports_both_renders_with_the_expected_task_graph(
    rendered: Rendered, dagbag: dict[str, Any]
) -> None:
    """No import errors; open-run, one task per step in pipeline order, finish-run on all_done."""
    for folder, operator in ((rendered.airflow, "KubernetesPodOperator"), (rendered.bash, "BashOperator")):
        found = dagbag[str(folder)]
        assert found["errors"] == {}
        assert list(found["dags"]) == ["mlfactor-chain"]
        dag = found["dags"]["mlfactor-chain"]
        assert dag["schedule"] is None and dag["max_active_runs"] == 1 and dag["catchup"] is False
        tasks = dag["tasks"]
        assert {name: t["upstream"] for name, t in tasks.items()} == {
            "open-run": [],
            "first": ["open-run"],
            "second": ["first", "open-run"],
            "finish-run": ["first", "open-run", "second"],
        }
        assert {t["operator"] for t in tasks.values()} == {operator}
        assert [name for name, t in tasks.items() if t["do_xcom_push"]] == ["open-run"]
        assert tasks["finish-run"]["trigger_rule"] == "all_done"
        assert all(t["retries"] == 2 for t in tasks.values())
    pod = dagbag[str(rendered.airflow)]["dags"]["mlfactor-chain"]["tasks"]["first"]
    expected = airflow.pod_template(release_context(rendered.release, DeployOptions(pipelines=())))
    assert pod["pod_template_dict"] == expected
    assert pod["image"] == "mlfactor:v1-0123456789ab"
    bash = dagbag[str(rendered.bash)]["dags"]["mlfactor-chain"]["tasks"]["second"]["bash_command"]
    assert bash.startswith('mlfactor run "${MLFACTOR_PROJECT_DIR}"/pipelines/chain.yaml --step second ')


def _run(process_args: dict[str, Any], folder: Path, name: str) -> int:
    with (folder / f"{name}.log").open("w") as log:
        done = subprocess.run(
            process_args["args"], env=process_args["env"], stdout=log, stderr=subprocess.STDOUT,
            cwd=folder, timeout=300, check=False,
        )  # fmt: skip
    return done.returncode


def _in_order(upstream: Mapping[str, set[str]]) -> list[str]:
    """Task names in an order where every task comes after its upstream tasks (the engine's order)."""
    order: list[str] = []
    while len(order) < len(upstream):
        ready = [t for t, needs in upstream.items() if t not in order and needs <= set(order)]
        assert ready, f"no task can run: {upstream}"
        order.append(ready[0])
    return order


def test_argo_tasks_run_locally_give_the_run_tree_of_mlfactor_run(rendered: Rendered, tmp_path: Path) -> None:
    """Each Argo container template, run in DAG order as a local process, rebuilds the plain run's tree."""
    spec = yaml.safe_load((rendered.argo / "workflow.yaml").read_text())["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    tasks = {t["name"]: t for t in templates[spec["entrypoint"]]["dag"]["tasks"]}
    upstream = {
        name: set(re.findall(r"([a-z0-9][a-z0-9-]*)(?:\.[A-Za-z]+)?", t.get("depends", "")))
        for name, t in tasks.items()
    }
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    output = templates["open-run"]["outputs"]["parameters"][0]["valueFrom"]["path"]
    run_id = ""
    for name in _in_order(upstream):
        container = dict(templates[tasks[name]["template"]]["container"])
        for parameter in tasks[name].get("arguments", {}).get("parameters", []):
            assert parameter["value"] == "{{tasks.open-run.outputs.parameters.pipeline-run-id}}"
            container["args"] = [
                a.replace("{{inputs.parameters.pipeline-run-id}}", run_id) for a in container["args"]
            ]
        process = local_process(
            container,
            **rendered.pod_environment(),
            overrides={"BENTO_PATH": str(rendered.image), "TMPDIR": str(scratch)},
        )
        assert _run({"args": process.command, "env": process.env}, tmp_path, name) == 0, (
            tmp_path / f"{name}.log"
        ).read_text()[-3000:]
        if name == OPEN_TASK:
            run_id = (scratch / Path(output).relative_to(SCRATCH)).read_text()
    client = connect(rendered.settings)
    tree = run_tree(client, run_id)
    assert tree == run_tree(client, rendered.plain_run_id)
    assert list(tree["steps"]) == ["<first attempt 1>", "<second attempt 1>"]
    assert tree["parent"]["status"] == "FINISHED"
    assert tree["parent"]["params"]["first.value"] == "4"
    assert tree["parent"]["tags"]["mlfactor.output.second.received"] == "8"


def test_airflow_tasks_run_locally_give_the_run_tree_of_mlfactor_run(
    rendered: Rendered, dagbag: dict[str, Any], tmp_path: Path
) -> None:
    """Each task of Airflow's DagBag, run in order as the pod it describes, rebuilds the plain run's tree."""
    tasks = dagbag[str(rendered.airflow)]["dags"]["mlfactor-chain"]["tasks"]
    scratch = tmp_path / "scratch"
    xcom = scratch / "xcom" / "return.json"  # the operator's sidecar mounts /airflow/xcom in the pod
    xcom.parent.mkdir(parents=True)
    run_id = ""
    for name in _in_order({n: set(t["upstream"]) for n, t in tasks.items()}):
        task = tasks[name]
        container = {
            **task["pod_template_dict"]["spec"]["containers"][0],
            "command": task["cmds"],
            "args": [
                str(xcom) if a == airflow.XCOM_FILE else a.replace(airflow.KUBERNETES_RUN_ID, run_id)
                for a in task["arguments"]
            ],
        }
        process = local_process(
            container,
            **rendered.pod_environment(),
            overrides={"BENTO_PATH": str(rendered.image), "TMPDIR": str(scratch)},
        )
        assert _run({"args": process.command, "env": process.env}, tmp_path, name) == 0, (
            tmp_path / f"{name}.log"
        ).read_text()[-3000:]
        if task["do_xcom_push"]:
            run_id = json.loads(xcom.read_text())
    client = connect(rendered.settings)
    tree = run_tree(client, run_id)
    assert tree == run_tree(client, rendered.plain_run_id)
    assert list(tree["steps"]) == ["<first attempt 1>", "<second attempt 1>"]
    assert tree["parent"]["status"] == "FINISHED"
    assert tree["parent"]["params"]["first.value"] == "4"
    assert tree["parent"]["tags"]["mlfactor.output.second.received"] == "8"


def render_like_airflow(command: str, xcom: str) -> str:
    """Render a bash_command's Jinja as Airflow does, ``ti.xcom_pull`` giving the open task's XCom."""
    ti = SimpleNamespace(xcom_pull=lambda task_ids: xcom if task_ids == OPEN_TASK else None)
    return jinja2.Template(command).render(ti=ti, macros=SimpleNamespace(json=json))


def test_airflow_bash_tasks_run_locally_give_the_run_tree_of_mlfactor_run(
    rendered: Rendered, dagbag: dict[str, Any], tmp_path: Path
) -> None:
    """The BashOperator DAG's commands, run by bash as a worker would, rebuild the plain run's tree."""
    tasks = dagbag[str(rendered.bash)]["dags"]["mlfactor-chain"]["tasks"]
    worker = {  # append_env=True: the worker's own environment, its secrets and PATH to mlfactor
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "TMPDIR": str(tmp_path),
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_TOKEN": SECRET,
    }
    xcom = ""
    for name in _in_order({n: set(t["upstream"]) for n, t in tasks.items()}):
        task = tasks[name]
        command = render_like_airflow(task["bash_command"], xcom)
        done = subprocess.run(
            ["bash", "-c", command], env={**worker, **task["env"]}, cwd=tmp_path, capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        if task["do_xcom_push"]:  # BashOperator pushes the last line of stdout
            xcom = done.stdout.strip().splitlines()[-1]
    client = connect(rendered.settings)
    tree = run_tree(client, json.loads(xcom)["run_id"])
    assert tree == run_tree(client, rendered.plain_run_id)
    assert list(tree["steps"]) == ["<first attempt 1>", "<second attempt 1>"]
