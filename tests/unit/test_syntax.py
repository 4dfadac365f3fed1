"""The one parser per value syntax: durations, Kubernetes quantities, weight lists, and their click types."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from mlfactor.cli.types import DURATION, QUANTITY, DurationType
from mlfactor.syntax import format_weights, parse_duration, parse_quantity, parse_weights


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("1.5h", 5400.0),
        ("30d", 30 * 86400.0),
        ("2w", 1_209_600.0),
        (" 12 H ", 43200.0),
        ("0s", 0.0),
    ],
    ids=["int", "float", "bare-text", "seconds", "minutes", "hours", "days", "weeks", "spaces-upper", "zero"],
)
def test_durations_parse_to_seconds(value: object, seconds: float) -> None:
    """A number is seconds; a number with one unit of s, m, h, d or w is scaled."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [True, -1, "d30", "30 days", "-1d", "", "1y"],
    ids=["bool", "negative", "unit-first", "word", "neg-text", "empty", "unknown-unit"],
)
def test_bad_durations_name_the_value_and_the_syntax(value: object) -> None:
    """Anything else is refused with the value and examples of the syntax."""
    with pytest.raises(
        ValueError, match=r"is not a duration; expected .*e\.g\. 90s, 10m, 1\.5h, 30d"
    ) as info:
        parse_duration(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("text", ["500m", "1", "1.5", "2Gi", "512Mi", "1k"], ids=str)
def test_quantities_are_kept(text: str) -> None:
    """Kubernetes quantities pass through unchanged."""
    assert parse_quantity(text) == text


@pytest.mark.parametrize(
    "text", ["", "1 GB", "1gb", "-1", "lots"], ids=["empty", "space", "lower-unit", "negative", "word"]
)
def test_bad_quantities_are_refused(text: str) -> None:
    """Anything that is not a quantity is refused with examples."""
    with pytest.raises(ValueError, match=r"is not a quantity; expected a Kubernetes quantity such as 500m"):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ()),
        ("champion=90,challenger=10", (("champion", 90), ("challenger", 10))),
        (" 3 = 1 ", (("3", 1),)),
    ],
    ids=["empty", "two-aliases", "version-with-spaces"],
)
def test_weights_parse_into_pairs(raw: str, expected: tuple[tuple[str, int], ...]) -> None:
    """Weight lists parse into (ref, weight) pairs, and format back."""
    assert parse_weights(raw) == expected
    assert parse_weights(format_weights(expected)) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("champion", "is not REF=WEIGHT"),
        ("a=x", "is not REF=WEIGHT"),
        ("=5", "is not REF=WEIGHT"),
        ("a=1,a=2", "named twice"),
        ("a=0", "add up to 0"),
    ],
    ids=["no-weight", "nan", "no-ref", "dup", "zero"],
)
def test_bad_weights_say_why(raw: str, message: str) -> None:
    """Malformed weight lists raise ValueError with the reason."""
    with pytest.raises(ValueError, match=message):
        parse_weights(raw)


def test_weights_may_be_restricted_to_known_refs() -> None:
    """With the loaded variants given, an unknown ref is refused naming the loaded ones."""
    assert parse_weights("champion=50,challenger=50", ["champion", "challenger"]) == (
        ("champion", 50),
        ("challenger", 50),
    )
    with pytest.raises(ValueError, match=r"'other' is not a loaded variant \(loaded: champion, challenger\)"):
        parse_weights("champion=50,other=50", ["champion", "challenger"])


@click.command()
@click.option("--older-than", type=DURATION, default="30d")
@click.option("--memory", type=QUANTITY, default="1Gi")
@click.option("--timeout", type=DurationType(minimum=1), default=10)
def _probe(older_than: float, memory: str, timeout: float) -> None:
    click.echo(f"{older_than} {memory} {timeout}")


def test_click_types_convert_defaults_and_values() -> None:
    """The option types give seconds and checked quantities, defaults included."""
    assert CliRunner().invoke(_probe, []).output == "2592000.0 1Gi 10.0\n"
    assert (
        CliRunner().invoke(_probe, ["--older-than", "2h", "--memory", "512Mi"]).output
        == "7200.0 512Mi 10.0\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "30 days"], "Invalid value for '--older-than': '30 days' is not a duration"),
        (["--memory", "1gb"], "Invalid value for '--memory': '1gb' is not a quantity"),
        (["--timeout", "0.5"], "Invalid value for '--timeout': '0.5' is shorter than 1 seconds"),
    ],
    ids=["duration", "quantity", "below-minimum"],
)
def test_click_types_make_bad_values_usage_errors(args: list[str], message: str) -> None:
    """A bad value exits 2 (usage) with click's message naming the option and the value."""
    result = CliRunner().invoke(_probe, args)
    assert result.exit_code == 2
    assert message in result.output
