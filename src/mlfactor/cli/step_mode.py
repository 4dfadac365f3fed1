"""The step-by-step modes of ``mlfactor run``: open a pipeline run, run one step, or finish it.

Each is its own process (an Argo or Airflow task, :mod:`mlfactor.deploy`); the
work is :mod:`mlfactor.pipeline.distributed`, this module only checks the
options and prints the summary.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json


def check_step_mode(  # noqa: PLR0917 - the options of one command
    open_run: bool,
    step: str | None,
    finish_run: bool,
    pipeline_run_id: str | None,
    run_id_file: Path | None,
    parameters: Sequence[str],
) -> None:
    """Refuse option combinations of the step-by-step modes that cannot mean anything."""
    if open_run + (step is not None) + finish_run > 1:
        raise click.UsageError("--open-run, --step and --finish-run are separate processes: give one.")
    if not open_run and pipeline_run_id is None:
        raise click.UsageError("--step and --finish-run need --pipeline-run-id (the id --open-run printed).")
    if open_run and pipeline_run_id is not None:
        raise click.UsageError("--open-run creates the pipeline run; it takes no --pipeline-run-id.")
    if not open_run and (parameters or run_id_file is not None):
        raise click.UsageError(
            "-p and --run-id-file go with --open-run: a step takes the parameters its pipeline run recorded."
        )


def run_step_mode(  # noqa: PLR0917 - the options of one command
    pipeline: Path,
    parameters: Sequence[str],
    run_tags: dict[str, str],
    step: str | None,
    pipeline_run_id: str | None,
    run_id_file: Path | None,
    output_dir: Path | None,
    progress: bool | None,
) -> int:
    """One process of a pipeline run step by step: open it (no run id yet), run one step, or finish it."""
    from mlfactor.pipeline import distributed
    from mlfactor.pipeline.plan import make_plan
    from mlfactor.pipeline.progress import make_progress

    settings = start()
    # Steps read their parameters and earlier outputs as artifacts: MLflow's download bars would
    # garble the task's log (stderr), as `mlfactor reproduce` found.
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    plan = make_plan(pipeline, parameters)
    if step is None and pipeline_run_id is None:
        opened = distributed.open_pipeline_run(plan, settings, output_dir=output_dir, tags=run_tags)
        if run_id_file is not None:
            distributed.write_run_id(run_id_file, opened.run_id)
        emit_json(opened.summary())
        return 0
    assert pipeline_run_id is not None  # noqa: S101 - checked by check_step_mode
    if step is not None:
        result = distributed.run_pipeline_step(
            plan, settings, step, pipeline_run_id, output_dir=output_dir, progress=make_progress(progress)
        )
    else:
        result = distributed.finish_pipeline_run(plan, settings, pipeline_run_id)
    emit_json(result.summary())
    if result.error is not None:
        click.echo(f"Error: {result.error}", err=True)
    return result.exit_code
