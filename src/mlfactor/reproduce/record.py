"""What a registered version's lineage says about how it was made, or why it cannot be rebuilt.

A version registered from a pipeline step (``mlfactor run``) carries the
step's lineage (see :mod:`mlfactor.pipeline.versions`); its pipeline run
holds the file's path and hash, the typed parameters as planned and the
package list. :func:`read_record` gathers them into a :class:`Recorded`, or
raises :class:`NotReproducibleError` (exit 65) naming what is missing: no
lineage, a dirty tree at training time, a pipeline file outside the project.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfactor import tags
from mlfactor.errors import ExitCode, MlfactorError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from mlfactor.registry import ResolvedModel

PARAMETERS_ARTIFACT = "lineage/parameters.json"
PACKAGES_ARTIFACT = "lineage/packages.txt"


class NotReproducibleError(MlfactorError):
    """Raised when a version's lineage cannot be re-run: none recorded, a dirty tree, an unknown commit."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"{target} cannot be reproduced: {reason}")
        self.target = target
        self.reason = reason


@dataclass(frozen=True)
class Recorded:
    """How a version was made, as its lineage recorded it."""

    model: str
    version: str
    alias: str | None
    commit: str
    step: str
    step_run_id: str
    pipeline_run_id: str
    pipeline_path: str
    pipeline_sha256: str
    notebook: str
    notebook_sha256: str
    experiment: str
    parameters: dict[str, dict[str, Any]]
    metrics: dict[str, float]  # of the version's own run
    params: dict[str, str]
    packages: list[str]

    @property
    def target(self) -> str:
        """``name@alias (version N)`` or ``name/N``, for messages."""
        if self.alias:
            return f"{self.model}@{self.alias} (version {self.version})"
        return f"{self.model}/{self.version}"


def _download_text(client: MlflowClient, run_id: str, path: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="mlfactor-record-") as folder:
        try:
            local = client.download_artifacts(run_id, path, folder)
        except Exception:  # noqa: BLE001 - a missing artifact is reported by the caller
            return None
        return Path(local).read_text(encoding="utf-8")


def _dirty(target: str, where: str, value: str | None) -> None:
    if value == "true":
        raise NotReproducibleError(
            target,
            f"the git tree was dirty when it was trained ({where} had uncommitted changes), so no commit "
            "holds the code that made it. Commit, run the pipeline again and reproduce that version.",
        )


def read_record(client: MlflowClient, resolved: ResolvedModel) -> Recorded:
    """Gather the lineage of ``resolved``; NotReproducibleError naming what prevents a rebuild."""
    target = f"{resolved.name}@{resolved.alias}" if resolved.alias else f"{resolved.name}/{resolved.version}"
    version_tags = client.get_model_version(resolved.name, resolved.version).tags or {}
    pipeline_run_id = version_tags.get(tags.PIPELINE_RUN_TAG)
    step = version_tags.get(tags.STEP_TAG)
    if not pipeline_run_id or not step or not resolved.run_id:
        raise NotReproducibleError(
            target,
            "it has no pipeline lineage (no mlfactor.pipeline.run_id / mlfactor.step tags): it was not "
            "registered from a step of `mlfactor run`. Train it with a pipeline to make it reproducible.",
        )
    parent = client.get_run(pipeline_run_id)
    parent_tags = parent.data.tags
    commit = version_tags.get(tags.GIT_COMMIT_TAG) or parent_tags.get(tags.GIT_COMMIT_TAG)
    if not commit:
        raise NotReproducibleError(
            target, "no git commit was recorded (the project was not a git repository)."
        )
    _dirty(target, "the notebook's repository", version_tags.get(tags.GIT_DIRTY_TAG))
    _dirty(target, "the pipeline file's repository", parent_tags.get(tags.GIT_DIRTY_TAG))
    pipeline_path = parent_tags.get(tags.PIPELINE_PATH_TAG, "")
    if not pipeline_path or Path(pipeline_path).is_absolute():
        raise NotReproducibleError(
            target, f"its pipeline file {pipeline_path or '(unknown)'} was outside the project's repository."
        )
    parameters = _download_text(client, pipeline_run_id, PARAMETERS_ARTIFACT)
    if parameters is None:
        raise NotReproducibleError(
            target,
            f"its pipeline run {pipeline_run_id} has no {PARAMETERS_ARTIFACT} (an older mlfactor ran it).",
        )
    step_run_id = _step_run(client, resolved.run_id, step)
    model_run = client.get_run(resolved.run_id)
    packages = _download_text(client, pipeline_run_id, PACKAGES_ARTIFACT) or ""
    return Recorded(
        model=resolved.name,
        version=resolved.version,
        alias=resolved.alias,
        commit=commit,
        step=step,
        step_run_id=step_run_id,
        pipeline_run_id=pipeline_run_id,
        pipeline_path=pipeline_path,
        pipeline_sha256=parent_tags.get(tags.PIPELINE_HASH_TAG, ""),
        notebook=version_tags.get(tags.NOTEBOOK_TAG, ""),
        notebook_sha256=version_tags.get(tags.NOTEBOOK_HASH_TAG, ""),
        experiment=client.get_experiment(parent.info.experiment_id).name,
        parameters=json.loads(parameters),
        metrics=dict(model_run.data.metrics),
        params=dict(model_run.data.params),
        packages=packages.split(),
    )


def _step_run(client: MlflowClient, run_id: str, step: str) -> str:
    """The step's own run: ``run_id`` itself, or the ancestor tagged with the step (nested runs)."""
    current = run_id
    for _ in range(50):
        run_tags = client.get_run(current).data.tags
        if run_tags.get(tags.STEP_TAG) == step:
            return current
        parent = run_tags.get(tags.PARENT_RUN_TAG)
        if not parent:
            break
        current = parent
    return run_id
