"""Registry helpers against a real sqlite MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RegisteredModel, register_demo_model, store_environment

from mlfactor.errors import BackingServiceError, NotFoundError, ValidationError
from mlfactor.registry import alias_version, parse_model_uri, resolve_model
from mlfactor.settings import load_settings
from mlfactor.tracking import connect, ensure_experiment, git_info


def test_resolve_alias_gives_a_concrete_version(registered_model: RegisteredModel) -> None:
    """models:/name@champion resolves to the registered version, its run and a pinned URI."""
    client = connect(registered_model.settings)
    resolved = resolve_model(client, "models:/iris-classifier@champion")
    assert resolved.version == registered_model.version
    assert resolved.run_id == registered_model.run_id
    assert resolved.uri == f"models:/iris-classifier/{registered_model.version}"
    assert resolved.status == "READY"


def test_misspelt_model_and_alias_get_suggestions(registered_model: RegisteredModel) -> None:
    """A typo in the model name or alias is a NotFoundError naming the close match."""
    client = connect(registered_model.settings)
    with pytest.raises(NotFoundError, match="Did you mean 'iris-classifier'"):
        resolve_model(client, "models:/iris-clasifier@champion")
    with pytest.raises(NotFoundError, match="Did you mean 'champion'"):
        resolve_model(client, "models:/iris-classifier@champoin")
    with pytest.raises(NotFoundError, match="no version 99"):
        resolve_model(client, "models:/iris-classifier/99")


def test_malformed_model_uri_is_rejected() -> None:
    """A URI that is not models:/NAME@ALIAS or models:/NAME/VERSION is a ValidationError."""
    with pytest.raises(ValidationError, match="models:/NAME@ALIAS"):
        parse_model_uri("runs:/abc/model")


def test_registered_version_carries_the_git_commit(tmp_path: Path) -> None:
    """A model registered from a run tagged with the git commit carries it on the version."""
    import mlflow

    from mlfactor.modeling import log_sklearn_model

    env = store_environment(tmp_path)
    settings = load_settings(env)
    client = connect(settings)
    info = git_info(Path(__file__))
    experiment_id = ensure_experiment(client, "git", settings)
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True, as_frame=True)
    with mlflow.start_run(experiment_id=experiment_id, tags=info.tags()):
        logged = log_sklearn_model(DecisionTreeClassifier(max_depth=2).fit(x, y), x, registered_name="tree")
    resolved = resolve_model(client, f"models:/tree/{logged.version}")
    assert resolved.git_commit == info.commit
    assert info.commit is None or len(info.commit) == 40


def test_second_registration_moves_alias_only_when_asked(tmp_path: Path) -> None:
    """Registering a new version leaves the alias on the old one until it is moved."""
    env = store_environment(tmp_path)
    first = register_demo_model(env)
    client = connect(first.settings)
    assert alias_version(client, "iris-classifier", "champion") == first.version
    second = register_demo_model(env, alias="challenger", C=0.5)
    assert int(second.version) == int(first.version) + 1
    assert alias_version(client, "iris-classifier", "champion") == first.version
    assert alias_version(client, "iris-classifier", "challenger") == second.version


def test_unreachable_tracking_server_is_a_backing_service_error(tmp_path: Path) -> None:
    """A dead tracking server fails after the configured retries with exit 69, password masked."""
    env = store_environment(tmp_path)
    env.update(
        {
            "MLFLOW_TRACKING_URI": "http://user:topsecret@127.0.0.1:9",
            "MLFACTOR_BACKING_RETRIES": "2",
            "MLFACTOR_BACKING_BACKOFF": "0.1",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
        }
    )
    with pytest.raises(BackingServiceError) as caught:
        connect(load_settings(env))
    assert caught.value.exit_code == 69
    assert "127.0.0.1:9" in str(caught.value)
    assert "topsecret" not in str(caught.value)
