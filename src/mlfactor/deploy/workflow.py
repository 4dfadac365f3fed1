"""A pipeline as workflow-engine tasks: open the run, one task per step, finish the run.

Argo Workflows and Airflow get the same tasks (:mod:`mlfactor.deploy.argo`,
:mod:`mlfactor.deploy.airflow`): each runs ``mlfactor run`` from the release
image with the arguments here, so a task is the process
``mlfactor run --open-run`` / ``--step NAME`` / ``--finish-run`` that also
runs on a laptop. Only the way the pipeline run's id reaches a task differs
between engines (``run_id``: an Argo parameter, an Airflow XCom template).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlfactor.deploy.manifests import pipeline_args
from mlfactor.deploy.sweep import escape
from mlfactor.errors import ExitCode, ValidationError, non_retryable_exit_codes
from mlfactor.pipeline.plan import Plan

OPEN_TASK = "open-run"
FINISH_TASK = "finish-run"
RUN_ID_FILE = "$(TMPDIR)/pipeline-run-id"
START_MARGIN_S = 600  # image pull, kernel start, publishing the notebook: on top of the step's own timeout


@dataclass(frozen=True)
class WorkflowTask:
    """One task of a pipeline's workflow: the ``mlfactor`` arguments it runs and what it waits for."""

    name: str
    args: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    step: str | None = None
    deadline_s: int | None = None


@dataclass(frozen=True)
class PipelineWorkflow:
    """The tasks of one pipeline run: open, the steps in file order, finish."""

    pipeline: str
    pipeline_ref: str
    open: WorkflowTask
    steps: tuple[WorkflowTask, ...]
    finish: WorkflowTask
    schedule: str | None = None  # the pipeline file's own `schedule:`

    @property
    def tasks(self) -> tuple[WorkflowTask, ...]:
        """Every task, open first and finish last."""
        return (self.open, *self.steps, self.finish)


def retry_exit_codes() -> tuple[int, ...]:
    """The exit codes an engine must never retry (65 and 78 among them), from the one table."""
    codes = non_retryable_exit_codes()
    if ExitCode.INVALID_INPUT not in codes or ExitCode.CONFIG not in codes:  # pragma: no cover - table guard
        raise AssertionError("the exit code table marks 65 or 78 as retryable")
    return codes


def step_deadline(timeout: float | None, retries: int) -> int | None:
    """Seconds a step's pod may run: every attempt's timeout plus a start-up margin; None without timeout."""
    if timeout is None:
        return None
    return int(timeout * (retries + 1)) + START_MARGIN_S


def pipeline_workflow(
    plan: Plan,
    pipeline_ref: str,
    *,
    run_id: str,
    open_extra: Sequence[str] = (),
    run_id_file: str = RUN_ID_FILE,
) -> PipelineWorkflow:
    """The tasks of ``plan``'s pipeline; ``run_id`` is how a task names the run the open task created.

    ``open_extra`` are more ``mlfactor run`` arguments of the open task (``-p``,
    a sweep point); values are escaped for Kubernetes (``$`` as ``$$``).
    """
    names = plan.spec.step_names
    reserved = sorted({OPEN_TASK, FINISH_TASK} & set(names))
    if reserved:
        raise ValidationError(
            f"pipeline {plan.spec.relative_path}",
            [f"step name {name!r} is the name of a workflow task; rename the step" for name in reserved],
        )
    opening = WorkflowTask(
        OPEN_TASK,
        tuple(
            pipeline_args(
                pipeline_ref, ["--open-run", "--run-id-file", run_id_file, *map(escape, open_extra)]
            )
        ),
    )
    steps = tuple(
        WorkflowTask(
            name,
            tuple(pipeline_args(pipeline_ref, ["--step", name, "--pipeline-run-id", run_id])),
            (OPEN_TASK, *sorted(plan.graph.needs[name])),
            step=name,
            deadline_s=step_deadline(plan.spec.step(name).timeout, plan.spec.step(name).retries),
        )
        for name in names
    )
    finish = WorkflowTask(
        FINISH_TASK,
        tuple(pipeline_args(pipeline_ref, ["--finish-run", "--pipeline-run-id", run_id])),
        (OPEN_TASK, *names),
    )
    return PipelineWorkflow(plan.spec.name, pipeline_ref, opening, steps, finish, plan.spec.schedule)
