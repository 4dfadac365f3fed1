"""Execute a step's notebook with papermill and name what went wrong, as the user sees the notebook.

papermill raises its own error for a failed cell and lets nbclient's through
for a dead kernel or a stopped one; :func:`execute` turns each into the
mlfactor error with its exit code, naming the step, the cell's number in the
notebook *file* (see :class:`CellTracker`) and the exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfactor.errors import (
    InterruptedRunError,
    KernelDiedError,
    MlfactorError,
    StepFailedError,
    StepTimeoutError,
)
from mlfactor.pipeline.artifacts import markdown_cell, read_notebook, write_notebook
from mlfactor.pipeline.kernel import KernelHandle
from mlfactor.pipeline.parameters import find_parameters_cells
from mlfactor.pipeline.progress import Progress
from mlfactor.pipeline.spec import StepSpec

if TYPE_CHECKING:
    from mlfactor.pipeline.step import StepContext


def execute(
    ctx: StepContext, partial: Path, kernel_manager: type[Any], tracker: CellTracker, handle: KernelHandle
) -> MlfactorError | None:
    """Run ``ctx.step``'s notebook into ``partial``; return the error that ended it, None on success."""
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    step = ctx.step
    error: MlfactorError | None = None
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
            kernel_manager_class=kernel_manager,
            on_cell_start=lambda cell, cell_index: tracker.started(step.name, cell_index, ctx.progress),
        )
    except PapermillExecutionError as exc:
        number = tracker.number(exc.cell_index)
        error = StepFailedError(
            f"step {step.name!r} failed in cell {number} of {step.notebook_ref}: {exc.ename}: "
            f"{first_line(exc.evalue)}",
            step=step.name,
            cell=number,
        )
    except InterruptedRunError as exc:
        error = exc
    except (DeadKernelError, RuntimeError, TimeoutError) as exc:
        error = stop_error(handle, step, tracker, exc, ctx, dead=isinstance(exc, DeadKernelError))
    except Exception as exc:  # noqa: BLE001 - anything else in papermill or nbclient fails the step
        error = StepFailedError(
            f"step {step.name!r} could not run {step.notebook_ref}: "
            f"{type(exc).__name__}: {first_line(str(exc))}",
            step=step.name,
        )
    return error


def mark_stop(partial: Path, error: MlfactorError, index: int | None) -> None:
    """Insert a note before the cell that was running when the kernel was stopped or died."""
    if not partial.is_file() or index is None:
        return
    nb = read_notebook(partial)
    note = markdown_cell(
        f"**mlfactor: execution stopped here.** {error}", ["papermill-error-cell-tag", "mlfactor-stopped"]
    )
    nb.cells.insert(min(index, len(nb.cells)), note)
    write_notebook(partial, nb)


def stop_error(
    handle: KernelHandle,
    step: StepSpec,
    tracker: CellTracker,
    exc: BaseException,
    ctx: StepContext,
    *,
    dead: bool,
) -> MlfactorError:
    """The error for a kernel that stopped answering: timed out, interrupted, died, or failed to start."""
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
        f"step {step.name!r} could not run {step.notebook_ref}: {type(exc).__name__}: {first_line(str(exc))}",
        step=step.name,
        cell=cell,
    )


class CellTracker:
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


def first_line(text: str) -> str:
    """Return the exception text on one line (multi-line messages joined), at most 500 characters."""
    return " ".join(str(text).split())[:500]
