"""The MLflow write guard: remembered secrets never reach the tracking store or the registry."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mlfactor.masking import forget_secrets, remember_secrets
from mlfactor.secret_guard import guard_mlflow, unguard_mlflow

CANARY = "canary-5f1d0c9e"


@pytest.fixture
def guarded(store_env: dict[str, str]) -> Iterator[MlflowClient]:
    """A client of a fresh store, with the guard on and CANARY remembered; both undone after."""
    remember_secrets([CANARY])
    guard_mlflow()
    uri = store_env["MLFLOW_TRACKING_URI"]
    try:
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    finally:
        unguard_mlflow()
        forget_secrets()


def test_fluent_and_client_writes_are_masked(guarded: MlflowClient) -> None:
    """Params, tags, metric names and run names written either way reach the store masked."""
    experiment = guarded.create_experiment("guard")
    run = guarded.create_run(experiment, tags={"t": CANARY}, run_name=f"run {CANARY}")
    guarded.log_param(run.info.run_id, "p", CANARY)
    guarded.log_metric(run.info.run_id, f"m_{CANARY}", 1.0)
    mlflow.set_tracking_uri(guarded.tracking_uri)
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_params({"q": f"x {CANARY}"})
        mlflow.set_tags({CANARY: "v"})
    stored = guarded.get_run(run.info.run_id)
    assert stored.data.params == {"p": "***", "q": "x ***"}
    assert stored.data.tags["t"] == "***" and stored.data.tags["masked"] == "v"
    assert set(stored.data.metrics) == {"m_masked"}
    assert stored.info.run_name == "run ***"
    assert CANARY not in repr(stored)


def test_model_version_tags_are_masked(guarded: MlflowClient) -> None:
    """A registry tag set with the secret arrives masked."""
    guarded.create_registered_model("guarded-model")
    guarded.set_registered_model_tag("guarded-model", "owner", CANARY)
    assert guarded.get_registered_model("guarded-model").tags["owner"] == "***"


def test_unguarded_writes_pass_unchanged(store_env: dict[str, str]) -> None:
    """Without the guard (or with nothing remembered) values are stored as given."""
    uri = store_env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.create_run(client.create_experiment("plain"))
    client.log_param(run.info.run_id, "p", CANARY)
    assert client.get_run(run.info.run_id).data.params["p"] == CANARY
