"""What commands print: JSON results on stdout, and listings as a table on a terminal.

Every listing (``history``, ``releases``, a sweep's ranking, ``config``) is
rendered by :func:`render_table` and shown by :func:`show_listing`: a table
for a person at a terminal, one JSON document for a pipe or ``--json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import click

Row = Sequence[str]


def emit_json(data: object) -> None:
    """Print ``data`` as one JSON line on stdout (command results, not log events)."""
    click.echo(json.dumps(data, default=str, sort_keys=False))


def render_table(header: Row, rows: Sequence[Row]) -> str:
    """Left-aligned columns two spaces apart, trailing blanks trimmed; the header is the first line."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def wants_json(as_json: bool) -> bool:
    """True when output goes to a program: ``--json`` given or stdout is not a terminal."""
    return as_json or not sys.stdout.isatty()


def show_listing(data: object, header: Row, rows: Sequence[Row], *, as_json: bool, empty: str) -> None:
    """Print ``data`` as JSON for programs, else ``rows`` as a table (or ``empty`` when there are none)."""
    if wants_json(as_json):
        emit_json(data)
    elif not rows:
        click.echo(empty)
    else:
        click.echo(render_table(header, rows))


def short_time(iso: str) -> str:
    """``2026-11-26 10:15:00`` from an ISO timestamp, for table cells."""
    return iso[:19].replace("T", " ")
