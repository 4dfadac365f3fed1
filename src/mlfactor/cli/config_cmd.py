"""``mlfactor config``: show the effective configuration, secrets masked."""

from __future__ import annotations

import json
import sys

import click

from mlfactor.cli.common import start
from mlfactor.settings import VARIABLES


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--docs", is_flag=True, help="Print the Markdown table of every variable (for the README).")
def config(as_json: bool, docs: bool) -> None:
    """Print every setting, its value (secrets masked) and where it came from.

    Exits 78 and lists every bad variable when the configuration is invalid.
    """
    if docs:
        click.echo("| variable | default | meaning |\n|---|---|---|")
        for var in VARIABLES:
            default = f"`{var.default_text}`" if var.default_text else ""
            click.echo(f"| `{var.name}` | {default} | {var.doc} |")
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
