"""The parent MLflow run of a pipeline run: opened with its lineage, found by id, ended with its outcome.

``mlfactor run`` opens the parent, runs every step under it and records the
outcome in one process. Run step by step (an Argo or Airflow task per step),
one process opens it (:func:`open_parent`), each step's process attaches to it
(:func:`attach_parent`) and a last one records the outcome
(:func:`record_outcome`): the same functions, so the run tree is the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from mlfactor import tags
from mlfactor.errors import NotFoundError, ValidationError
from mlfactor.log import event, get_logger
from mlfactor.masking import mask_data, mask_key, mask_text
from mlfactor.pipeline import lineage
from mlfactor.pipeline.artifacts import write_atomic
from mlfactor.pipeline.plan import Plan
from mlfactor.settings import Settings
from mlfactor.tags import RunStatus
from mlfactor.tracking import ensure_experiment

if TYPE_CHECKING:
    from mlfactor.pipeline.runner import PipelineResult

logger = get_logger(__name__)
LINEAGE_DIR = "lineage"
PARAMETERS_FILE = "parameters.json"
"""In the parent run's ``lineage/``: each step's parameters as planned, typed (references as written)."""


@dataclass(frozen=True)
class ParentRun:
    """A pipeline run's parent MLflow run, and where this process keeps its files."""

    run_id: str
    experiment_id: str
    experiment_name: str
    out: Path
    packages_file: Path
    packages_tags: Mapping[str, str] = field(default_factory=dict)
    start_time_ms: int = 0
    status: str = RunStatus.RUNNING


def output_folder(settings: Settings, plan: Plan, run_id: str, output_dir: Path | None) -> Path:
    """``OUTPUT_DIR/RUN_ID`` (default ``output/pipelines/NAME/RUN_ID``), created."""
    out = (output_dir or settings.project_dir / "output" / "pipelines" / plan.spec.name) / run_id
    out.mkdir(parents=True, exist_ok=True)
    return out


def open_parent(
    plan: Plan,
    settings: Settings,
    client: MlflowClient,
    *,
    experiment: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
    output_dir: Path | None = None,
) -> ParentRun:
    """Create the parent run with its tags, parameters and ``lineage/`` artifacts (RUNNING)."""
    spec = plan.spec
    experiment_name = experiment or spec.experiment
    experiment_id = ensure_experiment(client, experiment_name, settings)
    run_tags = {
        **lineage.pipeline_tags(spec.name, spec.path, spec.sha256, spec.project_dir),
        **(extra_tags or {}),
    }
    packages = lineage.installed_packages()
    package_tags = lineage.package_tags(packages)
    run_tags.update(package_tags)
    parent = client.create_run(experiment_id, tags=run_tags, run_name=spec.name)
    run_id = parent.info.run_id
    out = output_folder(settings, plan, run_id, output_dir)
    recorded = out / LINEAGE_DIR
    packages_file = recorded / "packages.txt"
    write_atomic(packages_file, lineage.packages_text(packages))
    write_atomic(recorded / PARAMETERS_FILE, json.dumps(mask_data(plan.parameters), indent=1))
    write_atomic(recorded / spec.path.name, spec.path.read_text(encoding="utf-8"))
    params = lineage.flatten_parameters(plan.parameters)
    client.log_batch(run_id, params=[Param(mask_key(k), mask_text(v)) for k, v in params.items()])
    client.log_artifacts(run_id, str(recorded), LINEAGE_DIR)
    return ParentRun(
        run_id,
        experiment_id,
        experiment_name,
        out,
        packages_file,
        package_tags,
        int(parent.info.start_time or 0),
    )


