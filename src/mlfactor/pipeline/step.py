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

from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

from mlfactor.errors import (
    InterruptedRunError,
    KernelDiedError,
    MlfactorError,
    StepFailedError,
    StepTimeoutError,
)
from mlfactor.log import bind, event, get_logger
from mlfactor.pipeline import lineage
from mlfactor.pipeline.artifacts import (
    keep_notebook,
    log_notebook,
    markdown_cell,
    read_notebook,
    render_html,
    write_notebook,
)
from mlfactor.pipeline.kernel import KernelHandle, kernel_manager_class
from mlfactor.pipeline.parameters import find_parameters_cells
from mlfactor.pipeline.progress import Progress
from mlfactor.pipeline.spec import StepSpec
from mlfactor.settings import Settings

logger = get_logger(__name__)


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
    on_kernel: Callable[[KernelHandle | None], None] = lambda handle: None
    stopping: threading.Event = field(default_factory=threading.Event)
    signal_number: Callable[[], int] = lambda: 15
    # Renders, logs the notebook and ends the run; the runner does it off the critical path.
    publish: Callable[[Callable[[], None]], None] = lambda job: job()


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
    result = StepResult(ctx.step.name, "FAILED")
    with bind(step=ctx.step.name):
        for attempt in range(1, ctx.step.retries + 2):
            result = _attempt(ctx, attempt)
            retryable = isinstance(result.error, StepFailedError) and not ctx.stopping.is_set()
            if result.error is None or not retryable or attempt > ctx.step.retries:
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
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    step = ctx.step
    tags = {
        lineage.PARENT_TAG: ctx.parent_run_id,
        lineage.RUN_NAME_TAG: step.name,
        lineage.PIPELINE_RUN_TAG: ctx.parent_run_id,
        **lineage.step_tags(step.name, step.notebook, ctx.settings.project_dir, attempt),
        **ctx.packages_tags,
    }
    run = ctx.client.create_run(ctx.experiment_id, tags=tags, run_name=step.name)
    run_id = run.info.run_id
    ctx.client.log_batch(run_id, params=[Param(k, lineage.param_value(v)) for k, v in ctx.parameters.items()])
    ctx.client.log_artifact(run_id, str(ctx.packages_file), "lineage")
    work = Path(tempfile.mkdtemp(prefix=f"mlfactor-{step.name}-"))
    partial = work / f"{step.name}.ipynb"
    outputs_file = work / "outputs.json"
    env = ctx.settings.child_environment(
        extra={
            "MLFACTOR_RUN_ID": run_id,
            "MLFACTOR_OUTPUTS_FILE": str(outputs_file),
            "MLFACTOR_EXPERIMENT": ctx.client.get_experiment(ctx.experiment_id).name,
            "MPLBACKEND": "Agg",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
    )
    handle = KernelHandle(step.name)
    ctx.on_kernel(handle)
    tracker = _CellTracker(step.notebook, injected=bool(ctx.parameters))
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
    error: MlfactorError | None = None
    status = "FINISHED"
    try:
        if ctx.stopping.is_set():
            raise InterruptedRunError(
                f"step {step.name!r} was not started: the run was interrupted.",
                signal_number=ctx.signal_number(),
            )
        papermill.execute_notebook(
            str(step.notebook),
            str(partial),
            parameters=dict(ctx.parameters),
            kernel_name=ctx.kernel_name,
            progress_bar=False,
            log_output=False,
            cwd=str(step.notebook.parent),
            start_timeout=120,
            kernel_manager_class=kernel_manager_class(env, handle),
            on_cell_start=lambda cell, cell_index: tracker.started(step.name, cell_index, ctx.progress),
        )
    except PapermillExecutionError as exc:
        number = tracker.number(exc.cell_index)
        error = StepFailedError(
            f"step {step.name!r} failed in cell {number} of {step.notebook_ref}: {exc.ename}: "
            f"{_first_line(exc.evalue)}",
            step=step.name,
            cell=number,
        )
    except InterruptedRunError as exc:
        error = exc
    except (DeadKernelError, RuntimeError, TimeoutError) as exc:
        error = _stop_error(handle, step, tracker, exc, ctx, dead=isinstance(exc, DeadKernelError))
    except Exception as exc:  # noqa: BLE001 - anything else in papermill or nbclient fails the step
        error = StepFailedError(
            f"step {step.name!r} could not run {step.notebook_ref}: "
            f"{type(exc).__name__}: {_first_line(str(exc))}",
            step=step.name,
        )
    finally:
        ctx.on_kernel(None)
    if error is not None:
        status = "KILLED" if isinstance(error, InterruptedRunError) else "FAILED"
    duration = time.monotonic() - t0
    outputs = _read_outputs(outputs_file)
    notebook = _finish(ctx, run_id, partial, status, error, outputs, tracker)
    ctx.progress.step_finished(step.name, status)
    fields: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "duration_s": round(duration, 3),
        "attempt": attempt,
        "outputs": outputs,
    }
    if error is not None:
        fields.update(error=type(error).__name__, message=str(error), exit_code=int(error.exit_code))
    event(logger, "step_finished", level=20 if error is None else 40, **fields)
    _cleanup(work)
    return StepResult(step.name, status, run_id, duration, outputs, error, notebook, attempt)


