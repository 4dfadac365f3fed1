"""``mlfactor config``: show the effective configuration, secrets masked."""

from __future__ import annotations

import json
import sys

import click

from mlfactor.cli.common import start
from mlfactor.settings import VARIABLES


def docs_table() -> str:
    """The Markdown table of every variable: name, default, what it accepts, meaning (README)."""
    lines = ["| variable | default | accepts | meaning |", "|---|---|---|---|"]
    for var in VARIABLES:
        default = f"`{var.default_text}`" if var.default_text else ""
        secret = " Secret: masked in every dump and log." if var.secret else ""
        lines.append(f"| `{var.name}` | {default} | {var.expected} | {var.doc}{secret} |")
    return "\n".join(lines)


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--docs", is_flag=True, help="Print the Markdown table of every variable (for the README).")
def config(as_json: bool, docs: bool) -> None:
    """Print every setting, its value (secrets masked) and where it came from.

    Exits 78 and lists every bad variable when the configuration is invalid.
    """
    if docs:
        click.echo(docs_table())
        return
    settings = start()
    dumped = settings.dump()
    if as_json or not sys.stdout.isatty():
        click.echo(
            json.dumps(
                {
                    name: {"value": value, "source": settings.sources.get(name, "default")}
                    for name, value in dumped.items()
                },
                default=str,
            )
        )
        return
    width = max(len(name) for name in dumped)
    for name, value in dumped.items():
        source = settings.sources.get(name, "default")
        click.echo(f"{name:<{width}}  {'' if value is None else value}  ({source})")