def attach_parent(
    plan: Plan,
    settings: Settings,
    client: MlflowClient,
    run_id: str,
    *,
    output_dir: Path | None = None,
    prepare: bool = True,
    running: bool = True,
) -> ParentRun:
    """Find the open parent run ``run_id`` of this pipeline file; NotFoundError or ValidationError if not.

    The parent must be RUNNING and tagged with this pipeline's name and file
    hash: a step never joins a run of another pipeline, or of another version
    of this file. ``prepare`` creates the local output folder and package list
    a step needs (finishing the run writes nothing locally); ``running=False``
    also finds a run that has ended.
    """
    from mlflow.exceptions import MlflowException

    spec = plan.spec
    try:
        parent = client.get_run(run_id)
    except MlflowException as exc:
        raise NotFoundError(
            f"pipeline run {run_id!r} does not exist in the tracking store; open one with "
            f"`mlfactor run {spec.relative_path} --open-run` and pass the id it prints."
        ) from exc
    found = parent.data.tags
    problems = []
    if found.get(tags.PIPELINE_TAG) != spec.name or found.get(tags.PIPELINE_HASH_TAG) != spec.sha256:
        problems.append(
            f"run {run_id} is a run of pipeline {found.get(tags.PIPELINE_TAG)!r} with file sha256 "
            f"{found.get(tags.PIPELINE_HASH_TAG)!r}; expected {spec.name!r} with sha256 {spec.sha256} "
            f"({spec.relative_path}). Run the steps with the pipeline file the run was opened with."
        )
    if running and parent.info.status != RunStatus.RUNNING:
        problems.append(
            f"pipeline run {run_id} is {parent.info.status}, expected RUNNING; open a new one with "
            "--open-run."
        )
    if problems:
        raise ValidationError("--pipeline-run-id", problems)
    packages = lineage.installed_packages()
    out = (output_dir or settings.project_dir / "output" / "pipelines" / spec.name) / run_id
    packages_file = out / LINEAGE_DIR / "packages.txt"
    if prepare:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(packages_file, lineage.packages_text(packages))
    experiment = client.get_experiment(parent.info.experiment_id)
    return ParentRun(
        run_id,
        str(parent.info.experiment_id),
        experiment.name,
        out,
        packages_file,
        lineage.package_tags(packages),
        int(parent.info.start_time or 0),
        str(parent.info.status),
    )


def recorded_parameters(client: MlflowClient, run_id: str) -> dict[str, dict[str, Any]]:
    """Each step's parameters as the parent run recorded them when it was opened (``-p`` included)."""
    text = client.download_artifacts(run_id, f"{LINEAGE_DIR}/{PARAMETERS_FILE}")
    data = json.loads(Path(text).read_text(encoding="utf-8"))
    return {str(step): dict(values) for step, values in data.items()}


def record_outcome(client: MlflowClient, plan: Plan, result: PipelineResult) -> None:
    """Copy the ranking metric and outputs to the parent run, log the summary, end the run."""
    metric = plan.spec.metric
    try:
        if metric is not None and result.error is None:
            step = result.steps.get(metric.step)
            if step is not None and step.run_id is not None:
                value = client.get_run(step.run_id).data.metrics.get(metric.name)
                recorded = step.outputs.get(metric.name)
                if value is None and isinstance(recorded, int | float) and not isinstance(recorded, bool):
                    value = float(recorded)  # a numeric output of the step counts as its metric
                if value is not None:
                    key = mask_key(f"{metric.step}.{metric.name}")
                    client.log_batch(result.run_id, metrics=[Metric(key, value, int(time.time() * 1000), 0)])
                    result.metric = {"name": key, "value": value, "goal": metric.goal}
        outcome = [RunTag(tags.STATUS_TAG, result.status)]
        outcome += [
            RunTag(mask_key(f"{tags.OUTPUT_TAG_PREFIX}{s}.{k}"), mask_text(str(v))[:5000])
            for s, values in result.outputs.items()
            for k, v in values.items()
        ]
        if result.error is not None:
            outcome.append(RunTag(tags.ERROR_TAG, mask_text(str(result.error))[:5000]))
        client.log_batch(result.run_id, tags=outcome)
        client.log_dict(result.run_id, result.summary(), "summary.json")
    except Exception as exc:  # noqa: BLE001 - the run must still be ended
        event(logger, "pipeline_record_failed", level=40, error=str(exc)[:300])
    client.set_terminated(result.run_id, result.status)
