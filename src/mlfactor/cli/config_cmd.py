"""``mlfactor config``: show the effective configuration, secrets masked."""

from __future__ import annotations

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import show_listing
from mlfactor.errors import ExitCode, exit_codes_help
from mlfactor.settings import VARIABLES


def docs_table() -> str:
    """The Markdown table of every variable: name, default, what it accepts, meaning (README)."""
    lines = ["| variable | default | accepts | meaning |", "|---|---|---|---|"]
    for var in VARIABLES:
        default = f"`{var.default_text}`" if var.default_text else ""
        secret = " Secret: masked in every dump and log." if var.secret else ""
        lines.append(f"| `{var.name}` | {default} | {var.expected} | {var.doc}{secret} |")
    return "\n".join(lines)


@click.command("config", epilog=exit_codes_help(ExitCode.OK, ExitCode.USAGE, ExitCode.CONFIG))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--docs", is_flag=True, help="Print the Markdown table of every variable (for the README).")
def config(as_json: bool, docs: bool) -> None:
    """Print every setting, its value (secrets masked) and where it came from.

    A table on a terminal, one JSON object otherwise. An invalid configuration
    exits 78 listing every bad variable.
    """
    if docs:
        click.echo(docs_table())
        return
    settings = start()
    dumped = settings.dump()
    sources = {name: settings.sources.get(name, "default") for name in dumped}
    show_listing(
        {name: {"value": value, "source": sources[name]} for name, value in dumped.items()},
        ("variable", "value", "source"),
        [(name, "" if value is None else str(value), sources[name]) for name, value in dumped.items()],
        as_json=as_json,
        empty="",
    )
