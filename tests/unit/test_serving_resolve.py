"""The resolver child's answer: typed failures the worker turns back into the right error and exit code."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED, UNAUTHENTICATED

from mlfactor.errors import BackingServiceError, ConfigError, MlfactorError, NotFoundError, ValidationError
from mlfactor.serving.resolve import FailureKind, ResolvedFiles, ResolverAnswer, classify


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        pytest.param(NotFoundError("model 'x' has no alias 'y'"), FailureKind.NOT_FOUND, id="not-found"),
        pytest.param(ValidationError("model URI", ["bad"]), FailureKind.INVALID, id="bad-uri"),
        pytest.param(ConfigError({"MLFLOW_TRACKING_URI": "refused"}), FailureKind.CONFIG, id="config"),
        pytest.param(MlflowException("no", error_code=UNAUTHENTICATED), FailureKind.CONFIG, id="http-401"),
        pytest.param(MlflowException("no", error_code=PERMISSION_DENIED), FailureKind.CONFIG, id="http-403"),
        pytest.param(BackingServiceError("store down"), FailureKind.UNAVAILABLE, id="store-down"),
        pytest.param(ConnectionError("refused"), FailureKind.UNAVAILABLE, id="transport"),
    ],
)
def test_failures_are_classified_by_what_retrying_can_fix(error: Exception, kind: FailureKind) -> None:
    """Missing models, bad URIs and refused credentials are final; only an unreachable store is retried."""
    assert classify(error)[0] is kind


@pytest.mark.parametrize(
    ("kind", "raised", "exit_code"),
    [
        pytest.param(FailureKind.NOT_FOUND, NotFoundError, 66, id="not-found-66"),
        pytest.param(FailureKind.INVALID, ValidationError, 65, id="invalid-65"),
        pytest.param(FailureKind.CONFIG, ConfigError, 78, id="config-78"),
        pytest.param(FailureKind.UNAVAILABLE, BackingServiceError, 69, id="unavailable-69"),
    ],
)
def test_a_failure_crosses_the_process_boundary_as_its_error(
    kind: FailureKind, raised: type[MlfactorError], exit_code: int
) -> None:
    """The answer's JSON line read back raises the matching error, with its exit code and message."""
    line = ResolverAnswer(error="what happened", kind=kind).to_json()
    with pytest.raises(raised) as caught:
        ResolverAnswer.from_output(line.encode()).raise_failure()
    assert int(caught.value.exit_code) == exit_code
    assert "what happened" in str(caught.value)


def test_models_cross_the_process_boundary_whole() -> None:
    """A successful answer read back gives the same resolved files and raises nothing."""
    found = ResolvedFiles("models:/m@champion", "m", "3", "run-1", None, "/tmp/m")
    answer = ResolverAnswer.from_output(b"noise\n" + ResolverAnswer(models=[found]).to_json().encode())
    answer.raise_failure()
    assert answer.models == [found]


def test_an_unreadable_answer_counts_as_unavailable() -> None:
    """A child that printed nothing usable is treated as an unreachable store (retried)."""
    answer = ResolverAnswer.from_output(b"Traceback (most recent call last):\n")
    assert answer.kind is FailureKind.UNAVAILABLE
