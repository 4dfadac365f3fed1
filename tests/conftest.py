"""Fixtures shared by every test: isolated stores and a registered demo model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlfactor.log import reset_logging
from mlfactor.settings import Settings, load_settings, sandbox_environment

PROJECT_DIR = Path(__file__).resolve().parents[1]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist each test module runs whole in one worker, and the demo notebooks share one.

    Module-scoped fixtures (a served process, a trained store) are then built once, not once per
    worker; 02-evaluate promotes what 01-train registered in the same worker's store.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "notebooks" if path.startswith("notebooks/") else path

    return ModuleScheduling(config, log)


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    """Every test starts and ends with logging as the interpreter had it (structlog's reset_defaults)."""
    reset_logging()
    yield
    reset_logging()


def store_environment(folder: Path) -> dict[str, str]:
    """Environment pointing mlfactor at an sqlite store and artifact folder inside ``folder``."""
    return sandbox_environment(folder, PROJECT_DIR, os.environ)


@pytest.fixture
def store_env(tmp_path: Path) -> dict[str, str]:
    """A fresh, empty sqlite tracking store for one test, as an environment mapping."""
    return store_environment(tmp_path)


@dataclass(frozen=True)
class RegisteredModel:
    """A demo model registered in a session-wide store, with the environment that reaches it."""

    env: dict[str, str]
    settings: Settings
    name: str
    version: str
    run_id: str


def register_demo_model(
    env: dict[str, str], name: str = "iris-classifier", alias: str = "champion", C: float = 1.0
) -> RegisteredModel:
    """Train a small iris classifier, log and register it, and point ``alias`` at it."""
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from mlfactor.modeling import log_sklearn_model
    from mlfactor.registry import set_alias
    from mlfactor.tracking import connect, ensure_experiment

    settings = load_settings(env)
    client = connect(settings)
    experiment_id = ensure_experiment(client, "tests", settings)
    frame = load_iris(as_frame=True).frame
    features = frame.drop(columns=["target"])
    features.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in features.columns]
    model = LogisticRegression(C=C, max_iter=500).fit(features, frame["target"])
    with mlflow.start_run(experiment_id=experiment_id) as run:
        logged = log_sklearn_model(model, features, registered_name=name, client=client)
    assert logged.version is not None
    set_alias(client, name, alias, logged.version)
    return RegisteredModel(env, settings, name, logged.version, run.info.run_id)


@pytest.fixture(scope="session")
def registered_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegisteredModel]:
    """An iris classifier registered as ``iris-classifier@champion`` in a session store."""
    folder = tmp_path_factory.mktemp("registry")
    yield register_demo_model(store_environment(folder))


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Run `make services` for the session: mlflow server on a fresh PostgreSQL database.

    Declared here so every module shares one server; the body is in tests/integration/backends.py.
    """
    from backends import tracking_server_session

    yield from tracking_server_session(tmp_path_factory)
