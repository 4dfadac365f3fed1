"""``mlfactor lab``: JupyterLab with the project's kernel and the same configuration."""

from __future__ import annotations

import importlib.util
import os
import sys

import click

from mlfactor.cli.common import start
from mlfactor.errors import ExitCode, NotFoundError, exit_codes_help
from mlfactor.lab import lab_command


@click.command(
    "lab",
    context_settings={"ignore_unknown_options": True},
    epilog=exit_codes_help(
        ExitCode.USAGE,
        ExitCode.NOT_FOUND,
        ExitCode.CONFIG,
        said={ExitCode.NOT_FOUND: "JupyterLab not installed"},
    )
    + " Otherwise JupyterLab's own exit code.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8888,
    show_default=True,
    help="Port JupyterLab listens on.",
)
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
def lab(port: int, no_browser: bool, jupyter_args: tuple[str, ...]) -> None:
    """Serve JupyterLab on the project folder with the pipelines' settings.

    JupyterLab runs on http://127.0.0.1:PORT with the project folder as its
    root (notebooks/, pipelines/). Its kernels get the environment pipeline
    kernels get (tracking store, .env values), so a notebook behaves the same
    interactively and scheduled. Extra arguments go to `jupyter lab`.
    """
    settings = start()
    if importlib.util.find_spec("jupyterlab") is None:
        raise NotFoundError(
            "JupyterLab is not installed here: it is a development tool, left out of the runtime image. "
            "Install the development environment with `make install` (or `pip install jupyterlab`)."
        )
    argv, env = lab_command(
        settings, sys.executable, port=port, open_browser=not no_browser, extra=jupyter_args
    )
    os.execve(argv[0], argv, env)  # noqa: S606 - replace this process so signals reach JupyterLab
