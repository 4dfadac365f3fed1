"""The MLflow UI on the configured tracking store (``mlfactor ui``, ``make ui``).

With a database or sqlite store, ``mlflow ui`` is started on it (the same
store the pipelines log to, including ``.env`` values). An ``http(s)://``
tracking server already serves its own UI: there is nothing to start, only
an address to open.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from mlfactor.settings import Settings


@dataclass(frozen=True)
class UiCommand:
    """How to reach the UI: the address, and the command that serves it (None when a server already does)."""

    url: str
    argv: list[str] | None
    env: dict[str, str]


def ui_command(settings: Settings, *, host: str = "127.0.0.1", port: int = 5000) -> UiCommand:
    """Return the UI's address for ``settings``' store and, unless a server serves it, its command."""
    if settings.tracking_uri.startswith(("http://", "https://")):
        return UiCommand(settings.tracking_uri, None, {})
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        settings.tracking_uri,
        "--registry-store-uri",
        settings.registry_uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    # MLflow's GenAI job runner serves nothing mlfactor uses and slows the start (as in `make services`).
    env = settings.child_environment({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    return UiCommand(f"http://{host}:{port}", argv, env)
