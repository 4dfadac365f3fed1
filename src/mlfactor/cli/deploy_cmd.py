"""``mlfactor deploy render``: Kubernetes manifests for a release (see docs/deploy.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json
from mlfactor.cli.types import QUANTITY
from mlfactor.errors import ExitCode, exit_codes_help

if TYPE_CHECKING:
    from mlfactor.deploy.render import Rendered
    from mlfactor.release.records import Release
    from mlfactor.settings import Settings

E = ExitCode
RENDER_EXIT_CODES = exit_codes_help(
    E.OK,
    E.USAGE,
    E.INVALID_INPUT,
    E.NOT_FOUND,
    E.SERVICE_UNAVAILABLE,
    E.CONFIG,
    said={
        E.OK: "written",
        E.INVALID_INPUT: "invalid options or a broken rule",
        E.NOT_FOUND: "no such release",
    },
)


@click.group("deploy")
def deploy() -> None:
    """Hand a release to Kubernetes: render its manifests (no cluster or Docker needed).

    `render` writes the service, CronJobs and admin Job; `argo` and `airflow`
    write a pipeline as a workflow of one pod per step.
    """


@deploy.command("render", epilog=RENDER_EXIT_CODES)
@click.argument("release")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write (created; an earlier rendering there is replaced).",
)
@click.option(
    "--app", default=None, help="Application (Bento name) for `current`/`previous` when there are several."
)
@click.option("--registry", default="", help="Image registry prefix, e.g. ghcr.io/acme [default: none].")
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    metavar="FILE",
    help="Pipeline run by a CronJob; repeatable [default: pipelines/train.yaml].",
)
@click.option(
    "--schedule", default="0 3 * * *", show_default=True, help="Cron schedule of the pipeline CronJobs (UTC)."
)
@click.option(
    "--min-replicas", type=click.IntRange(min=1), default=2, show_default=True, help="Autoscaler minimum."
)
@click.option(
    "--max-replicas", type=click.IntRange(min=1), default=5, show_default=True, help="Autoscaler maximum."
)
@click.option(
    "--cpu-target",
    type=click.IntRange(1, 100),
    default=70,
    show_default=True,
    help="Autoscaler CPU target, % of request.",
)
@click.option(
    "--cpu",
    type=QUANTITY,
    default="500m",
    show_default=True,
    help="Service CPU request (limit: --cpu-limit).",
)
@click.option("--cpu-limit", type=QUANTITY, default="1", show_default=True, help="Service CPU limit.")
@click.option(
    "--memory", type=QUANTITY, default="1Gi", show_default=True, help="Service memory request and limit."
)
@click.option(
    "--pre-stop",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Seconds the pod keeps serving after removal from endpoints, before SIGTERM.",
)
def render(
    *,
    release: str,
    out: Path,
    app: str | None,
    registry: str,
    pipelines: tuple[str, ...],
    schedule: str,
    min_replicas: int,
    max_replicas: int,
    cpu_target: int,
    cpu: str,
    cpu_limit: str,
    memory: str,
    pre_stop: int,
) -> None:
    """Write the manifests of RELEASE (a release id, `current` or `previous`) to --out.

    Writes a ConfigMap of the release's settings, the serving Deployment,
    Service, HorizontalPodAutoscaler and PodDisruptionBudget, a CronJob per
    pipeline, the db-upgrade Job (run it before the rollout), a
    kustomization.yaml (`kubectl apply -k DIR`) and the Bento's Dockerfile.
    Secrets are referenced from the Secret <app>-secrets, never written.
    Refuses (exit 65) manifests that break mlfactor's rules; the same release
    and options always give byte-identical files. Prints a JSON summary.
    """
    from mlfactor.deploy.options import DeployOptions, Resources
    from mlfactor.deploy.releases import get_release
    from mlfactor.deploy.render import render_release
    from mlfactor.tracking import connect

    settings = start()
    options = DeployOptions(
        registry=registry,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        cpu_target=cpu_target,
        pre_stop_seconds=pre_stop,
        service=Resources(cpu, cpu_limit, memory, memory),
        pipelines=pipelines or DeployOptions().pipelines,
        schedule=schedule,
    )
    found = get_release(connect(settings), settings, release, app)
    result = render_release(settings, found, out, options)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    keys = " ".join(f"--from-literal={key}=..." for key in result.secret_keys)
    click.echo(
        f"rendered release {result.release_id} ({result.image}) into {result.out}\n"
        + (
            f"create the Secret first: kubectl create secret generic {result.secret_name} {keys}\n"
            if keys
            else ""
        )
        + "then see docs/deploy.md: run the db-upgrade Job, then `kubectl apply -k DIR`",
        err=True,
    )
    emit_json(result.to_dict())


def _engine_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options `deploy argo` and `deploy airflow` share."""
    options = [
        click.argument("pipeline", type=click.Path(path_type=Path)),
        click.option("--release", "release_ref", required=True, help="Release id, `current` or `previous`."),
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            required=True,
            help="Folder to write (created; an earlier rendering there is replaced).",
        ),
        click.option(
            "--app", default=None, help="Application for `current`/`previous` when there are several."
        ),
        click.option(
            "--registry", default="", help="Image registry prefix, e.g. ghcr.io/acme [default: none]."
        ),
        click.option(
            "--schedule", default=None, help="Cron schedule (UTC) to run the pipeline on [default: none]."
        ),
        click.option(
            "--retries",
            type=click.IntRange(0, 10),
            default=2,
            show_default=True,
            help="Retries of a failed task (Argo: only on exit codes a retry can fix).",
        ),
        click.option(
            "-p",
            "--parameter",
            "parameters",
            multiple=True,
            metavar="STEP.NAME=VALUE",
            help="Parameter override of every run (as `mlfactor run -p`). Repeatable.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _release(settings: Settings, ref: str, app: str | None) -> Release:
    from mlfactor.deploy.releases import get_release
    from mlfactor.tracking import connect

    return get_release(connect(settings), settings, ref, app)


def _report(result: Rendered, how: str) -> None:
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    keys = " ".join(f"--from-literal={key}=..." for key in result.secret_keys)
    secret = f"kubectl create secret generic {result.secret_name} {keys}\n" if keys else ""
    click.echo(
        f"rendered release {result.release_id} ({result.image}) into {result.out}\n{secret}{how}", err=True
    )
    emit_json(result.to_dict())


@deploy.command("argo", epilog=RENDER_EXIT_CODES)
@_engine_options
@click.option(
    "--sweep", "sweeps", multiple=True, metavar="STEP.NAME=V1,V2,...", help="Fan out a grid. Repeatable."
)
@click.option("--sweep-id", default=None, help="Id tagging every run of the sweep [default: derived].")
@click.option(
    "--max-parallel", type=click.IntRange(min=1), default=2, show_default=True, help="Sweep points at once."
)
def argo(
    *,
    pipeline: Path,
    release_ref: str,
    out: Path,
    app: str | None,
    registry: str,
    schedule: str | None,
    retries: int,
    parameters: tuple[str, ...],
    sweeps: tuple[str, ...],
    sweep_id: str | None,
    max_parallel: int,
) -> None:
    """Write PIPELINE as an Argo Workflow of RELEASE's image: one pod per step.

    Writes workflow.yaml (submit it: `argo submit` or `kubectl create -f`),
    cronworkflow.yaml with --schedule, the release's ConfigMap and a
    kustomization.yaml for them. Each step runs `mlfactor run --step` in its
    own pod; the run is opened first and finished last. Prints a JSON summary.
    """
    from mlfactor.deploy.engines import EngineOptions, render_argo
    from mlfactor.deploy.options import DeployOptions
    from mlfactor.pipeline.sweep import sweep_id as derive_sweep_id

    settings = start()
    identifier = (sweep_id or derive_sweep_id(pipeline, sweeps)) if sweeps else ""
    options = EngineOptions(schedule, retries, parameters, sweeps, identifier, max_parallel)
    found = _release(settings, release_ref, app)
    result = render_argo(
        settings, found, pipeline, out, options=options, deploy=DeployOptions(registry=registry, pipelines=())
    )
    _report(result, "then: kubectl apply -k DIR (ConfigMap, CronWorkflow); argo submit DIR/workflow.yaml")


@deploy.command("airflow", epilog=RENDER_EXIT_CODES)
@_engine_options
@click.option(
    "--operator",
    type=click.Choice(["kubernetes", "bash"]),
    default="kubernetes",
    show_default=True,
    help="KubernetesPodOperator per step, or BashOperator (a local executor on a machine with the project).",
)
@click.option(
    "--executable",
    default="mlfactor",
    show_default=True,
    help="With --operator bash: the mlfactor command on the worker.",
)
def airflow(
    *,
    pipeline: Path,
    release_ref: str,
    out: Path,
    app: str | None,
    registry: str,
    schedule: str | None,
    retries: int,
    parameters: tuple[str, ...],
    operator: str,
    executable: str,
) -> None:
    """Write PIPELINE as an Airflow DAG file of RELEASE: one task per step.

    Writes <app>_<pipeline>.py (copy it into the DAGs folder) and the
    release's ConfigMap its pods read. Each step runs `mlfactor run --step`
    in its own pod (or process, with --operator bash); the run is opened first
    and finished last. Prints a JSON summary.
    """
    from mlfactor.deploy.airflow import AirflowOptions
    from mlfactor.deploy.engines import EngineOptions, render_airflow
    from mlfactor.deploy.options import DeployOptions

    settings = start()
    found = _release(settings, release_ref, app)
    options = EngineOptions(schedule, retries, parameters)
    dag = AirflowOptions(operator, schedule, retries, executable, str(settings.project_dir))
    deploy_options = DeployOptions(registry=registry, pipelines=())
    result = render_airflow(settings, found, pipeline, out, options=options, dag=dag, deploy=deploy_options)
    _report(result, "then: kubectl apply -k DIR (the ConfigMap) and copy the .py file into the DAGs folder")
