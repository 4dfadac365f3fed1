"""Run one pipeline step: its MLflow run, its kernel, its notebook, its outcome.

For each attempt the runner creates a nested MLflow run, starts the notebook's
kernel with the step's environment (``MLFACTOR_RUN_ID`` so the notebook logs
into that run, ``MLFACTOR_OUTPUTS_FILE`` for :func:`mlfactor.notebook.record_output`,
and the secrets of the environment, never as parameters), executes it with
papermill, then keeps the executed notebook (scrubbed, HTML too) as artifacts
and ends the run FINISHED, FAILED or KILLED. Failures become
:class:`~mlfactor.errors.StepFailedError` (exit 1), ``StepTimeoutError`` (3),
``KernelDiedError`` (4) or ``InterruptedRunError`` (130/143).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Param, Run, RunTag
from mlflow.tracking import MlflowClient

from mlfactor import tags
from mlfactor.errors import (
    InterruptedRunError,
    MlfactorError,
    StepFailedError,
)
from mlfactor.kernel_setup import INLINE_BACKEND
from mlfactor.log import bind, event, get_logger
from mlfactor.masking import mask_data, mask_key, mask_text, remember_secrets
from mlfactor.notebook import SECRET_NAMES_FILE
from mlfactor.pipeline import lineage
from mlfactor.pipeline.artifacts import (
    NOTEBOOK_ARTIFACT_DIR,
    keep_notebook,
    log_notebook,
    render_html,
    write_atomic,
)
from mlfactor.pipeline.execute import CellTracker, execute, mark_stop
from mlfactor.pipeline.kernel import STOP_GRACE_S, KernelHandle, kernel_manager_class, read_kernel_log
from mlfactor.pipeline.progress import Progress
from mlfactor.pipeline.spec import StepSpec
from mlfactor.pipeline.versions import tag_registered_versions, version_lineage
from mlfactor.settings import Settings
from mlfactor.tags import RunStatus

logger = get_logger(__name__)
OUTCOME_ARTIFACT = "lineage/step.json"
"""In each step run: outputs (typed JSON, masked), status and exit code, read by steps run elsewhere."""


@dataclass
class StepContext:
    """Everything one step needs from its pipeline run."""

    step: StepSpec
    parameters: Mapping[str, Any]
    kernel_name: str
    settings: Settings
    client: MlflowClient
    experiment_id: str
    parent_run_id: str
    output_dir: Path
    secrets: list[str]
    packages_file: Path
    packages_tags: Mapping[str, str]
    progress: Progress
    experiment_name: str = ""
    on_kernel: Callable[[KernelHandle | None], None] = lambda handle: None
    stopping: threading.Event = field(default_factory=threading.Event)
    signal_number: Callable[[], int] = lambda: 15
    # Renders, logs the notebook and ends the run; the runner does it off the critical path.
    publish: Callable[[Callable[[], None]], None] = lambda job: job()
    # Attempts made before this process (an engine that retried the step's pod): numbering goes on.
    earlier_attempts: int = 0


@dataclass
class StepResult:
    """How a step ended."""

    name: str
    status: str
    run_id: str | None = None
    duration_s: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    error: MlfactorError | None = None
    notebook: Path | None = None
    attempts: int = 0

    def summary(self) -> dict[str, Any]:
        """Return the step's part of the pipeline's final JSON line."""
        data: dict[str, Any] = {
            "status": self.status,
            "run_id": self.run_id,
            "duration_s": round(self.duration_s, 3),
            "attempts": self.attempts,
            "outputs": self.outputs,
        }
        if self.notebook is not None:
            data["notebook"] = str(self.notebook)
        if self.error is not None:
            data["error"] = str(self.error)
            data["exit_code"] = int(self.error.exit_code)
        return data


def run_step(ctx: StepContext) -> StepResult:
    """Run ``ctx.step`` with its retries; return how it ended (never raises for notebook failures)."""
    started = time.monotonic()
    result = StepResult(ctx.step.name, RunStatus.FAILED)
    with bind(step=ctx.step.name):
        first = ctx.earlier_attempts + 1
        for attempt in range(first, first + ctx.step.retries + 1):
            result = _attempt(ctx, attempt)
            retryable = isinstance(result.error, StepFailedError) and not ctx.stopping.is_set()
            if result.error is None or not retryable or attempt >= first + ctx.step.retries:
                break
            event(
                logger,
                "step_retry",
                level=30,
                attempt=attempt,
                retries=ctx.step.retries,
                error=type(result.error).__name__,
            )
    result.duration_s = time.monotonic() - started
    return result


def _attempt(ctx: StepContext, attempt: int) -> StepResult:

    step = ctx.step
    run_tags = {
        tags.PARENT_RUN_TAG: ctx.parent_run_id,
        tags.RUN_NAME_TAG: step.name,
        tags.PIPELINE_RUN_TAG: ctx.parent_run_id,
        **lineage.step_tags(step.name, step.notebook, ctx.settings.project_dir, attempt),
        **ctx.packages_tags,
    }
    run = ctx.client.create_run(ctx.experiment_id, tags=run_tags, run_name=step.name)
    run_id = run.info.run_id
    ctx.client.log_batch(
        run_id,
        params=[Param(mask_key(k), mask_text(lineage.param_value(v))) for k, v in ctx.parameters.items()],
    )
    work = Path(tempfile.mkdtemp(prefix=f"mlfactor-{step.name}-"))
    partial = work / f"{step.name}.ipynb"
    outputs_file = work / "outputs.json"
    env = kernel_environment(ctx, run_id, outputs_file)
    handle = KernelHandle(step.name, marker=run_id)
    ctx.on_kernel(handle)
    tracker = CellTracker(step.notebook, injected=bool(ctx.parameters))
    cells = tracker.cells
    ctx.progress.step_started(step.name, cells)
    event(
        logger,
        "step_started",
        run_id=run_id,
        notebook=step.notebook_ref,
        attempt=attempt,
        parameters=dict(ctx.parameters),
    )
    t0 = time.monotonic()
    status = RunStatus.FINISHED
    try:
        error = execute(ctx, partial, kernel_manager_class(env, handle, work), tracker, handle)
    finally:
        ctx.on_kernel(None)
        leftovers = handle.end_leftovers(STOP_GRACE_S)
    if leftovers:
        event(logger, "step_processes_ended", level=30, run_id=run_id, pids=leftovers)
    learn_secrets(outputs_file.with_name(SECRET_NAMES_FILE), ctx.settings.environ, ctx.secrets)
    if error is not None:
        status = RunStatus.KILLED if isinstance(error, InterruptedRunError) else RunStatus.FAILED
        error.message = mask_text(error.message)
    duration = time.monotonic() - t0
    outputs = _read_outputs(outputs_file)
    kernel_log = _keep_kernel_log(ctx, work)
    notebook = _finish(ctx, run, partial, status, error, outputs, tracker, kernel_log)
    ctx.progress.step_finished(step.name, status)
    fields: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "duration_s": round(duration, 3),
        "attempt": attempt,
        "outputs": mask_data(outputs),
    }
    if kernel_log is not None:
        fields["kernel_log"] = str(kernel_log)
    if error is not None:
        fields.update(error=type(error).__name__, message=str(error), exit_code=int(error.exit_code))
    event(logger, "step_finished", level=20 if error is None else 40, **fields)
    _cleanup(work)
    return StepResult(step.name, status, run_id, duration, outputs, error, notebook, attempt)


def _finish(  # noqa: PLR0917 - internal
    ctx: StepContext,
    run: Run,
    partial: Path,
    status: RunStatus,
    error: MlfactorError | None,
    outputs: Mapping[str, Any],
    tracker: CellTracker,
    kernel_log: Path | None,
) -> Path | None:
    """Keep and log the notebook and the outcome, tag registered versions, end the run; never raises."""
    run_id = run.info.run_id
    final = ctx.output_dir / f"{ctx.step.name}.ipynb"
    notebook: Path | None = None
    try:
        if error is not None and type(error) is not StepFailedError:
            mark_stop(partial, error, tracker.current)
        notebook = keep_notebook(partial, final, ctx.secrets)
        outcome = [RunTag(tags.STATUS_TAG, status)]
        outcome += [
            RunTag(mask_key(f"{tags.OUTPUT_TAG_PREFIX}{k}"), mask_text(str(v))[:5000])
            for k, v in outputs.items()
        ]
        if error is not None:
            outcome.append(RunTag(tags.ERROR_TAG, mask_text(str(error))[:5000]))
        ctx.client.log_batch(run_id, tags=outcome)
    except Exception as exc:  # noqa: BLE001 - the outcome below must still be recorded
        event(logger, "step_artifacts_failed", level=40, run_id=run_id, error=str(exc)[:300])

    def publish() -> None:
        try:
            if notebook is not None:
                log_notebook(ctx.client, run_id, notebook, render_html(notebook, ctx.secrets))
            if kernel_log is not None:
                ctx.client.log_artifact(run_id, str(kernel_log), NOTEBOOK_ARTIFACT_DIR)
            ctx.client.log_artifact(run_id, str(ctx.packages_file), "lineage")
            ctx.client.log_dict(run_id, step_outcome(status, outputs, error), OUTCOME_ARTIFACT)
            _tag_versions(ctx, run)
        except Exception as exc:  # noqa: BLE001 - the run must still be ended
            event(logger, "step_artifacts_failed", level=40, run_id=run_id, error=str(exc)[:300])
        ctx.client.set_terminated(run_id, status)

    ctx.publish(publish)
    return notebook


def step_outcome(status: str, outputs: Mapping[str, Any], error: MlfactorError | None) -> dict[str, Any]:
    """The step's outcome as ``lineage/step.json`` records it (see :data:`OUTCOME_ARTIFACT`)."""
    return {
        "status": str(status),
        "exit_code": 0 if error is None else int(error.exit_code),
        "error": None if error is None else mask_text(str(error))[:5000],
        "outputs": mask_data(dict(outputs)),
    }


