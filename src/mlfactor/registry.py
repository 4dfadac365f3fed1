"""The MLflow model registry as mlfactor uses it: register, move aliases, resolve.

Releases move between aliases (``champion``, ``challenger``) instead of the
deprecated stages. :func:`resolve_model` turns any model URI the user gives
(``models:/name@alias``, ``models:/name/3``, or a name and alias) into one
concrete :class:`ResolvedModel`, so every process logs the exact version it uses.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlfactor.errors import NotFoundError
from mlfactor.model_uri import parse_model_uri
from mlfactor.names import did_you_mean
from mlfactor.registry_lock import is_lock
from mlfactor.tags import GIT_COMMIT_TAG

_LOGGED_MODEL_URI = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]+)$")


@dataclass(frozen=True)
class ResolvedModel:
    """A concrete registered model version, with where it came from."""

    name: str
    version: str
    run_id: str | None
    source: str
    alias: str | None
    git_commit: str | None
    status: str

    @property
    def uri(self) -> str:
        """The version-pinned URI (never an alias, so it does not move under us)."""
        return f"models:/{self.name}/{self.version}"


def _model_names(client: MlflowClient) -> list[str]:
    return [m.name for m in client.search_registered_models(max_results=1000) if not is_lock(m.name)]


def require_model(client: MlflowClient, name: str) -> None:
    """Raise NotFoundError, with close names suggested, unless model ``name`` is registered."""
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code) and "not found" not in str(exc).lower():
            raise
        names = _model_names(client)
        known = ", ".join(sorted(names)) or "none yet: run a training pipeline first (`make pipeline`)"
        raise NotFoundError(
            f"registered model {name!r} does not exist.{did_you_mean(name, names)} "
            f"Registered models: {known}."
        ) from exc


def _to_resolved(client: MlflowClient, mv: ModelVersion, alias: str | None) -> ResolvedModel:
    commit = None
    if mv.run_id:
        try:
            commit = client.get_run(mv.run_id).data.tags.get(GIT_COMMIT_TAG)
        except MlflowException:
            commit = None
    commit = (mv.tags or {}).get(GIT_COMMIT_TAG, commit)
    return ResolvedModel(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=mv.source or "",
        alias=alias,
        git_commit=commit,
        status=str(mv.status),
    )


def resolve_model(client: MlflowClient, uri: str) -> ResolvedModel:
    """Resolve a model URI to one concrete version; NotFoundError with hints when it does not exist."""
    ref = parse_model_uri(uri)
    require_model(client, ref.name)
    if ref.version is not None:
        try:
            mv = client.get_model_version(ref.name, ref.version)
        except MlflowException as exc:
            versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{ref.name}'"))
            raise NotFoundError(
                f"model {ref.name!r} has no version {ref.version}; it has versions {versions or 'none'}."
            ) from exc
        return _to_resolved(client, mv, None)
    alias = ref.alias or ""
    try:
        mv = client.get_model_version_by_alias(ref.name, alias)
    except MlflowException as exc:
        aliases = sorted(client.get_registered_model(ref.name).aliases)
        raise NotFoundError(
            f"model {ref.name!r} has no alias {alias!r}.{did_you_mean(alias, aliases)} "
            f"Its aliases: {', '.join(aliases) or 'none'}. Set one with `mlfactor promote {ref.name} VERSION "
            f"--alias {alias}`."
        ) from exc
    return _to_resolved(client, mv, alias)


def register_version(
    client: MlflowClient, model_uri: str, name: str, *, run_id: str | None, tags: dict[str, str] | None = None
) -> ModelVersion:
    """Register the logged model at ``model_uri`` as a new version of ``name`` and wait until READY."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        with contextlib.suppress(MlflowException):  # created concurrently by another process
            client.create_registered_model(name)
    # A logged model's URI (models:/m-...) must be sent with its id: an mlflow server refuses it
    # otherwise ("The model_id request parameter must identify the resource"); sqlite does not care.
    logged = _LOGGED_MODEL_URI.match(model_uri)
    model_id = logged["model_id"] if logged else None
    mv = client.create_model_version(name, model_uri, run_id=run_id, tags=tags or {}, model_id=model_id)
    return client.get_model_version(name, mv.version)


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    """Point ``alias`` of model ``name`` at ``version``."""
    client.set_registered_model_alias(name, alias, version)


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when unset."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
