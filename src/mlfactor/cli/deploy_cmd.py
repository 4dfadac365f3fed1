"""``mlfactor deploy render``: Kubernetes manifests for a release (see docs/deploy.md)."""

from __future__ import annotations

from pathlib import Path

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json
from mlfactor.cli.types import QUANTITY
from mlfactor.errors import ExitCode, exit_codes_help

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
    """Hand a release to Kubernetes: render its manifests (no cluster or Docker needed)."""


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
