"""``mlfactor promote``, ``rollback`` and ``history``: move aliases with a recorded history."""

from __future__ import annotations

import sys

import click

from mlfactor.cli.common import emit_json, start
from mlfactor.lifecycle import AliasMove, alias_history, promote_model, rollback_model
from mlfactor.tracking import connect

ALIAS_HELP = "Alias to move (champion, challenger, ...)."


@click.command("promote")
@click.argument("model")
@click.argument("version")
@click.option("--alias", default="champion", show_default=True, help=ALIAS_HELP)
@click.option("--reason", default=None, help="Why: recorded with the move and shown by `mlfactor history`.")
@click.option("--pipeline-run-id", default=None, help="MLflow run of the pipeline that decided the move.")
@click.option("--new-alias", is_flag=True, help="Create an alias even if its name looks like a typo.")
def promote(
    *, model: str, version: str, alias: str, reason: str | None, pipeline_run_id: str | None, new_alias: bool
) -> None:
    """Point ALIAS of registered MODEL at VERSION and record the move in the registry.

    Idempotent: promoting the version the alias already points at records
    nothing. Exits 66 when the model or version does not exist, 65 when the
    version is not READY or the alias name is invalid.
    """
    settings = start()
    client = connect(settings)
    move = promote_model(
        client,
        model,
        version,
        alias=alias,
        reason=reason,
        pipeline_run_id=pipeline_run_id,
        allow_new_alias=new_alias,
    )
    _report(move)


@click.command("rollback")
@click.argument("model")
@click.option("--alias", default="champion", show_default=True, help=ALIAS_HELP)
@click.option("--reason", default=None, help="Why: recorded with the move.")
def rollback(model: str, alias: str, reason: str | None) -> None:
    """Move ALIAS of MODEL back to the version it held before its last promotion.

    Each rollback undoes one more promotion. Exits 66 when there is nothing to
    roll back to (then promote a version explicitly).
    """
    settings = start()
    client = connect(settings)
    _report(rollback_model(client, model, alias=alias, reason=reason))


@click.command("history")
@click.argument("model")
@click.option("--alias", default=None, help="Only this alias (default: every alias).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON even on a terminal.")
def history(model: str, alias: str | None, as_json: bool) -> None:
    """List the recorded alias moves of MODEL, newest first.

    A table on a terminal, one JSON array otherwise.
    """
    settings = start()
    client = connect(settings)
    moves = alias_history(client, model, alias)
    if as_json or not sys.stdout.isatty():
        emit_json([m.to_dict() for m in moves])
        return
    if not moves:
        click.echo(f"no recorded alias moves for {model!r}")
        return
    header = ("#", "when", "alias", "from", "to", "kind", "who", "reason", "pipeline run")
    rows = [
        (
            str(m.seq),
            m.when[:19].replace("T", " "),
            m.alias,
            m.from_version or "-",
            m.to_version,
            m.kind,
            m.who,
            m.reason or "",
            m.pipeline_run_id or "",
        )
        for m in moves
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


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
