"""A pipeline run step by step, one process per step: open the run, run each step, finish the run.

Workflow engines (Argo Workflows, Airflow) run each step in its own pod or
task, possibly on different machines. Three calls give them the run
``mlfactor run`` gives on one machine, with the same MLflow run tree:

* :func:`open_pipeline_run` creates the parent run with its lineage (the
  parameters as planned, ``-p`` included, are recorded there);
* :func:`run_pipeline_step` runs one step under that parent, with the
  step's retries and timeout, taking its parameters from the parent and the
  outputs of earlier steps from their runs in the tracking store (never from
  local files);
* :func:`finish_pipeline_run` reads every step's outcome back from the store,
  records the pipeline's outcome on the parent and ends it.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mlfactor import tags
from mlfactor.errors import (
    ExitCode,
    InterruptedRunError,
    MlfactorError,
    StepFailedError,
    ValidationError,
    non_retryable_exit_codes,
)
from mlfactor.log import bind, event, get_logger
from mlfactor.names import did_you_mean
from mlfactor.pipeline.graph import StepGraph
from mlfactor.pipeline.parent import attach_parent, open_parent, record_outcome, recorded_parameters
from mlfactor.pipeline.plan import Plan
from mlfactor.pipeline.progress import Progress
from mlfactor.pipeline.runner import NOT_STARTED, PipelineResult, run_steps
from mlfactor.pipeline.step import OUTCOME_ARTIFACT, StepResult
from mlfactor.settings import Settings
from mlfactor.tags import RunStatus
from mlfactor.tracking import connect

logger = get_logger(__name__)


@dataclass(frozen=True)
class OpenedRun:
    """A pipeline run opened for steps run one at a time."""

    pipeline: str
    run_id: str
    experiment_id: str
    steps: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        """Return the final JSON line of ``mlfactor run --open-run``."""
        return {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "status": str(RunStatus.RUNNING),
            "exit_code": 0,
            "steps": {name: {"status": NOT_STARTED} for name in self.steps},
        }


def write_run_id(path: Path, run_id: str) -> None:
    """Write ``run_id`` to ``path``; a JSON string when it ends in ``.json`` (an Airflow XCom file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run_id) if path.suffix == ".json" else run_id, encoding="utf-8")


def open_pipeline_run(
    plan: Plan,
    settings: Settings,
    *,
    output_dir: Path | None = None,
    tags: Mapping[str, str] | None = None,
    client: MlflowClient | None = None,
) -> OpenedRun:
    """Create the parent run of ``plan`` (RUNNING, with ``tags``) for :func:`run_pipeline_step` calls."""
    client = client or connect(settings)
    parent = open_parent(plan, settings, client, output_dir=output_dir, extra_tags=tags)
    spec = plan.spec
    event(
        logger,
        "pipeline_opened",
        pipeline=spec.name,
        run_id=parent.run_id,
        experiment=parent.experiment_name,
        steps=spec.step_names,
        file=spec.relative_path,
    )
    return OpenedRun(spec.name, parent.run_id, parent.experiment_id, tuple(spec.step_names))


