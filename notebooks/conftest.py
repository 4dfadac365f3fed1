"""Run the demo notebooks under nbval (``pytest --nbval-lax notebooks/``) against a throwaway store.

nbval starts each notebook's kernel in the setup of its first cell, with the
test process's environment. This hook points that environment at a temporary
sqlite tracking store and artifact folder for the duration of each setup only
(the kernel keeps its copy), so the notebooks never touch the project's own
``mlflow.db`` and no other test sees the change. The notebooks run in file
order: 01-train registers a version, 02-evaluate promotes it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
_store: dict[str, str] = {}


def _notebook_environment() -> dict[str, str]:
    if not _store:
        folder = Path(tempfile.mkdtemp(prefix="mlfactor-nbval-"))
        _store.update(
            {
                "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
                "MLFACTOR_ARTIFACT_ROOT": str(folder / "artifacts"),
                "MLFACTOR_PROJECT_DIR": str(PROJECT_DIR),
                "MLFACTOR_LOG_FORMAT": "json",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "BENTOML_DO_NOT_TRACK": "true",
                "MPLBACKEND": "Agg",
                "_MLFACTOR_NBVAL_FOLDER": str(folder),
            }
        )
    return _store


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Give kernels started during this setup the throwaway store's environment."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("MLFACTOR_", "MLFLOW_")):
            del os.environ[name]
    os.environ.update({k: v for k, v in _notebook_environment().items() if not k.startswith("_")})
    try:
        return (yield)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove the throwaway store."""
    folder = _store.get("_MLFACTOR_NBVAL_FOLDER")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