def _tag_versions(ctx: StepContext, run: Run) -> None:
    """Give every version the step registered (by any API, from any of its runs) the step's lineage."""
    artifact = f"{NOTEBOOK_ARTIFACT_DIR}/{ctx.step.name}.ipynb"
    lineage_tags = version_lineage(run.data.tags, run.info.run_id, ctx.step.name, artifact)
    # A notebook calling mlflow.set_experiment() opens its nested runs in that experiment: search all.
    experiments = [e.experiment_id for e in ctx.client.search_experiments()]
    versions = tag_registered_versions(
        ctx.client, run.info.run_id, experiments, run.info.start_time, lineage_tags
    )
    if versions:
        event(logger, "model_versions_tagged", run_id=run.info.run_id, model_versions=versions)


def kernel_environment(ctx: StepContext, run_id: str, outputs_file: Path) -> dict[str, str]:
    """The kernel's environment: ours, plus the step's run for mlfactor *and* for plain MLflow.

    ``MLFLOW_RUN_ID`` makes ``mlflow.start_run()`` (and autologging) attach to
    the step's run, so runs the notebook opens with ``nested=True`` become its
    children; figures use the inline backend; MLflow's artifact progress bars
    (tqdm, which warns without ipywidgets) stay off; log lines in the notebook
    are written for a person (console format).
    """
    return ctx.settings.child_environment(
        extra={
            "MLFACTOR_RUN_ID": run_id,
            "MLFACTOR_OUTPUTS_FILE": str(outputs_file),
            "MLFACTOR_EXPERIMENT": ctx.experiment_name or ctx.client.get_experiment(ctx.experiment_id).name,
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_EXPERIMENT_ID": ctx.experiment_id,
            "MLFLOW_TRACKING_URI": ctx.settings.tracking_uri,
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "MLFACTOR_LOG_FORMAT": "console",  # the notebook is read by a person; the runner logs JSON
            "MPLBACKEND": INLINE_BACKEND,
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
    )


def learn_secrets(names_file: Path, environ: Mapping[str, str], known: list[str]) -> None:
    """Remember (and add to ``known``) the values of the variables the notebook read through ``secret()``."""
    try:
        names = names_file.read_text(encoding="utf-8").split()
    except OSError:
        return
    values = [environ[name] for name in names if environ.get(name)]
    remember_secrets(values)
    known.extend(v for v in values if v not in known)


def _keep_kernel_log(ctx: StepContext, work: Path) -> Path | None:
    """Keep what the kernel wrote outside the notebook (masked) beside the notebook; None when nothing."""
    text = read_kernel_log(work)
    if not text:
        return None
    target = ctx.output_dir / f"{ctx.step.name}.kernel.log"
    write_atomic(target, mask_text(text, ctx.secrets))
    return target


def _read_outputs(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _cleanup(work: Path) -> None:
    for child in work.iterdir():
        child.unlink(missing_ok=True)
    work.rmdir()
