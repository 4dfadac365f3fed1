"""Click parameter types for mlfactor's value syntaxes: a bad value is a usage error (exit 2).

Each type converts with the one parser of :mod:`mlfactor.syntax`, so an option
accepts exactly what a pipeline file or a variable accepts, and click reports a
bad value as ``Invalid value for '--older-than': ...`` before the command runs.
"""

from __future__ import annotations

import click

from mlfactor.syntax import parse_duration, parse_quantity


class DurationType(click.ParamType[float, object]):
    """A duration (``90``, ``90s``, ``10m``, ``1.5h``, ``30d``, ``2w``) converted to seconds."""

    name = "duration"

    def __init__(self, *, minimum: float = 0.0) -> None:
        self.minimum = minimum

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """Return the seconds of ``value``; fail (exit 2) naming the value and the syntax."""
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds < self.minimum:
            self.fail(f"{value!r} is shorter than {self.minimum:g} seconds", param, ctx)
        return seconds


class QuantityType(click.ParamType[str, object]):
    """A Kubernetes resource quantity (``500m``, ``1``, ``1Gi``), checked and kept as text."""

    name = "quantity"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """Return ``value`` when it is a quantity; fail (exit 2) naming the value and the syntax."""
        try:
            return parse_quantity(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationType()
QUANTITY = QuantityType()
