"""The root ``mlfactor`` group, with lazily imported sub-commands.

``mlfactor --help`` lists every command from :data:`COMMANDS` without
importing any of them; a command's module (and whatever heavy library it
needs) is imported only when that command runs or shows its own help.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any

import click

from mlfactor.cli.common import run_cli
from mlfactor.errors import EXIT_CODES, exit_codes_help
from mlfactor.names import did_you_mean


@dataclass(frozen=True)
class CommandEntry:
    """Where a command lives (``module:attribute``) and the one line ``mlfactor --help`` shows for it."""

    target: str
    summary: str


# One line per command, in help order; a test checks each summary is the command's own first line.
COMMANDS: dict[str, CommandEntry] = {
    "config": CommandEntry(
        "mlfactor.cli.config_cmd:config",
        "Print every setting, its value (secrets masked) and where it came from.",
    ),
    "lab": CommandEntry(
        "mlfactor.cli.lab_cmd:lab",
        "Serve JupyterLab on the project folder with the pipelines' settings.",
    ),
    "ui": CommandEntry("mlfactor.cli.ui_cmd:ui", "Open the MLflow UI on the configured tracking store."),
    "run": CommandEntry("mlfactor.cli.pipeline_cmd:run", "Run the pipeline file PIPELINE, or a sweep of it."),
    "validate": CommandEntry(
        "mlfactor.cli.validate_cmd:validate", "Check pipeline files without running anything."
    ),
    "promote": CommandEntry(
        "mlfactor.cli.registry_cmd:promote", "Point ALIAS of registered MODEL at VERSION and record the move."
    ),
    "rollback": CommandEntry(
        "mlfactor.cli.registry_cmd:rollback", "Move ALIAS of MODEL back to the version it held before."
    ),
    "history": CommandEntry("mlfactor.cli.registry_cmd:history", "List the recorded alias moves of MODEL."),
    "reproduce": CommandEntry(
        "mlfactor.cli.reproduce_cmd:reproduce", "Rebuild a registered version from its lineage and compare."
    ),
    "build": CommandEntry(
        "mlfactor.cli.release_cmd:build", "Build a Bento carrying one concrete model version."
    ),
    "release": CommandEntry(
        "mlfactor.cli.release_cmd:release", "Record an immutable release: BENTO_TAG plus a configuration."
    ),
    "releases": CommandEntry("mlfactor.cli.release_cmd:releases", "List releases, newest first."),
    "admin": CommandEntry(
        "mlfactor.cli.admin_cmd:admin", "Run a one-off admin job: batch-score, gc, db-upgrade."
    ),
    "serve": CommandEntry("mlfactor.cli.serve_cmd:serve", "Serve the registered model over HTTP."),
    "deploy": CommandEntry(
        "mlfactor.cli.deploy_cmd:deploy",
        "Hand a release to Kubernetes: render its manifests (no cluster or Docker needed).",
    ),
    "services": CommandEntry(
        "mlfactor.cli.services_cmd:services",
        "Run the local production-like stack: mlflow server + PostgreSQL.",
    ),
    "monitor": CommandEntry(
        "mlfactor.cli.monitor_cmd:monitor", "Compare live traffic with the training data: drift."
    ),
    "experiment": CommandEntry(
        "mlfactor.cli.monitor_cmd:experiment", "Analyse an A/B experiment between variants from its events."
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, with "did you mean" for typos."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, in help order, without importing any."""
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the command's module on first use."""
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, _, attr = entry.target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with their summaries from :data:`COMMANDS` (nothing is imported)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry.summary) for name, entry in COMMANDS.items()])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Fail with a "did you mean" hint for an unknown command name."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            ctx.fail(f"No such command {name!r}.{did_you_mean(name, COMMANDS)}")
        return super().resolve_command(ctx, args)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=exit_codes_help(*EXIT_CODES),
)
@click.version_option(package_name="mlfactor", prog_name="mlfactor")
def cli() -> None:
    """Twelve-factor notebooks, models and services.

    Configuration comes only from the environment (and a .env file for local
    work); `mlfactor config` shows it. Each command's --help lists the exit
    codes it uses.
    """


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: run the CLI and exit with mlfactor's exit codes."""
    sys.exit(run_cli(cli, argv))