def _finish(  # noqa: PLR0917 - internal
    ctx: StepContext,
    run_id: str,
    partial: Path,
    status: str,
    error: MlfactorError | None,
    outputs: Mapping[str, Any],
    tracker: _CellTracker,
) -> Path | None:
    """Keep the notebook, log it and the outcome, and end the step's run; never raises."""
    final = ctx.output_dir / f"{ctx.step.name}.ipynb"
    notebook: Path | None = None
    try:
        if error is not None and type(error) is not StepFailedError:
            _mark_stop(partial, error, tracker.current)
        notebook = keep_notebook(partial, final, ctx.secrets)
        tags = [RunTag(lineage.STATUS_TAG, status)]
        tags += [RunTag(f"{lineage.OUTPUT_TAG_PREFIX}{k}", str(v)[:5000]) for k, v in outputs.items()]
        if error is not None:
            tags.append(RunTag(lineage.ERROR_TAG, str(error)[:5000]))
        ctx.client.log_batch(run_id, tags=tags)
    except Exception as exc:  # noqa: BLE001 - the outcome below must still be recorded
        event(logger, "step_artifacts_failed", level=40, run_id=run_id, error=str(exc)[:300])

    def publish() -> None:
        try:
            if notebook is not None:
                log_notebook(ctx.client, run_id, notebook, render_html(notebook))
        except Exception as exc:  # noqa: BLE001 - the run must still be ended
            event(logger, "step_artifacts_failed", level=40, run_id=run_id, error=str(exc)[:300])
        ctx.client.set_terminated(run_id, status)

    ctx.publish(publish)
    return notebook


def _mark_stop(partial: Path, error: MlfactorError, index: int | None) -> None:
    """Insert a note before the cell that was running when the kernel was stopped or died."""
    if not partial.is_file() or index is None:
        return
    nb = read_notebook(partial)
    note = markdown_cell(
        f"**mlfactor: execution stopped here.** {error}", ["papermill-error-cell-tag", "mlfactor-stopped"]
    )
    nb.cells.insert(min(index, len(nb.cells)), note)
    write_notebook(partial, nb)


def _stop_error(
    handle: KernelHandle,
    step: StepSpec,
    tracker: _CellTracker,
    exc: BaseException,
    ctx: StepContext,
    *,
    dead: bool,
) -> MlfactorError:
    cell = tracker.number(tracker.current)
    where = f" in cell {cell}" if cell else ""
    reason = handle.stop_reason
    if reason == "timeout":
        return StepTimeoutError(
            f"step {step.name!r} timed out after {step.timeout:g} s{where} of {step.notebook_ref}; "
            "its kernel "
            "was stopped. Raise the step's timeout in the pipeline file if the work needs longer.",
            step=step.name,
            cell=cell,
        )
    if reason == "interrupted" or ctx.stopping.is_set():
        return InterruptedRunError(
            f"step {step.name!r} was interrupted{where}; its kernel was shut down.",
            signal_number=ctx.signal_number(),
        )
    if dead or "died" in str(exc).lower():
        return KernelDiedError(
            f"step {step.name!r}: the kernel died{where} of {step.notebook_ref} (os._exit, a crash or out of "
            "memory); the notebook up to that cell is kept.",
            step=step.name,
            cell=cell,
        )
    return StepFailedError(
        f"step {step.name!r} could not run {step.notebook_ref}: {type(exc).__name__}: "
        f"{_first_line(str(exc))}",
        step=step.name,
        cell=cell,
    )


class _CellTracker:
    """Which cell runs now, and its number in the original notebook (papermill inserts one cell)."""

    def __init__(self, notebook: Path, *, injected: bool) -> None:
        try:
            nb = read_notebook(notebook)
            self.cells = len(nb.cells) + (1 if injected else 0)
            tagged = find_parameters_cells(nb)
        except Exception:  # noqa: BLE001 - only used for progress and messages
            self.cells, tagged = 0, []
        self.injected_at = tagged[0] + 1 if injected and tagged else None
        self.current: int | None = None

    def started(self, step: str, index: int, progress: Progress) -> None:
        """Record that executed cell ``index`` (0-based) started."""
        self.current = index
        progress.cell_started(step, index + 1, self.cells)

    def number(self, index: int | None) -> int | None:
        """1-based number in the original notebook of executed cell ``index``."""
        if index is None:
            return None
        shift = 1 if self.injected_at is not None and index > self.injected_at else 0
        return index + 1 - shift


def _read_outputs(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _first_line(text: str) -> str:
    """Return the exception text on one line (multi-line messages joined), at most 500 characters."""
    return " ".join(str(text).split())[:500]


def _cleanup(work: Path) -> None:
    for child in work.iterdir():
        child.unlink(missing_ok=True)
    work.rmdir()
