"""The MLflow run tree of a pipeline run, with what differs between two equal runs taken out.

Two runs of the same pipeline (one `mlfactor run`, one step per process) must
give the same tree: the parent and each step attempt with their status, tags,
parameters, metric names and artifact paths. Run ids become their place in the
tree, and values that are times or durations are left out.
"""

from __future__ import annotations

from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from mlfactor import tags

VOLATILE_TAGS = {"mlflow.user", "mlflow.log-model.history"}
TIME_OUTPUTS = ("started", "ended")


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    found: list[str] = []
    for item in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return sorted(found)


def _tags(run: Run, names: dict[str, str]) -> dict[str, str]:
    shown = {}
    for key, value in run.data.tags.items():
        if key in VOLATILE_TAGS:
            continue
        timed = key.startswith(tags.OUTPUT_TAG_PREFIX) and key.endswith(TIME_OUTPUTS)
        shown[key] = "<time>" if timed else names.get(value, value)
    return shown


def _node(client: MlflowClient, run: Run, names: dict[str, str]) -> dict[str, Any]:
    return {
        "name": run.info.run_name,
        "status": run.info.status,
        "tags": _tags(run, names),
        "params": dict(run.data.params),
        "metrics": sorted(run.data.metrics),
        "artifacts": _artifacts(client, run.info.run_id),
    }


def run_tree(client: MlflowClient, pipeline_run_id: str) -> dict[str, Any]:
    """The parent run and its step runs (by step and attempt), ids replaced by names in the tree."""
    parent = client.get_run(pipeline_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{tags.PARENT_RUN_TAG}` = '{pipeline_run_id}'"
    )
    names = {pipeline_run_id: "<pipeline run>"}
    for child in children:
        key = f"<{child.data.tags.get(tags.STEP_TAG)} attempt {child.data.tags.get(tags.ATTEMPT_TAG)}>"
        names[child.info.run_id] = key
    steps = {names[c.info.run_id]: _node(client, c, names) for c in children}
    return {"parent": _node(client, parent, names), "steps": dict(sorted(steps.items()))}
