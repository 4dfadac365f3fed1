"""Lineage on every model version a step registered, whichever API the notebook used.

A notebook may register through mlfactor (``log_sklearn_model``), through
MLflow's ``registered_model_name=`` or ``mlflow.register_model``, from the
step's run or from a run it opened itself (``nested=True``). After the step,
the runner finds every version whose run is the step's run or one of its
descendants and tags it with where it came from: git commit and dirty flag,
pipeline run, step, notebook and the executed notebook's artifact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from mlfactor import tags

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

VERSION_LINEAGE_TAGS = (
    tags.GIT_COMMIT_TAG,
    tags.GIT_BRANCH_TAG,
    tags.GIT_DIRTY_TAG,
    tags.PIPELINE_RUN_TAG,
    tags.STEP_TAG,
    tags.NOTEBOOK_TAG,
    tags.NOTEBOOK_HASH_TAG,
)
"""Step-run tags every version registered from the step carries too."""


def descendant_runs(
    client: MlflowClient, run_id: str, experiment_ids: Sequence[str], since_ms: int
) -> list[str]:
    """``run_id`` and every run below it (``mlflow.parentRunId``, any depth) started since ``since_ms``.

    One search for the runs started since the step's run (descendants cannot be
    older), the tree walked in memory.
    """
    parents: dict[str, str] = {}
    token = None
    while True:
        page = client.search_runs(
            list(experiment_ids),
            filter_string=f"attributes.start_time >= {since_ms}",
            max_results=1000,
            page_token=token,
        )
        for run in page:
            parent = run.data.tags.get(tags.PARENT_RUN_TAG)
            if parent:
                parents[run.info.run_id] = parent
        token = page.token
        if not token:
            break
    found = [run_id]
    for child in parents:
        seen, node = set(), child
        while node in parents and node not in seen and node != run_id:
            seen.add(node)
            node = parents[node]
        if node == run_id:
            found.append(child)
    return found


def version_lineage(
    step_tags: Mapping[str, str], run_id: str, step: str, notebook_artifact: str
) -> dict[str, str]:
    """The tags a version registered from step run ``run_id`` gets."""
    lineage = {k: step_tags[k] for k in VERSION_LINEAGE_TAGS if k in step_tags}
    lineage[tags.STEP_TAG] = step
    lineage[tags.NOTEBOOK_ARTIFACT_TAG] = f"runs:/{run_id}/{notebook_artifact}"
    return lineage


def tag_registered_versions(
    client: MlflowClient,
    run_id: str,
    experiment_ids: Sequence[str],
    since_ms: int,
    lineage: Mapping[str, str],
) -> list[str]:
    """Tag every version registered from ``run_id`` or its descendants; return them as ``name/version``."""
    runs = descendant_runs(client, run_id, experiment_ids, since_ms)
    quoted = ", ".join(f"'{r}'" for r in runs)
    tagged = []
    for mv in client.search_model_versions(f"run_id IN ({quoted})"):
        for key, value in lineage.items():
            client.set_model_version_tag(mv.name, mv.version, key, value)
        tagged.append(f"{mv.name}/{mv.version}")
    return sorted(tagged)
