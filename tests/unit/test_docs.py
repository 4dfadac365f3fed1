"""Docs, --help, the Makefile and the code agree."""

from __future__ import annotations

import re
from pathlib import Path

import click
from click.testing import CliRunner

from mlfactor.cli.main import COMMANDS, cli
from mlfactor.deploy.manifests import NON_RETRYABLE
from mlfactor.errors import exit_codes_markdown, non_retryable_exit_codes
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


def _section(begin: str, end: str) -> str:
    start = README.index(begin)
    start = README.index("\n", start) + 1
    return README[start : README.index(end)].strip()


def test_readme_exit_codes_are_the_code_s_table() -> None:
    """The README's exit-code table is generated from errors.EXIT_CODES, which --help and Kubernetes read."""
    shown = _section("<!-- BEGIN EXIT CODES", "<!-- END EXIT CODES -->")
    assert shown == exit_codes_markdown(), "regenerate it from mlfactor.errors.exit_codes_markdown()"


def test_kubernetes_fails_at_once_exactly_on_the_codes_a_retry_cannot_fix() -> None:
    """The Jobs' podFailurePolicy lists the table's non-retryable codes: failures, not outages or signals."""
    assert NON_RETRYABLE == non_retryable_exit_codes() == (1, 2, 3, 65, 66, 78)


def test_root_help_lists_each_command_with_its_own_summary() -> None:
    """`mlfactor --help` (which imports no command) shows the first line of each command's own help."""
    for name, entry in COMMANDS.items():
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        assert command.get_short_help_str(limit=200) == entry.summary, name