def step_runs(client: MlflowClient, experiment_id: str, pipeline_run_id: str) -> dict[str, list[Run]]:
    """Every attempt's run of each step of the pipeline run, oldest first."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{tags.PARENT_RUN_TAG}` = '{pipeline_run_id}'",
        max_results=5000,
        order_by=["attribute.start_time ASC"],
    )
    runs: dict[str, list[Run]] = {}
    for run in found:
        step = run.data.tags.get(tags.STEP_TAG)
        if step:
            runs.setdefault(step, []).append(run)
    return runs


def _outcome(client: MlflowClient, run: Run) -> dict[str, Any]:
    try:
        path = client.download_artifacts(run.info.run_id, OUTCOME_ARTIFACT)
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a run that never published its outcome has none
        return {}
    return data if isinstance(data, dict) else {}


def _step_result(client: MlflowClient, name: str, runs: list[Run], *, gone: bool = True) -> StepResult:
    """The result of step ``name`` from its runs in the store (the last attempt decides).

    ``gone``: no process runs the step any more (the engine says so), so a run
    still RUNNING was left by a killed process and is ended KILLED.
    """
    if not runs:
        return StepResult(name, NOT_STARTED)
    run = runs[-1]
    info = run.info
    outcome = _outcome(client, run)
    status = str(info.status)
    error: MlfactorError | None = None
    if status == RunStatus.RUNNING and not gone:
        return StepResult(name, status, info.run_id, attempts=len(runs))
    if status == RunStatus.RUNNING:  # its process was killed before it could end the run
        status = RunStatus.KILLED
        client.set_terminated(info.run_id, status)
        error = InterruptedRunError(  # 130: a retry may well succeed
            f"step {name!r}: its process ended without ending run {info.run_id} (killed, or its node "
            "was lost); see the task's log in the workflow engine.",
            signal_number=signal.SIGKILL,
        )
    elif status != RunStatus.FINISHED:
        error = StepFailedError(str(outcome.get("error") or f"step {name!r} ended {status}"), step=name)
        error.exit_code = ExitCode(int(outcome.get("exit_code") or ExitCode.STEP_FAILED))
    ended = info.end_time or int(time.time() * 1000)
    return StepResult(
        name,
        status,
        info.run_id,
        max(0.0, (ended - (info.start_time or ended)) / 1000),
        dict(outcome.get("outputs") or {}),
        error,
        attempts=len(runs),
    )


def run_pipeline_step(
    plan: Plan,
    settings: Settings,
    step: str,
    pipeline_run_id: str,
    *,
    output_dir: Path | None = None,
    progress: Progress | None = None,
    client: MlflowClient | None = None,
) -> PipelineResult:
    """Run step ``step`` of the open pipeline run ``pipeline_run_id``; return the result of that step only.

    The step's parameters are the ones the parent recorded when it was opened;
    the steps it waits for must have FINISHED runs in the store, whose
    recorded outputs resolve its ``${steps...}`` references. A step that
    already finished in this pipeline run, or failed with an exit code a retry
    cannot fix (1, 3, 65, ...), is not run again: an engine retrying the task
    (Airflow retries every failure) gets the recorded result and exit code.
    """
    names = plan.spec.step_names
    if step not in names:
        raise ValidationError(
            "--step", [f"there is no step {step!r}.{did_you_mean(step, names)} Steps: {', '.join(names)}."]
        )
    client = client or connect(settings)
    parent = attach_parent(plan, settings, client, pipeline_run_id, output_dir=output_dir)
    runs = step_runs(client, parent.experiment_id, pipeline_run_id)
    done: dict[str, StepResult] = {}
    for need in sorted(plan.graph.needs[step]):
        result = _step_result(client, need, runs.get(need, []), gone=False)
        if result.status != RunStatus.FINISHED:
            raise StepFailedError(
                f"step {step!r} waits for step {need!r}, which has not finished in pipeline run "
                f"{pipeline_run_id} (its latest run: {result.status}). Run the steps in dependency "
                "order, as the rendered workflow does.",
                step=step,
            )
        done[need] = result
    only = StepGraph(order=(step,), needs={step: frozenset()})
    planned = replace(plan, graph=only, parameters=recorded_parameters(client, pipeline_run_id))
    with bind(pipeline=plan.spec.name, pipeline_run_id=pipeline_run_id):
        previous = _step_result(client, step, runs.get(step, []))
        final = previous.error is not None and int(previous.error.exit_code) in non_retryable_exit_codes()
        if previous.status == RunStatus.FINISHED or final:
            event(logger, "step_not_run_again", step=step, run_id=previous.run_id, status=previous.status)
            result_steps = {step: previous}
            status, error = str(previous.status), previous.error
        else:
            earlier = {step: len(runs.get(step, []))}
            ran = run_steps(
                planned, settings, client, parent, done, progress=progress, earlier_attempts=earlier
            )
            result_steps = {step: ran.steps[step]}
            status, error = ran.status, ran.error
    return PipelineResult(
        plan.spec.name,
        pipeline_run_id,
        parent.experiment_id,
        status,
        result_steps,
        parent.out,
        result_steps[step].duration_s,
        error,
    )


def finish_pipeline_run(
    plan: Plan, settings: Settings, pipeline_run_id: str, *, client: MlflowClient | None = None
) -> PipelineResult:
    """Record the outcome of the pipeline run from its steps' runs and end it, as ``mlfactor run`` does.

    A run that has already ended is left as it is; the result (and exit code)
    is read from its steps again, so an engine retrying this task gets the same
    answer.
    """
    client = client or connect(settings)
    parent = attach_parent(plan, settings, client, pipeline_run_id, prepare=False, running=False)
    runs = step_runs(client, parent.experiment_id, pipeline_run_id)
    steps = {name: _step_result(client, name, runs.get(name, [])) for name in plan.spec.step_names}
    failures = [r.error for r in steps.values() if r.error is not None]
    missing = [name for name, r in steps.items() if r.status == NOT_STARTED]
    error: MlfactorError | None = failures[0] if failures else None
    status = RunStatus.FINISHED
    if error is not None:
        signalled = int(error.exit_code) in {ExitCode.INTERRUPTED, ExitCode.TERMINATED}
        status = RunStatus.KILLED if signalled else RunStatus.FAILED
    if error is None and missing:
        error = InterruptedRunError(
            f"pipeline run {pipeline_run_id} was finished before steps {', '.join(missing)} ran "
            "(the workflow was stopped or skipped them).",
            signal_number=15,
        )
        status = RunStatus.KILLED
    duration = max(0.0, time.time() - parent.start_time_ms / 1000) if parent.start_time_ms else 0.0
    result = PipelineResult(
        plan.spec.name, pipeline_run_id, parent.experiment_id, status, steps, parent.out, duration, error
    )
    with bind(pipeline=plan.spec.name, pipeline_run_id=pipeline_run_id):
        if parent.status != RunStatus.RUNNING:  # finished before (an engine retrying this task)
            event(logger, "pipeline_already_finished", status=parent.status, exit_code=result.exit_code)
            return result
        record_outcome(client, plan, result)
        event(
            logger,
            "pipeline_finished",
            level=20 if error is None else 40,
            status=result.status,
            exit_code=result.exit_code,
            duration_s=round(duration, 3),
            steps={n: r.status for n, r in steps.items()},
        )
    return result
