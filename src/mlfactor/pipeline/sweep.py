"""Parameter sweeps: a grid of ``-p`` overrides run as separate pipeline runs, ranked by a metric.

``--sweep train.C=0.1,1,10 --sweep train.max_iter=100,200`` is the grid of
every combination, in a fixed order: options in the order given, values in
the order written, the last option varying fastest (``itertools.product``).
Point ``N`` (0-based) of that order is what ``mlfactor run --sweep-index N``
runs, alone, in its own process: a Kubernetes Indexed Job maps
``JOB_COMPLETION_INDEX`` to it. Without ``--sweep-index`` the driver starts one
``mlfactor run --sweep-index N`` process per point, at most ``max_parallel`` at
a time, forwards their JSON lines (with ``sweep_index`` added), and ends with
the points ranked by the metric.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import yaml

from mlfactor.errors import ExitCode, ValidationError
from mlfactor.log import event, get_logger
from mlfactor.pipeline.parameters import name_problems, value_problems
from mlfactor.pipeline.spec import MetricSpec
from mlfactor.settings import Settings

logger = get_logger(__name__)
_DRIVER = "from mlfactor.cli import main; main()"


@dataclass(frozen=True)
class SweepAxis:
    """One ``--sweep STEP.NAME=V1,V2`` option."""

    key: str
    values: tuple[Any, ...]


@dataclass
class SweepPoint:
    """One point of the grid and how its run ended."""

    index: int
    overrides: dict[str, Any]
    exit_code: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        """The point's metric value, when its run recorded one."""
        metric = self.summary.get("metric") or {}
        value = metric.get("value")
        return float(value) if isinstance(value, int | float) else None


def parse_axes(options: Sequence[str]) -> list[SweepAxis]:
    """Parse ``--sweep`` options; one ValidationError lists every malformed one."""
    axes: list[SweepAxis] = []
    problems: list[str] = []
    for text in options:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            problems.append(f"--sweep {text!r}: expected STEP.NAME=V1,V2,... e.g. train.C=0.1,1,10")
            continue
        problems.extend(name_problems(key.rpartition(".")[2], f"--sweep {key}"))
        values = []
        for item in raw.split(","):
            try:
                value = yaml.safe_load(item) if item.strip() else ""
            except yaml.YAMLError:
                value = item
            problems.extend(value_problems(value, f"--sweep {key}"))
            values.append(value)
        if any(a.key == key for a in axes):
            problems.append(f"--sweep {key}: given twice; list every value in one option.")
        axes.append(SweepAxis(key, tuple(values)))
    if problems:
        raise ValidationError("sweep", problems)
    return axes


