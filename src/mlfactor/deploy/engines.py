"""Render a pipeline of a release for a workflow engine: Argo Workflows or Airflow.

``mlfactor deploy argo`` and ``mlfactor deploy airflow`` check the pipeline
(as ``mlfactor validate`` does), build its tasks (:mod:`mlfactor.deploy.workflow`)
and write them with the release's ConfigMap into a folder, through the same
checks (mlfactor's rules) and the same atomic, byte-stable writing as
``mlfactor deploy render``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mlfactor.deploy import airflow, argo
from mlfactor.deploy import manifests as m
from mlfactor.deploy.options import DeployOptions
from mlfactor.deploy.render import Rendered, file_name, finish, header_for, image_warnings, release_context
from mlfactor.deploy.sweep import pipeline_ref
from mlfactor.deploy.workflow import PipelineWorkflow, pipeline_workflow
from mlfactor.errors import ValidationError
from mlfactor.pipeline.plan import Plan, make_plan
from mlfactor.release.records import Release
from mlfactor.settings import Settings


@dataclass(frozen=True)
class EngineOptions:
    """What a workflow rendering adds to the release: schedule, retries, ``-p`` values, a sweep."""

    schedule: str | None = None
    retries: int = 2
    parameters: tuple[str, ...] = ()
    sweeps: tuple[str, ...] = ()
    sweep_id: str = ""
    max_parallel: int = 2

    def problems(self) -> list[str]:
        """Every invalid option, described."""
        found = []
        if self.schedule is not None:
            found += DeployOptions(schedule=self.schedule).problems()
        if not 0 <= self.retries <= 10:
            found.append(f"--retries {self.retries}: expected 0 to 10 retries of a failed pod")
        return found


def _plan(settings: Settings, pipeline: Path, options: EngineOptions) -> tuple[Plan, int]:
    """The checked plan (of the first grid point with a sweep) and the grid's size (0 without)."""
    problems = options.problems()
    if problems:
        raise ValidationError("options", problems)
    if options.sweeps:
        from mlfactor.pipeline.sweep import grid
        from mlfactor.pipeline.sweep_driver import check_sweep

        axes, plan = check_sweep(pipeline, options.sweeps, options.parameters)
        return plan, len(grid(axes))
    return make_plan(pipeline, options.parameters), 0


def _workflow(
    settings: Settings, pipeline: Path, options: EngineOptions, run_id: str, run_id_file: str | None = None
) -> tuple[PipelineWorkflow, int, list[str]]:
    plan, size = _plan(settings, pipeline, options)
    ref = pipeline_ref(settings, pipeline, "pipeline")
    extra = [arg for value in options.parameters for arg in ("-p", value)]
    if size:
        extra += [arg for value in options.sweeps for arg in ("--sweep", value)]
        extra += [
            "--sweep-id",
            options.sweep_id,
            "--sweep-index",
            f"{{{{inputs.parameters.{argo.SWEEP_INDEX}}}}}",
        ]
    kwargs = {"run_id_file": run_id_file} if run_id_file else {}
    workflow = pipeline_workflow(plan, ref, run_id=run_id, open_extra=extra, **kwargs)
    needed = [ref, *(step.notebook_ref for step in plan.spec.steps)]
    return workflow, size, needed


def render_argo(
    settings: Settings,
    release: Release,
    pipeline: Path,
    out: Path,
    *,
    options: EngineOptions | None = None,
    deploy: DeployOptions | None = None,
) -> Rendered:
    """Write the pipeline's Workflow (and CronWorkflow with a schedule) and the release's ConfigMap."""
    options = options or EngineOptions()
    ctx = release_context(release, deploy or DeployOptions(pipelines=()))
    token = f"{{{{inputs.parameters.{argo.RUN_ID}}}}}"
    workflow, size, needed = _workflow(settings, pipeline, options, token)
    spec = argo.workflow_spec(
        ctx, workflow, retries=options.retries, grid_size=size, max_parallel=options.max_parallel
    )
    objects = [m.config_map(ctx), argo.argo_workflow(ctx, workflow, spec)]
    schedule = options.schedule or workflow.schedule  # --schedule, else the pipeline file's
    if schedule is not None:
        objects.append(argo.argo_cron_workflow(ctx, workflow, spec, schedule))
    _, warnings = image_warnings(settings, release.bento_tag, needed)
    # kustomize needs names: the Workflow (generateName) is submitted on its own, `argo submit`.
    applied = [file_name(o) for o in objects if o["kind"] != "Workflow"]
    return finish(
        out, release, ctx, objects, applied=applied, extra={}, warnings=warnings, settings=settings,
        command="mlfactor deploy argo",
    )  # fmt: skip


def render_airflow(
    settings: Settings,
    release: Release,
    pipeline: Path,
    out: Path,
    *,
    options: EngineOptions | None = None,
    dag: airflow.AirflowOptions | None = None,
    deploy: DeployOptions | None = None,
) -> Rendered:
    """Write the pipeline's Airflow DAG file and the release's ConfigMap its pods read."""
    options = options or EngineOptions()
    dag = dag or airflow.AirflowOptions(schedule=options.schedule, retries=options.retries)
    if dag.operator not in airflow.OPERATORS:
        raise ValidationError(
            "--operator", [f"{dag.operator!r}: expected one of {', '.join(airflow.OPERATORS)}"]
        )
    if options.sweeps:
        raise ValidationError(
            "--sweep", ["an Airflow DAG runs one pipeline run; render a sweep for Argo or as an Indexed Job"]
        )
    ctx = release_context(release, deploy or DeployOptions(pipelines=()))
    run_id_file = airflow.XCOM_FILE if dag.operator == "kubernetes" else None
    workflow, _, needed = _workflow(
        settings, pipeline, options, airflow.run_id_token(dag.operator), run_id_file
    )
    pod = airflow.pod_template(ctx)
    dag = replace(dag, schedule=dag.schedule or options.schedule or workflow.schedule)
    source = airflow.dag_source(ctx, workflow, dag, header_for(release, "mlfactor deploy airflow"))
    warnings = image_warnings(settings, release.bento_tag, needed)[1] if dag.operator == "kubernetes" else []
    objects = [m.config_map(ctx)]
    extra = {f"{airflow.dag_id(ctx, workflow).replace('-', '_')}.py": source}
    return finish(
        out, release, ctx, objects, applied=[file_name(o) for o in objects], extra=extra, warnings=warnings,
        settings=settings, embedded=[pod] if dag.operator == "kubernetes" else [],
        command="mlfactor deploy airflow",
    )  # fmt: skip
