"""Docs, --help, the Makefile and the code agree."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from mlfactor.cli.main import COMMANDS, cli
from mlfactor.settings import VARIABLES

PROJECT = Path(__file__).resolve().parents[2]
README = (PROJECT / "README.md").read_text()
MAKEFILE = (PROJECT / "Makefile").read_text()


def _config_table() -> str:
    start = README.index("<!-- BEGIN CONFIG TABLE")
    start = README.index("\n", start) + 1
    return README[start : README.index("<!-- END CONFIG TABLE -->")].strip()


def test_readme_configuration_table_matches_the_code() -> None:
    """The README's configuration table is exactly what `mlfactor config --docs` prints."""
    printed = CliRunner().invoke(cli, ["config", "--docs"]).output.strip()
    assert _config_table() == printed, "regenerate the table with `mlfactor config --docs`"
    for var in VARIABLES:
        assert f"`{var.name}`" in printed


def test_every_command_is_documented_in_the_readme() -> None:
    """Each mlfactor command appears in the README as `mlfactor NAME`."""
    missing = [name for name in COMMANDS if f"mlfactor {name}" not in README]
    assert missing == []


def test_every_readme_make_target_exists_with_a_help_line() -> None:
    """Each `make X` the README mentions is a Makefile target with a `## description`."""
    documented = set(re.findall(r"`make ([a-z-]+)", README))
    targets = set(re.findall(r"^([a-z-]+):.*?## ", MAKEFILE, flags=re.MULTILINE))
    assert documented, "the README names no make targets"
    assert documented - targets == set()


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run calls `make test`, the README's test command."""
    assert "make test" in README
    assert "make test" in (PROJECT / ".ci" / "run").read_text()


def test_every_command_has_help() -> None:
    """`mlfactor COMMAND --help` works for every registered command."""
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        assert "Usage:" in result.output
