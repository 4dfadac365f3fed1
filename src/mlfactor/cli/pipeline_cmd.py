"""``mlfactor run``: run a pipeline file, a sweep of it, or one process of a step-by-step run.

``run`` is one pipeline run, or with ``--sweep`` a grid of them: all points
(``run_sweep``), one point (``--sweep-index``, the Kubernetes Indexed Job's
pod) or the Job itself (``--render-k8s``). Each mode is one library call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json, render_table
from mlfactor.cli.step_mode import check_step_mode, run_step_mode
from mlfactor.errors import ExitCode, exit_codes_help

E = ExitCode
RUN_EXIT_CODES = exit_codes_help(
    E.OK,
    E.STEP_FAILED,
    E.USAGE,
    E.STEP_TIMEOUT,
    E.KERNEL_DIED,
    E.INVALID_INPUT,
    E.NOT_FOUND,
    E.SERVICE_UNAVAILABLE,
    E.CONFIG,
    E.INTERRUPTED,
    E.TERMINATED,
    said={E.INVALID_INPUT: "invalid pipeline or parameters", E.NOT_FOUND: "file not found"},
)


@click.command("run", epilog=RUN_EXIT_CODES)
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
    "--open-run",
    is_flag=True,
    help="Only create the pipeline run (its parent MLflow run) for steps run one by one with --step.",
)
@click.option(
    "--step",
    default=None,
    metavar="NAME",
    help="Run only step NAME of the open pipeline run --pipeline-run-id (one pod or task per step).",
)
@click.option(
    "--finish-run",
    is_flag=True,
    help="Record the outcome of the pipeline run --pipeline-run-id from its steps' runs and end it.",
)
@click.option("--pipeline-run-id", default=None, metavar="ID", help="The run --open-run created.")
@click.option(
    "--run-id-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help="With --open-run: also write the run id to PATH (a JSON string when PATH ends in .json).",
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
    open_run: bool,
    step: str | None,
    finish_run: bool,
    pipeline_run_id: str | None,
    run_id_file: Path | None,
    output_dir: Path | None,
    progress: bool | None,
) -> int:
    """Run the pipeline file PIPELINE, or a sweep of it.

    Runs every step's notebook in graph order, traced in MLflow; everything is
    checked before the first kernel starts. With --sweep, every point of the
    grid is its own pipeline run (at most --max-parallel at once) and the
    ranking by the pipeline's metric is printed. The last line on stdout is a
    JSON summary. --open-run, --step and --finish-run run the same pipeline
    run one step per process (docs/pipelines.md, "One step per process").
    """
    from mlfactor.pipeline.progress import make_progress
    from mlfactor.pipeline.sweep import sweep_id as derive_sweep_id

    if open_run or step is not None or finish_run:
        check_step_mode(open_run, step, finish_run, pipeline_run_id, run_id_file, parameters)
        if sweeps and (not open_run or sweep_index is None or render_k8s is not None):
            raise click.UsageError(
                "with --open-run, --sweep needs --sweep-index (the point this run is); --step and "
                "--finish-run take no --sweep."
            )
        overrides, run_tags = list(parameters), {}
        if sweeps:
            from mlfactor.pipeline.sweep import as_overrides, parse_axes, point, point_tags

            assert sweep_index is not None  # noqa: S101 - checked above
            overrides += as_overrides(point(parse_axes(sweeps), sweep_index))
            run_tags = point_tags(identifier_for(pipeline, sweeps, sweep_id), sweep_index)
        return run_step_mode(pipeline, overrides, run_tags, step, pipeline_run_id, run_id_file, output_dir,
                             progress)  # fmt: skip
    if pipeline_run_id is not None or run_id_file is not None:
        raise click.UsageError(
            "--pipeline-run-id and --run-id-file go with --open-run, --step or --finish-run."
        )

    if sweep_index is not None and not sweeps:
        raise click.UsageError("--sweep-index needs the --sweep options that define the grid.")
    if render_k8s is not None and (not sweeps or sweep_index is not None):
        raise click.UsageError(
            "--render-k8s needs --sweep options and renders every index (no --sweep-index)."
        )
    settings = start()
    identifier = (sweep_id or derive_sweep_id(pipeline, sweeps)) if sweeps else ""
    if render_k8s is not None:
        from mlfactor.deploy.sweep import render_sweep_for_run
        from mlfactor.pipeline.sweep_driver import check_sweep

        check_sweep(pipeline, sweeps, parameters)
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
    if sweeps and sweep_index is None:
        from mlfactor.pipeline.sweep_driver import run_sweep

        swept = run_sweep(
            pipeline,
            sweeps,
            settings,
            point_command=_point_command(pipeline, sweeps, parameters, identifier, output_dir),
            sweep_id=identifier,
            max_parallel=max_parallel or settings.max_parallel,
            parameters=parameters,
        )
        rows = [
            (str(rank), str(p.index), p.status, "" if p.value is None else f"{p.value:.6g}",
             str(p.summary.get("run_id", "")), " ".join(f"{k}={v}" for k, v in p.overrides.items()))
            for rank, p in enumerate(swept.ranking, 1)
        ]  # fmt: skip
        header = ("rank", "index", "status", swept.metric_label, "run_id", "parameters")
        click.echo(render_table(header, rows), err=not sys.stdout.isatty())
        emit_json(swept.to_dict())
        return swept.exit_code
    if sweeps and sweep_index is not None:
        from mlfactor.pipeline.sweep_driver import run_sweep_point

        result = run_sweep_point(
            pipeline,
            sweeps,
            sweep_index,
            settings,
            sweep_id=identifier,
            parameters=parameters,
            max_parallel=max_parallel,
            output_dir=output_dir,
            progress=make_progress(progress),
        )
    else:
        from mlfactor.pipeline.plan import make_plan
        from mlfactor.pipeline.runner import run_pipeline

        plan = make_plan(pipeline, parameters)
        result = run_pipeline(
            plan, settings, max_parallel=max_parallel, output_dir=output_dir, progress=make_progress(progress)
        )
    emit_json(result.summary())
    if result.error is not None:
        click.echo(f"Error: {result.error}", err=True)
    return result.exit_code


def identifier_for(pipeline: Path, sweeps: Sequence[str], given: str | None) -> str:
    """The sweep id: ``--sweep-id``, else derived from the file and the grid."""
    from mlfactor.pipeline.sweep import sweep_id as derive_sweep_id

    return given or derive_sweep_id(pipeline, sweeps)


def _point_command(
    pipeline: Path, sweeps: Sequence[str], parameters: Sequence[str], identifier: str, output_dir: Path | None
) -> Callable[[int], list[str]]:
    """How one point of a local sweep runs: this command with ``--sweep-index N``, in a new process."""
    base = [sys.executable, "-m", "mlfactor", "run", str(pipeline), "--sweep-id", identifier, "--no-progress"]
    base += [arg for value in sweeps for arg in ("--sweep", value)]
    base += [arg for value in parameters for arg in ("-p", value)]
    base += ["--output-dir", str(output_dir)] if output_dir else []
    return lambda index: [*base, "--sweep-index", str(index)]
