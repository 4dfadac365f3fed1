"""Argo rendering: strict validity against Hera's models of Argo's schema, the DAG, retries, sweeps, rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hera.workflows.models import CronWorkflow, Workflow
from test_deploy_render import load_folder, make_release, make_settings

from mlfactor.deploy.engines import EngineOptions, render_argo
from mlfactor.deploy.rules import RuleContext, check_manifests
from mlfactor.errors import ValidationError
from mlfactor.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]
DEMO = PROJECT / "pipelines" / "train.yaml"
FIXTURES = PROJECT / "tests" / "fixtures" / "notebooks"


def round_trip(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` read into Hera's model of its kind and written back: unknown or mistyped fields change."""
    model = {"Workflow": Workflow, "CronWorkflow": CronWorkflow}[obj["kind"]]
    return model.model_validate(obj).model_dump(by_alias=True, exclude_none=True, mode="json")


def diamond(folder: Path) -> Path:
    """A pipeline where `a` and `b` are independent and `join_ab` waits for both (and takes a's output)."""
    steps = [
        {"name": "a", "notebook": str(FIXTURES / "records-output.ipynb"), "depends_on": [], "timeout": "5m"},
        {"name": "b", "notebook": str(FIXTURES / "records-output.ipynb"), "depends_on": [], "retries": 1},
        {
            "name": "join_ab",
            "notebook": str(FIXTURES / "takes-input.ipynb"),
            "depends_on": ["b"],
            "parameters": {"number": "${steps.a.outputs.doubled}"},
        },
    ]
    path = folder / "diamond.yaml"
    path.write_text(yaml.safe_dump({"name": "diamond", "steps": steps}))
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of a fresh store, with a secret in the environment."""
    return make_settings(tmp_path / "store", MLFLOW_TRACKING_TOKEN="tok-argo-7c1d9e")


def test_demo_pipeline_renders_workflows_that_argos_schema_reads_back_unchanged(
    settings: Settings, tmp_path: Path
) -> None:
    """The demo's Workflow and CronWorkflow survive a strict round trip through Hera's Argo models."""
    out = tmp_path / "argo"
    render_argo(settings, make_release(settings), DEMO, out, options=EngineOptions(schedule="0 3 * * *"))
    files = load_folder(out)
    assert sorted(files) == ["configmap.yaml", "cronworkflow.yaml", "kustomization.yaml", "workflow.yaml"]
    for name in ("workflow.yaml", "cronworkflow.yaml"):
        assert round_trip(files[name]) == files[name], name
    assert files["kustomization.yaml"]["resources"] == ["configmap.yaml", "cronworkflow.yaml"]
    cron = files["cronworkflow.yaml"]["spec"]
    assert cron["schedules"] == ["0 3 * * *"] and cron["concurrencyPolicy"] == "Forbid"
    assert cron["workflowSpec"] == files["workflow.yaml"]["spec"]
    assert "tok-argo-7c1d9e" not in "".join(p.read_text() for p in out.iterdir())


def test_the_round_trip_catches_a_misspelt_or_mistyped_field(settings: Settings, tmp_path: Path) -> None:
    """The check above can fail: a misspelt key is dropped and a mistyped value changes on the way back."""
    render_argo(settings, make_release(settings), DEMO, tmp_path / "argo")
    workflow = load_folder(tmp_path / "argo")["workflow.yaml"]
    misspelt = yaml.safe_load(yaml.safe_dump(workflow))
    misspelt["spec"]["templates"][1]["retryStrtegy"] = {"limit": 1}
    assert round_trip(misspelt) != misspelt
    mistyped = yaml.safe_load(yaml.safe_dump(workflow))
    mistyped["spec"]["templates"][0]["dag"]["failFast"] = "no"  # pydantic reads it as False
    assert round_trip(mistyped) != mistyped
    mistyped["spec"]["templates"][0]["dag"]["tasks"] = "open-run"
    with pytest.raises(ValueError, match="tasks"):
        round_trip(mistyped)


def test_the_dag_mirrors_the_pipeline_graph_with_one_pod_per_step(settings: Settings, tmp_path: Path) -> None:
    """Steps wait for what the pipeline says (depends_on and output references); finish waits for all."""
    settings = make_settings(tmp_path / "store", MLFACTOR_PROJECT_DIR=str(tmp_path))
    render_argo(settings, make_release(settings), diamond(tmp_path), tmp_path / "argo")
    spec = load_folder(tmp_path / "argo")["workflow.yaml"]["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    tasks = {t["name"]: t for t in templates["pipeline"]["dag"]["tasks"]}
    assert list(tasks) == ["open-run", "a", "b", "join-ab", "finish-run"]
    assert tasks["a"]["depends"] == "open-run" and tasks["b"]["depends"] == "open-run"
    assert tasks["join-ab"]["depends"] == "open-run && a && b"
    assert set(re.findall(r"\b([a-z-]+)\.Omitted", tasks["finish-run"]["depends"])) == {"a", "b", "join-ab"}
    assert templates["pipeline"]["dag"]["failFast"] is False
    args = templates["step-join-ab"]["container"]["args"]
    assert args[args.index("--step") + 1] == "join_ab"
    assert args[args.index("--pipeline-run-id") + 1] == "{{inputs.parameters.pipeline-run-id}}"
    assert tasks["join-ab"]["arguments"]["parameters"] == [
        {"name": "pipeline-run-id", "value": "{{tasks.open-run.outputs.parameters.pipeline-run-id}}"}
    ]
    assert templates["open-run"]["outputs"]["parameters"][0]["valueFrom"]["path"] == "/tmp/pipeline-run-id"
    assert templates["step-a"]["activeDeadlineSeconds"] == 300 + 600  # its 5m timeout plus start-up
    assert "activeDeadlineSeconds" not in templates["step-b"]


def test_pods_are_retried_only_on_exit_codes_a_retry_can_fix(settings: Settings, tmp_path: Path) -> None:
    """Every container template retries on errors and codes other than 1, 2, 3, 65, 66 and 78."""
    options = EngineOptions(retries=4)
    render_argo(settings, make_release(settings), DEMO, tmp_path / "argo", options=options)
    spec = load_folder(tmp_path / "argo")["workflow.yaml"]["spec"]
    containers = [t for t in spec["templates"] if "container" in t]
    assert [t["name"] for t in containers] == ["open-run", "step-train", "step-evaluate", "finish-run"]
    for template in containers:
        strategy = template["retryStrategy"]
        assert strategy["limit"] == 4 and strategy["retryPolicy"] == "Always"
        codes = re.search(r"not in \[([0-9, ]+)\]", strategy["expression"])
        assert codes is not None
        assert {int(c) for c in codes.group(1).split(",")} == {1, 2, 3, 65, 66, 78}


def test_a_sweep_fans_out_one_pipeline_run_per_grid_point(settings: Settings, tmp_path: Path) -> None:
    """--sweep gives a sequence of grid points, each a pipeline run opened with its --sweep-index."""
    options = EngineOptions(
        sweeps=("train.C=0.1,1,10", "train.max_iter=100,200"), sweep_id="s1", max_parallel=3
    )
    render_argo(settings, make_release(settings), DEMO, tmp_path / "argo", options=options)
    workflow = load_folder(tmp_path / "argo")["workflow.yaml"]
    assert round_trip(workflow) == workflow
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    assert workflow["spec"]["entrypoint"] == "sweep"
    assert templates["sweep"]["parallelism"] == 3
    (point,) = templates["sweep"]["dag"]["tasks"]
    assert point["withSequence"] == {"count": "6"} and point["template"] == "pipeline"
    args = templates["open-run"]["container"]["args"]
    assert args[args.index("--sweep-index") + 1] == "{{inputs.parameters.sweep-index}}"
    assert args[args.index("--sweep-id") + 1] == "s1"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--sweep"] == list(options.sweeps)


def test_rendering_twice_gives_the_same_bytes(settings: Settings, tmp_path: Path) -> None:
    """The same release, pipeline and options give byte-identical files."""
    release = make_release(settings)
    for out in ("one", "two"):
        render_argo(settings, release, DEMO, tmp_path / out, options=EngineOptions(schedule="0 3 * * *"))
    first = {p.name: p.read_bytes() for p in (tmp_path / "one").iterdir()}
    assert first == {p.name: p.read_bytes() for p in (tmp_path / "two").iterdir()}


def test_mlfactors_rules_read_argo_templates(settings: Settings, tmp_path: Path) -> None:
    """The rules see each container template as a pod: service links left on are refused."""
    render_argo(settings, make_release(settings), DEMO, tmp_path / "argo")
    workflow = load_folder(tmp_path / "argo")["workflow.yaml"]
    context = RuleContext(image="mlfactor:v3-0123456789ab")
    assert check_manifests([workflow], context) == []
    workflow["spec"]["podSpecPatch"] = "{}"
    problems = check_manifests([workflow], context)
    assert len(problems) == 4 and all(
        p.startswith("service-links: Workflow/mlfactor-train-") for p in problems
    )


def test_bad_options_are_refused_before_anything_is_written(settings: Settings, tmp_path: Path) -> None:
    """A schedule that is not 5 cron fields and a negative retry count are both named; nothing is written."""
    with pytest.raises(ValidationError) as caught:
        render_argo(
            settings,
            make_release(settings),
            DEMO,
            tmp_path / "argo",
            options=EngineOptions(schedule="nightly", retries=-1),
        )
    assert len(caught.value.problems) == 2
    assert "'nightly': expected 5 cron fields" in str(caught.value)
    assert not (tmp_path / "argo").exists()


def test_the_pipeline_files_own_schedule_makes_the_cron_workflow(tmp_path: Path) -> None:
    """`schedule:` in the pipeline file gives a CronWorkflow without --schedule; a bad one is refused."""
    settings = make_settings(tmp_path / "store", MLFACTOR_PROJECT_DIR=str(tmp_path))
    path = diamond(tmp_path)
    path.write_text(path.read_text() + "schedule: 30 2 * * 1-5\n")
    render_argo(settings, make_release(settings), path, tmp_path / "argo")
    cron = load_folder(tmp_path / "argo")["cronworkflow.yaml"]
    assert cron["spec"]["schedules"] == ["30 2 * * 1-5"]
    assert round_trip(cron) == cron
    path.write_text(path.read_text().replace("30 2 * * 1-5", "nightly"))
    with pytest.raises(ValidationError, match=r"schedule: got 'nightly'; expected 5 cron fields"):
        render_argo(settings, make_release(settings), path, tmp_path / "again")
