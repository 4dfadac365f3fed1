"""``mlfactor reproduce MODEL@ALIAS`` (or ``MODEL/VERSION``): rebuild a registered version and compare."""

from __future__ import annotations

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json, render_table, wants_json
from mlfactor.errors import ExitCode, exit_codes_help

E = ExitCode
REPRODUCE_EXIT_CODES = exit_codes_help(
    E.OK,
    E.STEP_FAILED,
    E.USAGE,
    E.INVALID_INPUT,
    E.NOT_FOUND,
    E.SERVICE_UNAVAILABLE,
    E.CONFIG,
    said={
        E.OK: "reproduced",
        E.STEP_FAILED: "something differs (or the re-run failed)",
        E.INVALID_INPUT: "cannot be reproduced (no lineage, dirty tree, unknown commit, changed files)",
        E.NOT_FOUND: "no such model, version or alias",
    },
)


@click.command("reproduce", epilog=REPRODUCE_EXIT_CODES)
@click.argument("target", metavar="MODEL@ALIAS|MODEL/VERSION")
@click.option(
    "--rtol",
    type=click.FloatRange(min=0),
    default=1e-6,
    show_default=True,
    help="Relative tolerance for metrics and numeric predictions.",
)
@click.option("--experiment", default=None, help="Experiment of the re-run [default: ORIGINAL-reproduce].")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report even on a terminal.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Live progress line [default: on when stdout is a terminal].",
)
def reproduce(
    *, target: str, rtol: float, experiment: str | None, as_json: bool, progress: bool | None
) -> int:
    """Rebuild a registered version from its lineage and compare.

    TARGET is MODEL@ALIAS (the version the alias points at now) or MODEL/VERSION.

    Checks the recorded commit out in a temporary git worktree, re-runs the
    recorded pipeline with the recorded parameters into a separate experiment
    (registering into a throwaway registry: the original model and its aliases
    are never touched), then compares metrics (within --rtol), predictions on
    the version's input example, package versions and parameters. Prints a
    table on a terminal, the JSON report otherwise; the report is also logged
    as reproduce/report.json of the re-run and linked from both pipeline runs.
    """
    from mlfactor.pipeline.progress import make_progress
    from mlfactor.reproduce import NotReproducibleError
    from mlfactor.reproduce.rebuild import reproduce_version

    settings = start()
    show_json = wants_json(as_json)
    try:
        report = reproduce_version(
            settings,
            target,
            rtol=rtol,
            experiment=experiment,
            progress=make_progress(False if show_json else progress),
        )
    except NotReproducibleError as exc:
        emit_json(
            {
                "target": target,
                "status": "NOT_REPRODUCIBLE",
                "exit_code": int(exc.exit_code),
                "reason": exc.reason,
            }
        )
        click.echo(f"Error: {exc}", err=True)
        return int(exc.exit_code)
    if show_json:
        emit_json(report.to_dict())
    else:
        click.echo(render_table(("check", "name", "original", "reproduced", "result"), report.rows()))
        click.echo(f"{report.status}: {report.model} version {report.version} at {report.commit[:12]}")
    if report.error is not None:
        click.echo(f"Error: {report.error}", err=True)
    return report.exit_code
