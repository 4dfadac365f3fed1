"""Declaring an environment variable once: its name, type, default, meaning and secrecy.

Like MLflow's ``mlflow/environment_variables.py``, every variable mlfactor reads
is one typed object. :func:`setting` declares it *as a field* of
:class:`~mlfactor.settings.Settings`, so the field, its validation and the
README's configuration table (``mlfactor config --docs``) all come from that
one declaration. A :class:`Kind` converts the text of a variable and says what
it expects; :func:`read_variables` reads every declared variable from a mapping
and collects every problem instead of stopping at the first (environs'
``eager=False`` then ``seal()``).

An empty value means "unset": the default applies.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from mlfactor.masking import is_secret_name, mask_value
from mlfactor.syntax import WEIGHTS_SYNTAX, format_weights, parse_weights

T = TypeVar("T")
_META = "mlfactor.variable"
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


@dataclass(frozen=True)
class Kind(Generic[T]):
    """How a variable's text becomes a value: ``convert`` raises ValueError; ``expected`` says what fits."""

    expected: str
    convert: Callable[[str], T]
    show: Callable[[T], object] = lambda value: value
    explains: bool = False  # the ValueError's message says why (weights), beyond "not valid"


def text(expected: str) -> Kind[str]:
    """Any text (``expected`` describes it for the docs and errors, e.g. "a URI")."""
    return Kind(expected, str)


def choice(*options: str) -> Kind[str]:
    """One of ``options``, compared case-sensitively."""

    def convert(raw: str) -> str:
        if raw not in options:
            raise ValueError(raw)
        return raw

    return Kind(f"one of {', '.join(options)}", convert)


def integer(minimum: int, maximum: int | None = None, *, noun: str = "an integer") -> Kind[int]:
    """A whole number in ``[minimum, maximum]``."""
    expected = f"{noun} >= {minimum}" if maximum is None else f"{noun} {minimum}-{maximum}"

    def convert(raw: str) -> int:
        value = int(raw.strip())
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError(raw)
        return value

    return Kind(expected, convert)


def seconds(*, positive: bool = False) -> Kind[float]:
    """A number of seconds, ``> 0`` when ``positive`` else ``>= 0``."""

    def convert(raw: str) -> float:
        value = float(raw.strip())
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise ValueError(raw)
        return value

    return Kind(f"a number of seconds {'> 0' if positive else '>= 0'}", convert)


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered not in _TRUE | _FALSE:
        raise ValueError(raw)
    return lowered in _TRUE


def _log_level(raw: str) -> int:
    name = raw.strip().upper()
    if name not in LOG_LEVEL_NAMES:
        raise ValueError(raw)
    return logging.getLevelNamesMapping()[name]


LOG_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _rate(raw: str) -> float:
    if raw.strip().lower() in _TRUE | _FALSE:
        return 1.0 if _boolean(raw) else 0.0
    value = float(raw)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise ValueError(raw)
    return value


BOOLEAN: Kind[bool] = Kind("true or false", _boolean)
RATE: Kind[float] = Kind("a share from 0 to 1 (true means 1, false 0)", _rate)
PATH: Kind[Path] = Kind("a path", Path, str)
LOG_LEVEL: Kind[int] = Kind(f"one of {', '.join(LOG_LEVEL_NAMES)}", _log_level, logging.getLevelName)
WEIGHTS: Kind[tuple[tuple[str, int], ...]] = Kind(
    WEIGHTS_SYNTAX, parse_weights, format_weights, explains=True
)


@dataclass(frozen=True)
class Resolution:
    """What a computed default may depend on: the project folder and the values resolved so far."""

    project_dir: Path
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable mlfactor reads, declared by :func:`setting` on a Settings field."""

    name: str
    kind: Kind[T]
    default: T | None
    doc: str
    secret: bool = False
    shown_default: str | None = None
    resolve: Callable[[T | None, Resolution], T] | None = None
    machine_local: bool = False
    attr: str = ""

    @property
    def expected(self) -> str:
        """What a valid value looks like, for errors and docs."""
        return self.kind.expected

    @property
    def default_text(self) -> str:
        """The default as the docs show it (computed defaults described in words)."""
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None or self.default == "":
            return ""
        return str(self.kind.show(self.default))

    def shown(self, value: T | None) -> object:
        """``value`` as ``mlfactor config`` prints it: rendered by the kind, masked when secret."""
        rendered = None if value is None else self.kind.show(value)
        if self.secret and rendered is not None:
            return "***"
        return mask_value(self.name, rendered)


def setting(
    name: str,
    kind: Kind[T],
    *,
    default: T | None = None,
    doc: str,
    secret: bool = False,
    shown_default: str | None = None,
    resolve: Callable[[T | None, Resolution], T] | None = None,
    machine_local: bool = False,
) -> Any:
    """Declare a Settings field read from variable ``name``.

    ``resolve`` computes the field from the converted value (None when unset)
    once every variable is read: defaults that depend on the project folder or
    on another variable. ``machine_local`` marks a default computed from this
    machine (a path in the project folder): a release never records it.
    """
    variable = Variable(name, kind, default, doc, secret, shown_default, resolve, machine_local)
    return field(metadata={_META: variable})


def declared_variables(settings_class: type) -> tuple[Variable[Any], ...]:
    """Every variable declared on ``settings_class``, in field (documentation) order."""
    found: list[Variable[Any]] = []
    for item in fields(settings_class):
        variable = item.metadata.get(_META)
        if isinstance(variable, Variable):
            found.append(_named(variable, item))
    return tuple(found)


def _named(variable: Variable[Any], item: Field[Any]) -> Variable[Any]:
    return Variable(**{**variable.__dict__, "attr": item.name})


def read_variables(
    variables: Sequence[Variable[Any]], source: Mapping[str, str], project_dir: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return ``(values by field name, problems by variable name)``; every bad variable is a problem."""
    converted: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for var in variables:
        raw = source.get(var.name, "")
        if raw == "":
            converted[var.attr] = var.default
            continue
        try:
            converted[var.attr] = var.kind.convert(raw)
        except ValueError as exc:
            shown = "***" if var.secret or is_secret_name(var.name) else mask_value(var.name, raw)
            reason = f" ({exc})" if var.kind.explains else ""
            problems[var.name] = f"got {shown!r}; expected {var.expected}{reason}."
            converted[var.attr] = var.default
    values = dict(converted)
    context = Resolution(project_dir, values)
    for var in variables:
        if var.resolve is not None:
            values[var.attr] = var.resolve(converted[var.attr], context)
    return values, problems
