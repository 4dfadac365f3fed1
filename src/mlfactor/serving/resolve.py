"""Resolve model URIs in a child process: ``python -m mlfactor.serving.resolve URI [URI ...]``.

The worker starts this child first thing and, while it imports MLflow (the
slowest import of the service), resolves each alias once with
:func:`mlfactor.registry.resolve_model` and downloads the version's files,
imports scikit-learn itself on the other core. The child prints one JSON line
on stdout, a :class:`ResolverAnswer`: the models found, or the failure and its
:class:`FailureKind`, which the worker turns back into the matching error
(:meth:`ResolverAnswer.raise_failure`): a missing model, a bad URI and a
configuration or credentials problem fail at once (66, 65, 78); only an
unreachable store is worth retrying (69). Its own log lines go to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, NoReturn

from mlfactor.errors import BackingServiceError, ConfigError, MlfactorError, NotFoundError, ValidationError
from mlfactor.log import configure_logging
from mlfactor.masking import mask_text

if TYPE_CHECKING:
    from mlflow import MlflowClient

CREDENTIAL_STATUSES = (401, 403)
# botocore's names for refused or missing credentials (artifact stores on S3), matched without importing it
CREDENTIAL_ERRORS = (
    "NoCredentialsError",
    "PartialCredentialsError",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
)


class FailureKind(StrEnum):
    """Why the child could not resolve the models."""

    NOT_FOUND = "not_found"  # no such model, version or alias
    INVALID = "invalid"  # the URI itself is wrong
    CONFIG = "config"  # configuration or credentials refused: retrying cannot help
    UNAVAILABLE = "unavailable"  # the store did not answer: worth retrying


@dataclass(frozen=True)
class ResolvedFiles:
    """A concrete model version and the local folder holding its MLflow model files."""

    uri: str
    name: str
    version: str
    run_id: str | None
    git_commit: str | None
    path: str


@dataclass(frozen=True)
class ResolverAnswer:
    """The child's one line: the models it resolved, or why it failed."""

    models: list[ResolvedFiles] = field(default_factory=list)
    error: str | None = None
    kind: FailureKind | None = None

    def to_json(self) -> str:
        """The answer as one JSON line."""
        return json.dumps({**asdict(self), "kind": self.kind.value if self.kind else None})

    @classmethod
    def from_output(cls, out: bytes) -> ResolverAnswer:
        """Read the child's stdout (its last JSON line); an unreadable answer counts as unavailable."""
        lines = [line for line in out.decode("utf-8", errors="replace").splitlines() if line.startswith("{")]
        try:
            data = json.loads(lines[-1])
            if data.get("error"):
                return cls(error=str(data["error"]), kind=FailureKind(data.get("kind") or "unavailable"))
            return cls(models=[ResolvedFiles(**found) for found in data["models"]])
        except (IndexError, ValueError, TypeError, KeyError, AttributeError):
            return cls(
                error="the model resolver gave no answer (see its stderr)", kind=FailureKind.UNAVAILABLE
            )

    def raise_failure(self) -> None:
        """Raise the error the failure stands for; do nothing when the models were resolved."""
        if self.error is None:
            return
        message = self.error
        if self.kind is FailureKind.NOT_FOUND:
            raise NotFoundError(message)
        if self.kind is FailureKind.INVALID:
            raise ValidationError("model URI", [message])
        if self.kind is FailureKind.CONFIG:
            raise ConfigError({"MLFLOW_TRACKING_URI": message})
        raise BackingServiceError(message)


def resolve_and_download(client: MlflowClient, uris: Sequence[str]) -> list[ResolvedFiles]:
    """Resolve every URI once with ``client`` and download its files (MLflow is imported here)."""
    import mlflow.artifacts

    from mlfactor.registry import resolve_model

    found = []
    for uri in uris:
        resolved = resolve_model(client, uri)
        path = mlflow.artifacts.download_artifacts(artifact_uri=resolved.uri)
        found.append(
            ResolvedFiles(uri, resolved.name, resolved.version, resolved.run_id, resolved.git_commit, path)
        )
    return found


def classify(exc: BaseException) -> tuple[FailureKind, str]:
    """The failure kind of ``exc`` and a one-line message for it."""
    if isinstance(exc, NotFoundError):
        return FailureKind.NOT_FOUND, str(exc)
    if isinstance(exc, ValidationError):
        return FailureKind.INVALID, str(exc)
    if isinstance(exc, ConfigError):
        return FailureKind.CONFIG, "; ".join(exc.problems.values()) or str(exc)
    if isinstance(exc, MlfactorError):
        return FailureKind.UNAVAILABLE, str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    status = getattr(exc, "get_http_status_code", lambda: None)()
    if (
        status in CREDENTIAL_STATUSES
        or type(exc).__name__ in CREDENTIAL_ERRORS
        or any(code in first for code in CREDENTIAL_ERRORS)
    ):
        return FailureKind.CONFIG, f"the store refused our credentials: {type(exc).__name__}: {first}"
    return FailureKind.UNAVAILABLE, f"{type(exc).__name__}: {first}"


def main(argv: list[str] | None = None) -> NoReturn:
    """Child-process entry point: print the resolved models (or the failure) as one JSON line."""
    configure_logging("WARNING", "json", stream=sys.stderr)
    uris = list(sys.argv[1:] if argv is None else argv)
    try:
        from mlfactor.settings import load_settings
        from mlfactor.tracking import connect

        # a refused password or database name is a ConfigError here
        client = connect(load_settings())
        answer = ResolverAnswer(models=resolve_and_download(client, uris))
    except Exception as exc:  # noqa: BLE001 - every failure is reported, classified, on stdout
        kind, message = classify(exc)
        answer = ResolverAnswer(error=mask_text(message), kind=kind)
    logging.shutdown()
    sys.stdout.write(answer.to_json() + "\n")
    sys.stdout.flush()
    raise SystemExit(0 if answer.error is None else 1)


if __name__ == "__main__":
    main()
