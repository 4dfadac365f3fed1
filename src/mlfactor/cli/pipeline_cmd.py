"""``mlfactor run`` and ``mlfactor validate``: run or check pipeline files."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from mlfactor.cli.common import emit_json, start
from mlfactor.errors import ExitCode, MlfactorError

EXIT_CODES = (
    "Exit codes: 0 success, 1 a step failed (a cell raised), 3 a step timed out, 4 a kernel died, "
    "65 invalid pipeline or parameters, 66 file not found, 69 tracking store unavailable, "
    "78 invalid configuration, 130 SIGINT, 143 SIGTERM."
)


def _quiet_libraries() -> None:
    # papermill logs each input/output path and kernel name at INFO; the runner's events say it once.
    for name in ("papermill", "nbclient", "traitlets"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


@click.command("run", epilog=EXIT_CODES)
@click.argument("pipeline", type=click.Path(path_type=Path))
@click.option(
    "-p",
    "--parameter",
    "parameters",
    multiple=True,
    metavar="STEP.NAME=VALUE",
    help="Override a step parameter (NAME=VALUE: every step declaring NAME). VALUE is YAML: "
    "0.5, true, '[1, 2]', text. Repeatable.",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=None,
    help="Steps (or sweep points) run at once [default: MLFACTOR_MAX_PARALLEL, 2].",
)
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    metavar="STEP.NAME=V1,V2,...",
    help="Run the grid of every combination as separate pipeline runs. Repeatable.",
)
@click.option(
    "--sweep-index",
    type=click.IntRange(min=0),
    default=None,
    help="Run only point N (0-based) of the --sweep grid, in this process (Indexed Jobs).",
)
@click.option("--sweep-id", default=None, help="Id tagging every run of one sweep [default: derived].")
@click.option(
    "--render-k8s",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Write the --sweep grid as a Kubernetes Indexed Job to DIR instead of running it (docs/deploy.md).",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for executed notebooks, one RUN_ID folder per run [default: output/pipelines/NAME].",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Live progress line [default: on when stdout is a terminal].",
)
def run(  # noqa: PLR0917 - click passes every option positionally
    pipeline: Path,
    parameters: tuple[str, ...],
    max_parallel: int | None,
    sweeps: tuple[str, ...],
    sweep_index: int | None,
    sweep_id: str | None,
    render_k8s: Path | None,
    output_dir: Path | None,
    progress: bool | None,
) -> int:
    """Run the pipeline file PIPELINE: every step's notebook, in graph order, traced in MLflow.

    Everything is checked before the first kernel starts. The last line on
    stdout is a JSON summary (pipeline, run_id, status, per-step durations
    and outputs).
    """
    from mlfactor.pipeline import sweep as sweeping
    from mlfactor.pipeline.plan import make_plan
    from mlfactor.pipeline.progress import make_progress
    from mlfactor.pipeline.runner import run_pipeline

    settings = start()
    _quiet_libraries()
    if sweep_index is not None and not sweeps:
        raise click.UsageError("--sweep-index needs the --sweep options that define the grid.")
    if render_k8s is not None and (not sweeps or sweep_index is not None):
        raise click.UsageError(
            "--render-k8s needs --sweep options and renders every index (no --sweep-index)."
        )
    overrides = list(parameters)
    tags: dict[str, str] = {}
    if sweeps:
        axes = sweeping.parse_axes(sweeps)
        identifier = sweep_id or sweeping.sweep_id(_sha256(pipeline), sweeps)
        if render_k8s is not None and sweep_index is None:
            from mlfactor.deploy.sweep import render_sweep_for_run

            make_plan(pipeline, [*overrides, *sweeping.as_overrides(sweeping.grid(axes)[0])])
            rendered = render_sweep_for_run(
                settings,
                pipeline=pipeline,
                sweeps=sweeps,
                parameters=parameters,
                sweep_id=identifier,
                out=render_k8s,
                max_parallel=max_parallel,
            )
            emit_json(rendered.to_dict())
            return 0
        if sweep_index is None:
            make_plan(pipeline, [*overrides, *sweeping.as_overrides(sweeping.grid(axes)[0])])
            return _drive_sweep(
                pipeline, sweeps, parameters, max_parallel or settings.max_parallel, identifier, output_dir
            )
        values = sweeping.point(axes, sweep_index)
        overrides += sweeping.as_overrides(values)
        tags = {"mlfactor.sweep.id": identifier, "mlfactor.sweep.index": str(sweep_index)}
    plan = make_plan(pipeline, overrides)
    result = run_pipeline(
        plan,
        settings,
        max_parallel=max_parallel,
        output_dir=output_dir,
        progress=make_progress(progress),
        tags=tags,
    )
    emit_json(result.summary())
    if result.error is not None:
        click.echo(f"Error: {result.error}", err=True)
    return result.exit_code


def _sha256(path: Path) -> str:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _drive_sweep(  # noqa: PLR0917 - internal
    pipeline: Path,
    sweeps: tuple[str, ...],
    parameters: tuple[str, ...],
    max_parallel: int,
    identifier: str,
    output_dir: Path | None,
) -> int:
    from mlfactor.pipeline import sweep as sweeping
    from mlfactor.pipeline.spec import load_pipeline
    from mlfactor.settings import load_settings
    from mlfactor.tracking import connect, ensure_experiment

    spec = load_pipeline(pipeline)
    metric = spec.metric
    settings = load_settings()
    # Create the store and experiment once, before parallel processes race to (sqlite migrations).
    ensure_experiment(connect(settings), spec.experiment, settings)
    extra = ["--output-dir", str(output_dir)] if output_dir else []
    points, signum = sweeping.run_sweep(
        str(pipeline),
        sweeps,
        settings,
        parameters=parameters,
        max_parallel=max_parallel,
        identifier=identifier,
        extra_args=extra,
    )
    ranked = sweeping.rank(points, metric)
    text = sweeping.table(ranked, metric)
    tty = sys.stdout.isatty()
    click.echo(text, err=not tty)
    code = sweeping.sweep_exit_code(points, signum)
    emit_json(
        {
            "sweep_id": identifier,
            "pipeline": str(pipeline),
            "points": len(points),
            "status": "FINISHED" if code == 0 else ("KILLED" if signum else "FAILED"),
            "exit_code": code,
            "metric": None if metric is None else f"{metric.step}.{metric.name}",
            "goal": None if metric is None else metric.goal,
            "ranking": [
                {
                    "index": p.index,
                    "parameters": p.overrides,
                    "run_id": p.summary.get("run_id"),
                    "status": p.summary.get("status"),
                    "value": p.value,
                    "exit_code": p.exit_code,
                }
                for p in ranked
            ],
        }
    )
    return code


@click.command("validate", epilog=EXIT_CODES)
@click.argument("pipelines", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-p",
    "--parameter",
    "parameters",
    multiple=True,
    metavar="STEP.NAME=VALUE",
    help="Check these overrides too (as `mlfactor run -p`).",
)
def validate(pipelines: tuple[Path, ...], parameters: tuple[str, ...]) -> int:
    """Check pipeline files without running anything: structure, graph and every notebook parameter.

    Prints one JSON line per file; exits 65 (or 66 for a missing file) when any file has a problem.
    """
    from mlfactor.pipeline.plan import make_plan

    start()
    worst = 0
    for path in pipelines:
        try:
            plan = make_plan(path, parameters)
        except MlfactorError as exc:
            problems = getattr(exc, "problems", [str(exc)])
            emit_json({"pipeline": str(path), "valid": False, "problems": problems})
            click.echo(f"Error: {exc}", err=True)
            worst = worst or int(exc.exit_code)
            continue
        emit_json(
            {
                "pipeline": str(path),
                "valid": True,
                "steps": plan.spec.step_names,
                "parameters": {k: dict(v) for k, v in plan.parameters.items()},
            }
        )
    return worst if worst else int(ExitCode.OK)
