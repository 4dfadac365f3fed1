"""``mlfactor promote``, ``rollback`` and ``history``: move aliases with a recorded history."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json, short_time, show_listing
from mlfactor.errors import ExitCode, exit_codes_help

if TYPE_CHECKING:
    from mlfactor.aliases import AliasMove

E = ExitCode
ALIAS_HELP = "Alias to move (champion, challenger, ...)."
PROMOTE_EXIT_CODES = exit_codes_help(
    E.OK,
    E.USAGE,
    E.INVALID_INPUT,
    E.NOT_FOUND,
    E.SERVICE_UNAVAILABLE,
    E.TRY_AGAIN,
    E.CONFIG,
    said={
        E.INVALID_INPUT: "version not READY or alias name invalid",
        E.NOT_FOUND: "no such model or version",
        E.TRY_AGAIN: "another process holds the alias lock",
    },
)
ROLLBACK_EXIT_CODES = exit_codes_help(
    E.OK,
    E.USAGE,
    E.NOT_FOUND,
    E.SERVICE_UNAVAILABLE,
    E.TRY_AGAIN,
    E.CONFIG,
    said={E.NOT_FOUND: "nothing to roll back to", E.TRY_AGAIN: "another process holds the alias lock"},
)
HISTORY_EXIT_CODES = exit_codes_help(
    E.OK, E.USAGE, E.NOT_FOUND, E.SERVICE_UNAVAILABLE, E.CONFIG, said={E.NOT_FOUND: "no such model"}
)


@click.command("promote", epilog=PROMOTE_EXIT_CODES)
@click.argument("model")
@click.argument("version")
@click.option("--alias", default="champion", show_default=True, help=ALIAS_HELP)
@click.option("--reason", default=None, help="Why: recorded with the move and shown by `mlfactor history`.")
@click.option("--pipeline-run-id", default=None, help="MLflow run of the pipeline that decided the move.")
@click.option("--new-alias", is_flag=True, help="Create an alias even if its name looks like a typo.")
def promote(
    *, model: str, version: str, alias: str, reason: str | None, pipeline_run_id: str | None, new_alias: bool
) -> None:
    """Point ALIAS of registered MODEL at VERSION and record the move.

    Idempotent: promoting the version the alias already points at records
    nothing.
    """
    from mlfactor.aliases import promote_model
    from mlfactor.tracking import connect

    settings = start()
    move = promote_model(
        connect(settings),
        model,
        version,
        alias=alias,
        reason=reason,
        pipeline_run_id=pipeline_run_id,
        allow_new_alias=new_alias,
    )
    _report(move)


@click.command("rollback", epilog=ROLLBACK_EXIT_CODES)
@click.argument("model")
@click.option("--alias", default="champion", show_default=True, help=ALIAS_HELP)
@click.option("--reason", default=None, help="Why: recorded with the move.")
def rollback(model: str, alias: str, reason: str | None) -> None:
    """Move ALIAS of MODEL back to the version it held before.

    That is the version before its last promotion; each rollback undoes one
    more promotion (when none is left, promote a version explicitly).
    """
    from mlfactor.aliases import rollback_model
    from mlfactor.tracking import connect

    settings = start()
    _report(rollback_model(connect(settings), model, alias=alias, reason=reason))


@click.command("history", epilog=HISTORY_EXIT_CODES)
@click.argument("model")
@click.option("--alias", default=None, help="Only this alias (default: every alias).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON even on a terminal.")
def history(model: str, alias: str | None, as_json: bool) -> None:
    """List the recorded alias moves of MODEL.

    Newest first: a table on a terminal, one JSON array otherwise.
    """
    from mlfactor.aliases import alias_history
    from mlfactor.tracking import connect

    settings = start()
    moves = alias_history(connect(settings), model, alias)
    header = ("#", "when", "alias", "from", "to", "kind", "who", "reason", "pipeline run")
    rows = [
        (str(m.seq), short_time(m.when), m.alias, m.from_version or "-", m.to_version, m.kind, m.who,
         m.reason or "", m.pipeline_run_id or "")
        for m in moves
    ]  # fmt: skip
    show_listing(
        [m.to_dict() for m in moves],
        header,
        rows,
        as_json=as_json,
        empty=f"no recorded alias moves for {model!r}",
    )


def _report(move: AliasMove) -> None:
    if not move.changed:
        click.echo(
            f"{move.model}@{move.alias} already points at version {move.to_version}; nothing recorded.",
            err=True,
        )
    else:
        click.echo(
            f"{move.model}@{move.alias}: {move.from_version or '(unset)'} -> {move.to_version} "
            f"({move.kind}, move {move.seq or move.move_id})",
            err=True,
        )
    emit_json(move.to_dict())
