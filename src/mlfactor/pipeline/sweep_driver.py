"""Running a sweep: every grid point a pipeline run in its own process, at most ``max_parallel`` at once.

:func:`run_sweep` checks the grid (the first point planned like ``mlfactor
validate`` would) before any process starts, then runs ``point_command(N)``
for each point ``N``: the caller says how one point runs (the CLI passes its
own ``mlfactor run --sweep-index N`` command line), this module only starts,
watches and ranks. It forwards every child's JSON lines with ``sweep_index``
added, forwards SIGINT/SIGTERM to every running point and returns a
:class:`~mlfactor.pipeline.sweep.SweepResult`.

:func:`run_sweep_point` is what one point's process runs.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from mlfactor.log import event, get_logger
from mlfactor.pipeline.plan import Plan, make_plan
from mlfactor.pipeline.progress import Progress
from mlfactor.pipeline.runner import PipelineResult, run_pipeline
from mlfactor.pipeline.sweep import (
    SweepAxis,
    SweepPoint,
    SweepResult,
    as_overrides,
    grid,
    parse_axes,
    point,
    point_tags,
    rank,
)
from mlfactor.settings import Settings
from mlfactor.signals import StopRequest, handle_stop_signals
from mlfactor.tracking import connect, ensure_experiment

logger = get_logger(__name__)
_SUMMARY_KEYS = frozenset({"pipeline", "run_id", "status", "steps"})
_POLL_S = 0.05


def check_sweep(
    pipeline: Path, options: Sequence[str], parameters: Sequence[str] = ()
) -> tuple[list[SweepAxis], Plan]:
    """Parse the grid and plan its first point; one ValidationError lists every problem."""
    axes = parse_axes(options)
    return axes, make_plan(pipeline, [*parameters, *as_overrides(grid(axes)[0])])


def run_sweep_point(
    pipeline: Path,
    options: Sequence[str],
    index: int,
    settings: Settings,
    *,
    sweep_id: str,
    parameters: Sequence[str] = (),
    max_parallel: int | None = None,
    output_dir: Path | None = None,
    progress: Progress | None = None,
) -> PipelineResult:
    """Run point ``index`` of the grid as one pipeline run tagged with the sweep id and index."""
    values = point(parse_axes(options), index)
    plan = make_plan(pipeline, [*parameters, *as_overrides(values)])
    return run_pipeline(
        plan,
        settings,
        max_parallel=max_parallel,
        output_dir=output_dir,
        progress=progress,
        tags=point_tags(sweep_id, index),
    )


def run_sweep(
    pipeline: Path,
    options: Sequence[str],
    settings: Settings,
    *,
    point_command: Callable[[int], Sequence[str]],
    sweep_id: str,
    max_parallel: int,
    parameters: Sequence[str] = (),
    out: IO[str] | None = None,
) -> SweepResult:
    """Check the grid, run every point as ``point_command(index)``, ``max_parallel`` at once; rank them."""
    axes, plan = check_sweep(pipeline, options, parameters)
    # Create the store and experiment once, before parallel processes race to (sqlite migrations).
    ensure_experiment(connect(settings), plan.spec.experiment, settings)
    points = [SweepPoint(i, values) for i, values in enumerate(grid(axes))]
    event(logger, "sweep_started", sweep_id=sweep_id, points=len(points), max_parallel=max_parallel)
    env = settings.child_environment(extra={"MLFACTOR_LOG_FORMAT": "json"})
    stop = _run_points(points, point_command, env, max_parallel, out or sys.stdout)
    metric = plan.spec.metric
    return SweepResult(sweep_id, str(pipeline), tuple(rank(points, metric)), metric, stop.signum)


def _run_points(
    points: Sequence[SweepPoint],
    point_command: Callable[[int], Sequence[str]],
    env: dict[str, str],
    max_parallel: int,
    stream: IO[str],
) -> StopRequest:
    """Start, watch and reap the points' processes; return what stopped them (if anything did)."""
    lock = threading.Lock()
    pending = list(points)
    running: dict[int, tuple[subprocess.Popen[str], threading.Thread]] = {}
    stop = StopRequest()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop(signum, frame)
        for proc, _ in list(running.values()):
            proc.send_signal(signum)

    with handle_stop_signals(on_signal):
        while pending or running:
            while pending and len(running) < max_parallel and not stop.requested:
                sp = pending.pop(0)
                proc = subprocess.Popen(
                    list(point_command(sp.index)),
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                    start_new_session=True,
                )
                thread = threading.Thread(target=_forward, args=(proc, sp, stream, lock), daemon=True)
                thread.start()
                running[sp.index] = (proc, thread)
            if stop.requested:
                pending.clear()
            for index, (proc, thread) in list(running.items()):
                if proc.poll() is not None:
                    thread.join(timeout=5)
                    points[index].exit_code = proc.returncode
                    del running[index]
            if running:  # wait on a point's exit, not a fixed sleep
                with contextlib.suppress(subprocess.TimeoutExpired):
                    next(iter(running.values()))[0].wait(timeout=_POLL_S)
    return stop


def _forward(
    proc: subprocess.Popen[str], sweep_point: SweepPoint, out: IO[str], lock: threading.Lock
) -> None:
    """Copy a point's stdout to ``out``, JSON lines tagged with ``sweep_index``; keep its summary line."""
    for line in proc.stdout or ():
        text = line.rstrip("\n")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            if data.keys() >= _SUMMARY_KEYS:
                sweep_point.summary = data
            data["sweep_index"] = sweep_point.index
            text = json.dumps(data, default=str)
        with lock:
            out.write(text + "\n")
            out.flush()
