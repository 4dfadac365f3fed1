"""Declaring a variable once: the field, its validation, its docs and its secrecy come from one place."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from mlfactor.variables import (
    BOOLEAN,
    Resolution,
    declared_variables,
    integer,
    read_variables,
    seconds,
    setting,
    text,
)


def _double(value: int | None, ctx: Resolution) -> int:
    return value if value is not None else 2 * int(ctx.values["base"])


@dataclass(frozen=True)
class Example:
    """A settings class declared the way Settings is."""

    token: str | None = setting("EXAMPLE_TOKEN", text("a token"), doc="An API token.", secret=True)
    base: int = setting("EXAMPLE_BASE", integer(1, 10), default=3, doc="A number.")
    derived: int = setting(
        "EXAMPLE_DERIVED", integer(0), doc="Twice EXAMPLE_BASE by default.", resolve=_double
    )
    wait: float = setting("EXAMPLE_WAIT", seconds(positive=True), default=1.5, doc="Seconds.")
    on: bool = setting("EXAMPLE_ON", BOOLEAN, default=False, doc="A switch.")
    extra: str = "not a variable"


VARIABLES = declared_variables(Example)


def test_one_declaration_gives_the_field_and_the_docs() -> None:
    """Each declared field is one variable (name, kind, default, doc) in field order; plain fields are not."""
    assert [v.name for v in VARIABLES] == [
        "EXAMPLE_TOKEN",
        "EXAMPLE_BASE",
        "EXAMPLE_DERIVED",
        "EXAMPLE_WAIT",
        "EXAMPLE_ON",
    ]
    assert [v.attr for v in VARIABLES] == [f.name for f in fields(Example)][:5]
    assert (VARIABLES[1].default_text, VARIABLES[1].expected) == ("3", "an integer 1-10")
    assert VARIABLES[3].expected == "a number of seconds > 0"


def test_values_are_converted_and_computed_defaults_resolved(tmp_path: Path) -> None:
    """Text becomes typed values; unset variables take their default or their computed one."""
    values, problems = read_variables(VARIABLES, {"EXAMPLE_BASE": "4", "EXAMPLE_ON": "yes"}, tmp_path)
    assert problems == {}
    assert Example(**values) == Example(token=None, base=4, derived=8, wait=1.5, on=True)


def test_every_problem_is_collected_and_secrets_never_shown(tmp_path: Path) -> None:
    """Four bad variables give four problems naming value and expectation; a secret's value is masked."""
    source = {"EXAMPLE_BASE": "11", "EXAMPLE_DERIVED": "x", "EXAMPLE_WAIT": "0", "EXAMPLE_ON": "maybe"}
    _, problems = read_variables(VARIABLES, source, tmp_path)
    assert problems == {
        "EXAMPLE_BASE": "got '11'; expected an integer 1-10.",
        "EXAMPLE_DERIVED": "got 'x'; expected an integer >= 0.",
        "EXAMPLE_WAIT": "got '0'; expected a number of seconds > 0.",
        "EXAMPLE_ON": "got 'maybe'; expected true or false.",
    }
    values, _ = read_variables(VARIABLES, {"EXAMPLE_TOKEN": "s3cr3t-value"}, tmp_path)
    assert VARIABLES[0].shown(values["token"]) == "***"


@pytest.mark.parametrize("raw", ["nan", "inf", "-1"], ids=str)
def test_seconds_refuse_what_is_not_a_duration(raw: str) -> None:
    """NaN, infinity and negatives are not a number of seconds."""
    with pytest.raises(ValueError, match=raw):
        seconds().convert(raw)
