"""How mlfactor.tracking treats an http tracking server: bounded MLflow retries, lost stores named."""

from __future__ import annotations

import pytest
import sqlalchemy
from mlflow.exceptions import MlflowException

from mlfactor.errors import BackingServiceError
from mlfactor.settings import load_settings
from mlfactor.tracking import http_client_environment, lost_store_error

REFUSED = (
    "API request to http://bob:hunter22@127.0.0.1:5999/api/2.0/mlflow/runs/update failed with exception "
    "HTTPConnectionPool(host='127.0.0.1', port=5999): Max retries exceeded with url: /api/2.0/mlflow/runs "
    "(Caused by NewConnectionError(...: Failed to establish a new connection: [Errno 111] Connection "
    "refused))"
)


def test_mlflow_http_retries_follow_mlfactor_back_off() -> None:
    """MLflow's per-request retries become MLFACTOR_BACKING_RETRIES - 1 with the back-off rounded up."""
    settings = load_settings(
        {
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
            "MLFACTOR_BACKING_RETRIES": "4",
            "MLFACTOR_BACKING_BACKOFF": "0.2",
        }
    )
    assert http_client_environment(settings) == {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }


def test_mlflow_http_settings_the_user_chose_are_kept() -> None:
    """An explicit MLFLOW_HTTP_REQUEST_MAX_RETRIES wins over the derived value."""
    settings = load_settings(
        {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "9"}
    )
    assert http_client_environment(settings)["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"


def test_a_lost_server_becomes_exit_69_naming_it_with_the_password_masked() -> None:
    """MLflow's transport error, even wrapped in another exception, maps to BackingServiceError."""
    try:
        try:
            raise MlflowException(REFUSED)
        except MlflowException as inner:
            raise RuntimeError("step bookkeeping failed") from inner
    except RuntimeError as outer:
        error = lost_store_error(outer)
    assert isinstance(error, BackingServiceError)
    assert error.exit_code == 69
    assert error.uri == "http://bob:***@127.0.0.1:5999"
    assert "hunter22" not in str(error) and "lost the tracking store http://bob:***@127.0.0.1:5999" in str(
        error
    )


def test_a_lost_database_is_recognised_too() -> None:
    """A database that stops answering (SQLAlchemy OperationalError) is a lost store as well."""
    exc = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection failed: Connection refused"))
    error = lost_store_error(exc)
    assert isinstance(error, BackingServiceError) and "the tracking store" in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        MlflowException("RESOURCE_DOES_NOT_EXIST: Registered Model with name=x not found"),
        ValueError("Connection refused"),  # not a transport error of a store client
        KeyError("model_version"),
    ],
    ids=["mlflow-not-found", "other-type", "plain-bug"],
)
def test_other_errors_are_left_alone(exc: Exception) -> None:
    """Errors that are not a lost store are not disguised as exit 69."""
    assert lost_store_error(exc) is None
