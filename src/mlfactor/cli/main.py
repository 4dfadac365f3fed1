"""The root ``mlfactor`` group, with lazily imported sub-commands."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from mlfactor.cli.common import run_cli
from mlfactor.names import did_you_mean
from mlfactor.version import mlfactor_version

# command name -> "module:attribute"; one line per command, in help order.
COMMANDS: dict[str, str] = {
    "config": "mlfactor.cli.config_cmd:config",
    "lab": "mlfactor.cli.lab_cmd:lab",
    "run": "mlfactor.cli.pipeline_cmd:run",
    "validate": "mlfactor.cli.pipeline_cmd:validate",
    "promote": "mlfactor.cli.registry_cmd:promote",
    "rollback": "mlfactor.cli.registry_cmd:rollback",
    "history": "mlfactor.cli.registry_cmd:history",
    "build": "mlfactor.cli.release_cmd:build",
    "release": "mlfactor.cli.release_cmd:release",
    "releases": "mlfactor.cli.release_cmd:releases",
    "admin": "mlfactor.cli.admin_cmd:admin",
    "serve": "mlfactor.cli.serve_cmd:serve",
    "deploy": "mlfactor.cli.deploy_cmd:deploy",
    "services": "mlfactor.cli.services_cmd:services",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, with "did you mean" for typos."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, in help order, without importing any."""
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the command's module on first use."""
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Fail with a "did you mean" hint for an unknown command name."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            ctx.fail(f"No such command {name!r}.{did_you_mean(name, COMMANDS)}")
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(mlfactor_version(), prog_name="mlfactor")
def cli() -> None:
    """Twelve-factor notebooks, models and services.

    Configuration comes only from the environment (and a .env file for local
    work); `mlfactor config` shows it. Exit codes: 0 ok, 1 step failed,
    2 usage, 3 step timeout, 4 kernel died, 65 invalid input, 66 not found,
    69 backing service unavailable, 75 try again (lock held),
    78 configuration error, 130/143 interrupted.
    """


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: run the CLI and exit with mlfactor's exit codes."""
    sys.exit(run_cli(cli, argv))
