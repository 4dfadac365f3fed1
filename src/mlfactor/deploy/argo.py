"""A pipeline as an Argo ``Workflow`` (and a ``CronWorkflow`` on a schedule): one pod per step.

The workflow's DAG mirrors the pipeline's graph. ``open-run`` creates the
pipeline run and exports its id as an output parameter; each step task runs
``mlfactor run --step NAME --pipeline-run-id ID`` in the release's image with
the release's ConfigMap and Secret by reference; ``finish-run`` waits for every
step whatever became of it (``failFast: false``) and ends the run with the
pipeline's outcome and exit code. Pods are retried only on exit codes a retry
can fix (never 1, 2, 3, 65, 66 or 78). A sweep fans out as one pipeline run
per grid point (``withSequence`` over ``--sweep-index``), as the Indexed Job does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mlfactor.deploy import manifests as m
from mlfactor.deploy.options import BENTO_UID, SCRATCH, dns_label
from mlfactor.deploy.workflow import (
    FINISH_TASK,
    OPEN_TASK,
    PipelineWorkflow,
    WorkflowTask,
    retry_exit_codes,
)
from mlfactor.errors import ValidationError

API_VERSION = "argoproj.io/v1alpha1"
RUN_ID = "pipeline-run-id"
SWEEP_INDEX = "sweep-index"
RUN_ID_PATH = f"{SCRATCH}/pipeline-run-id"  # where --run-id-file $(TMPDIR)/pipeline-run-id writes in the pod
ENDED = ("Succeeded", "Failed", "Errored", "Omitted")


def retry_strategy(limit: int) -> dict[str, Any]:
    """Retry a pod ``limit`` times on errors and retryable exit codes, with back-off."""
    codes = ", ".join(str(c) for c in retry_exit_codes())
    return {
        "backoff": {"duration": "30s", "factor": 2, "maxDuration": "15m"},
        "expression": f"lastRetry.status == 'Error' || asInt(lastRetry.exitCode) not in [{codes}]",
        "limit": limit,
        "retryPolicy": "Always",
    }


def task_names(workflow: PipelineWorkflow) -> dict[str, str]:
    """Each task's Argo name (letters, digits, '-'); ValidationError when two steps map to one name."""
    names = {task.name: dns_label(task.name) for task in workflow.tasks}
    seen: dict[str, str] = {}
    problems = []
    for original, name in names.items():
        if name in seen:
            problems.append(
                f"steps {seen[name]!r} and {original!r} are both {name!r} as Argo task names "
                "(letters, digits and '-'); rename one"
            )
        seen[name] = original
    if problems:
        raise ValidationError(f"pipeline {workflow.pipeline}", problems)
    return names


def _container_template(
    ctx: m.ReleaseContext, name: str, task: WorkflowTask, inputs: Sequence[str], retries: int
) -> dict[str, Any]:
    template: dict[str, Any] = {
        "container": m.container(ctx, "main", list(m.MLFACTOR), list(task.args), ctx.options.jobs),
        "metadata": {"annotations": ctx.annotations(), "labels": ctx.labels("pipeline")},
        "name": name,
        "retryStrategy": retry_strategy(retries),
    }
    if inputs:
        template["inputs"] = {"parameters": [{"name": p} for p in inputs]}
    if task.deadline_s is not None:
        template["activeDeadlineSeconds"] = task.deadline_s
    return template


def templates(
    ctx: m.ReleaseContext, workflow: PipelineWorkflow, *, retries: int, sweeping: bool
) -> list[dict[str, Any]]:
    """The ``pipeline`` DAG template and one container template per task."""
    names = task_names(workflow)

    def run_id() -> dict[str, Any]:  # a new dict each time: shared ones would be YAML anchors
        return {"name": RUN_ID, "value": f"{{{{tasks.{OPEN_TASK}.outputs.parameters.{RUN_ID}}}}}"}

    opening = _container_template(ctx, OPEN_TASK, workflow.open, [SWEEP_INDEX] if sweeping else [], retries)
    opening["outputs"] = {"parameters": [{"name": RUN_ID, "valueFrom": {"path": RUN_ID_PATH}}]}
    open_task: dict[str, Any] = {"name": OPEN_TASK, "template": OPEN_TASK}
    if sweeping:
        open_task["arguments"] = {
            "parameters": [{"name": SWEEP_INDEX, "value": f"{{{{inputs.parameters.{SWEEP_INDEX}}}}}"}]
        }
    tasks = [open_task]
    found = [opening]
    for task in workflow.steps:
        name = names[task.name]
        found.append(_container_template(ctx, f"step-{name}", task, [RUN_ID], retries))
        tasks.append(
            {
                "arguments": {"parameters": [run_id()]},
                "depends": " && ".join(names[u] for u in task.upstream),
                "name": name,
                "template": f"step-{name}",
            }
        )
    ended = [f"({' || '.join(f'{names[s.name]}.{r}' for r in ENDED)})" for s in workflow.steps]
    tasks.append(
        {
            "arguments": {"parameters": [run_id()]},
            "depends": " && ".join([OPEN_TASK, *ended]),
            "name": FINISH_TASK,
            "template": FINISH_TASK,
        }
    )
    found.append(_container_template(ctx, FINISH_TASK, workflow.finish, [RUN_ID], retries))
    pipeline: dict[str, Any] = {"dag": {"failFast": False, "tasks": tasks}, "name": "pipeline"}
    if sweeping:
        pipeline["inputs"] = {"parameters": [{"name": SWEEP_INDEX}]}
    return [pipeline, *found]


