"""A parameter sweep as a Kubernetes Indexed Job: one pod per grid point, each one traceable run.

``mlfactor run PIPELINE --sweep ... --render-k8s DIR`` writes the Job. Its
pods run ``mlfactor run PIPELINE --sweep ... --sweep-id ID --sweep-index
$(JOB_COMPLETION_INDEX)``: Kubernetes gives each pod its completion index
(0 to grid size - 1) and the index selects the grid point, exactly as
``--sweep-index`` does locally. Every pod logs one pipeline run tagged
``mlfactor.sweep.id`` and ``mlfactor.sweep.index`` to the release's tracking
store. A point that fails for good (bad parameters, a failing cell) fails
only its own index; the others still run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlfactor.deploy import manifests as m
from mlfactor.deploy.options import DeployOptions, dns_label
from mlfactor.deploy.releases import get_release
from mlfactor.deploy.render import Rendered, file_name, finish, image_warnings, release_context
from mlfactor.errors import ValidationError
from mlfactor.pipeline.spec import load_pipeline
from mlfactor.pipeline.sweep import grid, parse_axes
from mlfactor.release.records import Release
from mlfactor.settings import Settings
from mlfactor.tracking import connect

INDEX_VARIABLE = "JOB_COMPLETION_INDEX"
INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
MAX_COMPLETIONS = 100_000  # Kubernetes' limit for Indexed Jobs with a per-index backoff
SWEEP_LABEL = f"{m.ANNOTATION}/sweep"


def escape(arg: str) -> str:
    """Escape ``$`` so Kubernetes passes a user's value through unexpanded (``$$`` reads as ``$``)."""
    return arg.replace("$", "$$")


def sweep_args(
    pipeline_ref: str, sweeps: Sequence[str], parameters: Sequence[str], sweep_id: str
) -> list[str]:
    """``mlfactor run`` arguments of one pod: the whole grid, the sweep id, and the pod's index."""
    extra: list[str] = []
    for value in parameters:
        extra += ["-p", escape(value)]
    for value in sweeps:
        extra += ["--sweep", escape(value)]
    extra += ["--sweep-id", escape(sweep_id), "--sweep-index", f"$({INDEX_VARIABLE})"]
    return m.pipeline_args(pipeline_ref, extra)


def sweep_job(
    ctx: m.ReleaseContext,
    pipeline_ref: str,
    sweeps: Sequence[str],
    parameters: Sequence[str],
    *,
    grid_size: int,
    sweep_id: str,
    max_parallel: int,
) -> dict[str, Any]:
    """Return the Indexed Job of a sweep: ``grid_size`` completions, ``max_parallel`` pods at once."""
    if not 1 <= grid_size <= MAX_COMPLETIONS:
        raise ValidationError(
            "sweep", [f"the grid has {grid_size} points; an Indexed Job takes 1 to {MAX_COMPLETIONS}"]
        )
    template = m.job_pod(ctx, "pipeline", sweep_args(pipeline_ref, sweeps, parameters, sweep_id), "sweep")
    main = template["spec"]["containers"][0]
    main["env"].append({"name": INDEX_VARIABLE, "valueFrom": {"fieldRef": {"fieldPath": INDEX_FIELD}}})
    template["metadata"]["labels"][SWEEP_LABEL] = dns_label(sweep_id)
    meta = ctx.metadata(dns_label(f"{ctx.app[:32]}-sweep-{sweep_id}", limit=52), "sweep")
    meta["labels"][SWEEP_LABEL] = dns_label(sweep_id)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimitPerIndex": 1,
            "completionMode": "Indexed",
            "completions": grid_size,
            "parallelism": max(1, min(max_parallel, grid_size)),
            "podFailurePolicy": m.failure_policy("pipeline", action="FailIndex"),
            "template": template,
            "ttlSecondsAfterFinished": ctx.options.job_ttl_seconds,
        },
    }


def pipeline_ref(settings: Settings, pipeline: Path, subject: str = "--render-k8s") -> str:
    """Return the pipeline's path relative to the project folder (the image holds only those files)."""
    try:
        return pipeline.resolve().relative_to(settings.project_dir.resolve()).as_posix()
    except ValueError:
        raise ValidationError(
            subject,
            [f"{pipeline} is outside the project folder {settings.project_dir}, so it is not in the image"],
        ) from None


def render_sweep(
    settings: Settings,
    release: Release,
    pipeline: Path,
    sweeps: Sequence[str],
    parameters: Sequence[str],
    *,
    grid_size: int,
    sweep_id: str,
    out: Path,
    options: DeployOptions | None = None,
    max_parallel: int | None = None,
) -> Rendered:
    """Write the sweep's Indexed Job, the release's ConfigMap and a kustomization to ``out``."""
    ctx = release_context(release, options or DeployOptions(pipelines=()))
    ref = pipeline_ref(settings, pipeline)
    spec = load_pipeline(pipeline, project_dir=settings.project_dir)
    job = sweep_job(
        ctx,
        ref,
        sweeps,
        parameters,
        grid_size=grid_size,
        sweep_id=sweep_id,
        max_parallel=max_parallel or settings.max_parallel,
    )
    _, warnings = image_warnings(settings, release.bento_tag, [ref, *(s.notebook_ref for s in spec.steps)])
    objects = [m.config_map(ctx), job]
    applied = [file_name(obj) for obj in objects]
    return finish(out, release, ctx, objects, applied=applied, extra={}, warnings=warnings, settings=settings)


def render_sweep_for_run(
    settings: Settings,
    *,
    pipeline: Path,
    sweeps: Sequence[str],
    parameters: Sequence[str],
    sweep_id: str,
    out: Path,
    max_parallel: int | None = None,
) -> Rendered:
    """Render for `mlfactor run --sweep ... --render-k8s DIR`: MLFACTOR_RELEASE, else the current one."""
    size = len(grid(parse_axes(sweeps)))
    release = get_release(connect(settings), settings, settings.release or "current")
    return render_sweep(
        settings,
        release,
        pipeline,
        sweeps,
        parameters,
        grid_size=size,
        sweep_id=sweep_id,
        out=out,
        max_parallel=max_parallel,
    )
