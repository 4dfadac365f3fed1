"""Docs, --help, the Makefile and the code agree."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
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


def _imported_top_modules() -> dict[str, str]:
    """Top-level modules imported anywhere in mlfactor and service.py, with one file importing each."""
    found: dict[str, str] = {}
    for path in [*sorted((PROJECT / "src" / "mlfactor").rglob("*.py")), PROJECT / "service.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(PROJECT)))
    return found


def test_every_imported_package_is_a_declared_runtime_dependency() -> None:
    """Each third-party package the code imports is in pyproject's dependencies, not installed by chance."""
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]

    def names(specs: list[str]) -> set[str]:
        return {re.split(r"[\s<>=\[;]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}

    declared = names(project["dependencies"])
    # mlfactor.search imports the packages of the `search` extra (docs/search.md), nothing else does
    search = names(project["optional-dependencies"]["search"])
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, where in _imported_top_modules().items():
        if module in sys.stdlib_module_names or module == "mlfactor":
            continue
        found = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        allowed = declared | search if where.startswith("src/mlfactor/search/") else declared
        if not found & allowed:
            undeclared[module] = where
    assert undeclared == {}, "declare these in pyproject.toml [project] dependencies"
