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

from mlfactor.settings import sandbox_environment

PROJECT_DIR = Path(__file__).resolve().parents[1]
_folder: list[Path] = []


def _store_folder() -> Path:
    """The throwaway store's folder, made once for the session."""
    if not _folder:
        _folder.append(Path(tempfile.mkdtemp(prefix="mlfactor-nbval-")))
    return _folder[0]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Give kernels started during this setup the throwaway store's environment."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(sandbox_environment(_store_folder(), PROJECT_DIR, saved))
    try:
        return (yield)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove the throwaway store."""
    for folder in _folder:
        shutil.rmtree(folder, ignore_errors=True)
