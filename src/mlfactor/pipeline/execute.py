"""Execute a step's notebook with papermill and name what went wrong, as the user sees the notebook.

papermill raises its own error for a failed cell and lets nbclient's through
for a dead kernel or a stopped one; :func:`execute` turns each into the
mlfactor error with its exit code, naming the step, the cell's number in the
notebook *file* (see :class:`CellTracker`) and the exception.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfactor.errors import (
    InterruptedRunError,
    KernelDiedError,
    MlfactorError,
    StepFailedError,
    StepTimeoutError,
)
from mlfactor.pipeline.artifacts import markdown_cell, read_notebook, read_notebook_json, write_notebook
from mlfactor.pipeline.kernel import KernelHandle
from mlfactor.pipeline.parameters import PARAMETERS_TAG
from mlfactor.pipeline.progress import Progress
from mlfactor.pipeline.spec import StepSpec

ERROR_MARKER_TAG = "papermill-error-cell-tag"
INJECTED_TAG = "injected-parameters"

_PRINTED_ERROR = re.compile(r"^(?P<ename>[A-Za-z_][\w.]*(?:Error|Exception)): (?P<evalue>.+)$")

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
        ename, evalue = exc.ename, exc.evalue
        if ename == "CellExecutionError" and not evalue:
            ename, evalue = printed_error(partial, exc.cell_index)
        error = StepFailedError(
            f"step {step.name!r} failed in cell {number} of {step.notebook_ref}: {ename}: "
            f"{first_line(evalue)}",
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


def printed_error(partial: Path, index: int) -> tuple[str, str]:
    """The error a cell printed instead of raising (IPython's ``UsageError`` for a bad magic).

    papermill then reports an empty ``CellExecutionError``; the cell's own
    stderr says what went wrong, e.g. ``UsageError: Line magic function
    `%nope` not found.``
    """
    fallback = (
        "CellExecutionError",
        "the cell failed without an error output; see its output in the notebook",
    )
    try:
        executed = [c for c in read_notebook_json(partial)["cells"] if ERROR_MARKER_TAG not in _tags(c)]
        cell = executed[index]  # papermill's marker cells were added after it counted
    except (OSError, IndexError, ValueError):
        return fallback
    lines = [
        line.strip()
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
        for line in "".join(output.get("text", "")).splitlines()
    ]
    for line in reversed(lines):
        match = _PRINTED_ERROR.match(line)
        if match:
            return match["ename"], match["evalue"]
    return fallback


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
    """Which cell runs now, and its number in the notebook *file*, as the user sees it in JupyterLab.

    papermill executes a different list of cells: it injects the parameters
    (replacing a stale ``injected-parameters`` cell, else after the cell tagged
    ``parameters``, else at the top) and then drops the error-marker cells a
    previous papermill run left in the file. :attr:`origin` maps each executed
    index to the file's index (None for the injected cell).
    """

    def __init__(self, notebook: Path, *, injected: bool) -> None:
        try:
            cells = list(read_notebook_json(notebook)["cells"])  # no nbformat validation on the way in
        except Exception:  # noqa: BLE001 - only used for progress and messages
            cells = []
        self.cells = len(cells)
        origin: list[int | None] = list(range(len(cells)))
        if injected:
            stale = _first_tagged(cells, INJECTED_TAG)
            parameters = _first_tagged(cells, PARAMETERS_TAG)
            if stale is not None:
                origin[stale] = None
            else:
                origin.insert(0 if parameters is None else parameters + 1, None)
        self.origin = [i for i in origin if i is None or ERROR_MARKER_TAG not in _tags(cells[i])]
        self.current: int | None = None

    def started(self, step: str, index: int, progress: Progress) -> None:
        """Record that executed cell ``index`` (0-based) started."""
        self.current = index
        progress.cell_started(step, self.number(index) or index + 1, self.cells)

    def number(self, index: int | None) -> int | None:
        """1-based number in the notebook file of executed cell ``index`` (injected cell: the one before)."""
        if index is None:
            return None
        if index >= len(self.origin):
            return index + 1
        before = [i for i in self.origin[: index + 1] if i is not None]
        return before[-1] + 1 if before else 1


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _first_tagged(cells: list[Any], tag: str) -> int | None:
    return next((i for i, cell in enumerate(cells) if tag in _tags(cell)), None)


def first_line(text: str) -> str:
    """Return the exception text on one line (multi-line messages joined), at most 500 characters."""
    return " ".join(str(text).split())[:500]
