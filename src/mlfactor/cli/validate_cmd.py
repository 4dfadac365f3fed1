"""``mlfactor validate``: check pipeline files without running anything (no kernel, no store)."""

from __future__ import annotations

from pathlib import Path

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json
from mlfactor.errors import ExitCode, MlfactorError, exit_codes_help

E = ExitCode
VALIDATE_EXIT_CODES = exit_codes_help(
    E.OK,
    E.USAGE,
    E.INVALID_INPUT,
    E.NOT_FOUND,
    E.CONFIG,
    said={
        E.OK: "every file is valid",
        E.INVALID_INPUT: "a file has a problem",
        E.NOT_FOUND: "a file does not exist",
    },
)


@click.command("validate", epilog=VALIDATE_EXIT_CODES)
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
    """Check pipeline files without running anything.

    Checks each file's structure, its step graph and every notebook parameter
    (no kernel starts, no store is reached). Prints one JSON line per file.
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
    return worst