def grid(axes: Sequence[SweepAxis]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, in the documented deterministic order."""
    keys = [a.key for a in axes]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(a.values for a in axes))]


def point(axes: Sequence[SweepAxis], index: int) -> dict[str, Any]:
    """Point ``index`` (0-based) of the grid; ValidationError when out of range."""
    points = grid(axes)
    if not 0 <= index < len(points):
        raise ValidationError(
            "sweep",
            [
                f"--sweep-index {index} is out of range: the grid has {len(points)} "
                f"points, numbered 0 to {len(points) - 1}."
            ],
        )
    return points[index]


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """``-p`` strings for a point (values in JSON, which YAML reads back unchanged)."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def sweep_id(pipeline_sha256: str, options: Sequence[str]) -> str:
    """Return a stable id for a grid of a pipeline file (used when none is given)."""
    digest = hashlib.sha256((pipeline_sha256 + "\n" + "\n".join(options)).encode()).hexdigest()
    return digest[:12]


def rank(points: Sequence[SweepPoint], metric: MetricSpec | None) -> list[SweepPoint]:
    """Points with a metric value first, best first; the rest after, by index."""
    scored = [p for p in points if p.value is not None]
    rest = [p for p in points if p.value is None]
    if metric is not None:
        sign = 1.0 if metric.goal == "min" else -1.0
        scored.sort(key=lambda p: sign * (p.value or 0.0))
    return [*scored, *sorted(rest, key=lambda p: p.index)]


def table(points: Sequence[SweepPoint], metric: MetricSpec | None) -> str:
    """Render the ranked points as a plain-text table."""
    label = f"{metric.step}.{metric.name} ({metric.goal})" if metric else "metric"
    rows = [("rank", "index", "status", label, "run_id", "parameters")]
    for i, p in enumerate(points, 1):
        value = "" if p.value is None else f"{p.value:.6g}"
        params = " ".join(f"{k}={v}" for k, v in p.overrides.items())
        rows.append(
            (
                str(i),
                str(p.index),
                str(p.summary.get("status", "ERROR")),
                value,
                str(p.summary.get("run_id", "")),
                params,
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _forward(
    proc: subprocess.Popen[str], sweep_point: SweepPoint, out: IO[str], lock: threading.Lock
) -> None:
    for line in proc.stdout or ():
        text = line.rstrip("\n")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            if {"pipeline", "run_id", "status", "steps"} <= data.keys():
                sweep_point.summary = data
            data["sweep_index"] = sweep_point.index
            text = json.dumps(data, default=str)
        with lock:
            out.write(text + "\n")
            out.flush()


def run_sweep(
    pipeline: str,
    options: Sequence[str],
    settings: Settings,
    *,
    parameters: Sequence[str] = (),
    max_parallel: int,
    identifier: str,
    extra_args: Sequence[str] = (),
    out: IO[str] | None = None,
) -> tuple[list[SweepPoint], int | None]:
    """Run every grid point as its own ``mlfactor run --sweep-index N`` process, ``max_parallel`` at once.

    Returns the points (with each run's summary) and the signal that stopped
    the sweep, if one did: SIGTERM/SIGINT are forwarded to every running point.
    """
    axes = parse_axes(options)
    points = [SweepPoint(i, values) for i, values in enumerate(grid(axes))]
    stream = out or sys.stdout
    lock = threading.Lock()
    env = settings.child_environment(extra={"MLFACTOR_LOG_FORMAT": "json"})
    pending = list(points)
    running: dict[int, tuple[subprocess.Popen[str], threading.Thread]] = {}
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        for proc, _ in list(running.values()):
            proc.send_signal(signum)

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    event(logger, "sweep_started", sweep_id=identifier, points=len(points), max_parallel=max_parallel)
    try:
        while pending or running:
            while pending and len(running) < max_parallel and not received:
                sp = pending.pop(0)
                argv = [
                    sys.executable,
                    "-c",
                    _DRIVER,
                    "run",
                    pipeline,
                    *[a for o in options for a in ("--sweep", o)],
                    "--sweep-index",
                    str(sp.index),
                    "--sweep-id",
                    identifier,
                    "--no-progress",
                    *[a for p in parameters for a in ("-p", p)],
                    *extra_args,
                ]
                proc = subprocess.Popen(
                    argv, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
                )
                thread = threading.Thread(target=_forward, args=(proc, sp, stream, lock), daemon=True)
                thread.start()
                running[sp.index] = (proc, thread)
            if received:
                pending.clear()
            for index, (proc, thread) in list(running.items()):
                if proc.poll() is not None:
                    thread.join(timeout=5)
                    points[index].exit_code = proc.returncode
                    del running[index]
            time.sleep(0.05)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return points, (received[0] if received else None)


def sweep_exit_code(points: Sequence[SweepPoint], signum: int | None) -> int:
    """143/130 when stopped by a signal, else the exit code of the first failed point, else 0."""
    if signum is not None:
        return int(ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.INTERRUPTED)
    for p in sorted(points, key=lambda p: p.index):
        if p.exit_code not in (0, None):
            return int(p.exit_code)
    return 0
