"""Every MLflow tag name mlfactor writes or reads, and the run statuses it records.

Like MLflow's own ``mlflow/utils/mlflow_tags.py``: the names are a contract
with every store a project ever wrote to (``mlfactor history``, ``admin gc``,
the releases listing and sweeps read them back), so each is spelled once,
here. mlfactor's own tags start with ``mlfactor.``; MLflow's keep their names.
"""

from __future__ import annotations

from enum import StrEnum

MLFACTOR_PREFIX = "mlfactor."

# Lineage of pipeline and step runs (mlfactor.pipeline.lineage, the runner, notebooks).
PIPELINE_TAG = "mlfactor.pipeline"
PIPELINE_HASH_TAG = "mlfactor.pipeline.sha256"
PIPELINE_PATH_TAG = "mlfactor.pipeline.path"
PIPELINE_RUN_TAG = "mlfactor.pipeline.run_id"
STEP_TAG = "mlfactor.step"
NOTEBOOK_TAG = "mlfactor.notebook"
NOTEBOOK_HASH_TAG = "mlfactor.notebook.sha256"
NOTEBOOK_ARTIFACT_TAG = "mlfactor.notebook.artifact"  # runs:/ URI of the executed notebook (model versions)
ATTEMPT_TAG = "mlfactor.attempt"
PACKAGES_HASH_TAG = "mlfactor.packages.sha256"
PACKAGE_TAG_PREFIX = "mlfactor.package."
STATUS_TAG = "mlfactor.status"
ERROR_TAG = "mlfactor.error"
OUTPUT_TAG_PREFIX = "mlfactor.output."
SOURCE_TAG = "mlfactor.source"
VERSION_TAG = "mlfactor.version"
GIT_DIRTY_TAG = "mlfactor.git.dirty"

# Sweeps: every point's pipeline run.
SWEEP_ID_TAG = "mlfactor.sweep.id"
SWEEP_INDEX_TAG = "mlfactor.sweep.index"

# Releases: one run per release in the releases experiment.
RELEASE_TAG = "mlfactor.release"
RELEASE_APP_TAG = "mlfactor.release.app"
RELEASE_BENTO_TAG = "mlfactor.release.bento_tag"
RELEASE_MODEL_VERSION_TAG = "mlfactor.release.model_version"
RELEASE_WHO_TAG = "mlfactor.release.who"

# Registry: the alias history (one registered-model tag per move) and the alias lock.
ALIAS_MOVE_TAG_PREFIX = "mlfactor.alias_move."
LOCK_TAG = "mlfactor.lock"

# Reproductions (mlfactor reproduce): the report, linked from the original and the re-run.
REPRODUCE_REPORT_TAG = "mlfactor.reproduce.report"
REPRODUCE_OF_TAG = "mlfactor.reproduce.of"

# MLflow's own tags that mlfactor sets or reads.
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
GIT_TAG_PREFIX = "mlflow.source.git"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_BRANCH_TAG = "mlflow.source.git.branch"


class RunStatus(StrEnum):
    """How an MLflow run (a pipeline, a step, a sweep point, a release record) ended, as MLflow spells it."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
