"""Build the JupyterLab command line for a project, with the pipeline kernels' environment."""

from __future__ import annotations

import os
from collections.abc import Sequence

from mlfactor.kernel_setup import INLINE_BACKEND
from mlfactor.settings import Settings


def lab_command(
    settings: Settings,
    python: str,
    *,
    port: int = 8888,
    open_browser: bool = True,
    extra: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """Return the argv and environment that start JupyterLab on the project's notebooks.

    The environment is :meth:`Settings.child_environment`, the same one the
    pipeline runner hands to kernels (inline matplotlib backend included):
    JupyterLab's kernels inherit it.
    """
    argv = [
        python,
        "-m",
        "jupyter",
        "lab",
        f"--notebook-dir={settings.project_dir}",
        "--ip=127.0.0.1",
        f"--port={port}",
    ]
    if not open_browser:
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")  # containers and CI run as root; JupyterLab refuses without it
    argv += list(extra)
    env = settings.child_environment()
    env["MPLBACKEND"] = INLINE_BACKEND  # figures render in the notebook whatever the shell exported
    return argv, env