def workflow_spec(
    ctx: m.ReleaseContext,
    workflow: PipelineWorkflow,
    *,
    retries: int,
    grid_size: int = 0,
    max_parallel: int = 1,
) -> dict[str, Any]:
    """The ``spec`` of the Workflow: pod security and scratch volume as every mlfactor pod has them."""
    found = templates(ctx, workflow, retries=retries, sweeping=grid_size > 0)
    entrypoint = "pipeline"
    if grid_size > 0:
        entrypoint = "sweep"
        point = {
            "arguments": {"parameters": [{"name": SWEEP_INDEX, "value": "{{item}}"}]},
            "name": "point",
            "template": "pipeline",
            "withSequence": {"count": str(grid_size)},
        }
        found.insert(
            0, {"dag": {"failFast": False, "tasks": [point]}, "name": "sweep", "parallelism": max_parallel}
        )
    return {
        "entrypoint": entrypoint,
        "podGC": {"strategy": "OnPodSuccess"},
        "podMetadata": {"annotations": ctx.annotations(), "labels": ctx.labels("pipeline")},
        # Kubernetes would inject <SERVICE>_PORT variables (MLFACTOR_PORT for the Service `mlfactor`).
        "podSpecPatch": json.dumps({"enableServiceLinks": False}, sort_keys=True),
        "securityContext": {
            "fsGroup": BENTO_UID,
            "runAsGroup": BENTO_UID,
            "runAsNonRoot": True,
            "runAsUser": BENTO_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "templates": found,
        "ttlStrategy": {"secondsAfterCompletion": ctx.options.job_ttl_seconds},
        "volumes": [{"emptyDir": {"sizeLimit": "2Gi"}, "name": m.SCRATCH_VOLUME}],
    }


def argo_workflow(ctx: m.ReleaseContext, workflow: PipelineWorkflow, spec: dict[str, Any]) -> dict[str, Any]:
    """The Workflow object: submit it (``argo submit`` or ``kubectl create``) for one run now."""
    meta = ctx.metadata("", "pipeline")
    del meta["name"]
    meta["generateName"] = dns_label(f"{ctx.app[:32]}-{workflow.pipeline}", limit=52) + "-"
    return {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": meta, "spec": spec}


def argo_cron_workflow(
    ctx: m.ReleaseContext, workflow: PipelineWorkflow, spec: dict[str, Any], schedule: str
) -> dict[str, Any]:
    """The CronWorkflow running the same Workflow on ``schedule`` (UTC), one run at a time."""
    name = dns_label(f"{ctx.app[:32]}-{workflow.pipeline}", limit=52)
    return {
        "apiVersion": API_VERSION,
        "kind": "CronWorkflow",
        "metadata": ctx.metadata(name, "pipeline"),
        "spec": {
            "concurrencyPolicy": "Forbid",
            "failedJobsHistoryLimit": 3,
            "schedules": [schedule],
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "timezone": ctx.options.time_zone,
            "workflowMetadata": {"labels": ctx.labels("pipeline")},
            "workflowSpec": spec,
        },
    }


def container_templates(obj: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec as Kubernetes would run it, container) of each container template of a (Cron)Workflow."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronWorkflow":
        spec = spec.get("workflowSpec") or {}
    patch = json.loads(spec.get("podSpecPatch") or "{}")
    found = []
    for template in spec.get("templates") or []:
        if "container" in template:
            pod = {
                **patch,
                "containers": [template["container"]],
                "securityContext": spec.get("securityContext") or {},
                "volumes": spec.get("volumes") or [],
            }
            found.append((pod, template["container"]))
    return found
