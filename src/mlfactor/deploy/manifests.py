"""Kubernetes objects for one release, as plain dicts: serving, autoscaling, disruption budget, jobs.

Every workload runs the release's Bento image with the same environment
(:mod:`mlfactor.deploy.environment`), the same non-root, read-only-root
security context and one writable scratch volume. Commands are explicit:
the service runs ``bentoml serve $(BENTO_PATH)`` (what the image's entrypoint
would run, with mlfactor's bounded shutdown), the jobs run the mlfactor CLI
from the Bento's sources, so each command also runs as a local process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlfactor.deploy.environment import ReleaseEnvironment
from mlfactor.deploy.options import (
    BENTO_UID,
    SCRATCH,
    DeployOptions,
    Resources,
    common_labels,
    dns_label,
    image_for,
    release_suffix,
    split_bento_tag,
)
from mlfactor.errors import non_retryable_exit_codes
from mlfactor.release.records import Release

READY_PATH = "/readyz"
LIVE_PATH = "/livez"
PORT_NAME = "http"
SCRATCH_VOLUME = "scratch"
MLFACTOR = ("python", "-c", "from mlfactor.cli import main; main()")  # the CLI from the Bento's sources
# Exit codes a retry cannot fix, from the one table (mlfactor.errors.EXIT_CODES): 69 (backing
# service down), 75 (lock held) and signals are retried.
NON_RETRYABLE = non_retryable_exit_codes()
ANNOTATION = "mlfactor.io"
DATABASE_KEY = "MLFLOW_BACKEND_STORE_URI"  # the tracking database, for db-upgrade behind a server


@dataclass(frozen=True)
class ReleaseContext:
    """Everything a manifest of one release is built from."""

    release: Release
    env: ReleaseEnvironment
    options: DeployOptions

    @property
    def app(self) -> str:
        """The application's Kubernetes name (the Bento name as a DNS label)."""
        return self.env.app

    @property
    def image(self) -> str:
        """The release's image: ``[REGISTRY/]BENTO_NAME:BENTO_VERSION``."""
        return image_for(self.release.bento_tag, self.options.registry)

    @property
    def config_map_name(self) -> str:
        """One immutable ConfigMap per release: rolling back re-applies the previous one."""
        return dns_label(f"{self.app[:32]}-{release_suffix(self.release.release_id)}")

    def labels(self, component: str) -> dict[str, str]:
        """Return the common labels plus the Bento version."""
        _, version = split_bento_tag(self.release.bento_tag)
        labels = {**common_labels(self.app, component), "app.kubernetes.io/version": version[:63]}
        return {**labels, **self.options.extra_labels}

    def annotations(self) -> dict[str, str]:
        """Where the objects come from: release, Bento, model version and configuration hash."""
        r = self.release
        return {
            f"{ANNOTATION}/bento": r.bento_tag,
            f"{ANNOTATION}/config-hash": r.config_hash,
            f"{ANNOTATION}/model": f"{r.model_name}/{r.model_version}",
            f"{ANNOTATION}/release": r.release_id,
        }

    def metadata(self, name: str, component: str) -> dict[str, Any]:
        """``metadata`` of a top-level object."""
        return {"annotations": self.annotations(), "labels": self.labels(component), "name": name}


def selector(app: str, component: str) -> dict[str, str]:
    """Return the stable selector of a component (never the version: a Deployment's selector is immutable)."""
    return {"app.kubernetes.io/component": component, "app.kubernetes.io/name": app}


def container(
    ctx: ReleaseContext, name: str, command: list[str], args: list[str], resources: Resources
) -> dict[str, Any]:
    """Return a container of the release image: explicit command, release environment, locked down."""
    spec: dict[str, Any] = {
        "command": command,
        "env": ctx.env.container_env(),
        "envFrom": [{"configMapRef": {"name": ctx.config_map_name}}],
        "image": ctx.image,
        "imagePullPolicy": "IfNotPresent",
        "name": name,
        "resources": resources.to_manifest(),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "volumeMounts": [{"mountPath": SCRATCH, "name": SCRATCH_VOLUME}],
    }
    if args:
        spec["args"] = args
    return spec


def pod_spec(main: dict[str, Any], *, restart_policy: str, grace_seconds: int) -> dict[str, Any]:
    """Return a pod spec running ``main`` as the Bento's non-root user with one writable emptyDir."""
    return {
        "automountServiceAccountToken": False,
        "containers": [main],
        "enableServiceLinks": False,  # they inject <SERVICE>_PORT; settings refuse unknown MLFACTOR_*
        "restartPolicy": restart_policy,
        "securityContext": {
            "fsGroup": BENTO_UID,
            "runAsGroup": BENTO_UID,
            "runAsNonRoot": True,
            "runAsUser": BENTO_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": grace_seconds,
        "volumes": [{"emptyDir": {"sizeLimit": "2Gi"}, "name": SCRATCH_VOLUME}],
    }


def serve_command(grace_period: float) -> list[str]:
    """Return the service's command: `bentoml serve` of the image's Bento, shutdown bounded."""
    return [
        "bentoml",
        "serve",
        "$(BENTO_PATH)",
        "--timeout-graceful-shutdown",
        str(max(1, math.ceil(grace_period))),
    ]


def config_map(ctx: ReleaseContext) -> dict[str, Any]:
    """Return the ConfigMap of the release's plain settings; immutable, named after the release."""
    meta = ctx.metadata(ctx.config_map_name, "config")
    meta["annotations"][f"{ANNOTATION}/secret-keys"] = ",".join(ctx.env.secret_keys)
    return {
        "apiVersion": "v1",
        "data": ctx.env.config,
        "immutable": True,
        "kind": "ConfigMap",
        "metadata": meta,
    }


def deployment(ctx: ReleaseContext) -> dict[str, Any]:
    """Return the serving Deployment: probes, preStop pause, bounded termination, safe rollouts."""
    opts = ctx.options
    main = container(ctx, "service", serve_command(ctx.env.grace_period), [], opts.service)
    main["ports"] = [{"containerPort": ctx.env.port, "name": PORT_NAME, "protocol": "TCP"}]

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "failureThreshold": failures,
            "httpGet": {"path": path, "port": PORT_NAME},
            "periodSeconds": period,
            "timeoutSeconds": 2,
        }

    main["startupProbe"] = probe(LIVE_PATH, 2, 60)
    main["readinessProbe"] = probe(READY_PATH, 5, 2)
    main["livenessProbe"] = probe(LIVE_PATH, 10, 3)
    main["lifecycle"] = {"preStop": {"sleep": {"seconds": opts.pre_stop_seconds}}}
    grace = opts.termination_grace_seconds(ctx.env.grace_period)
    labels = ctx.labels("server")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.metadata(ctx.app, "server"),
        "spec": {
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": selector(ctx.app, "server")},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}, "type": "RollingUpdate"},
            "template": {
                "metadata": {"annotations": ctx.annotations(), "labels": labels},
                "spec": pod_spec(main, restart_policy="Always", grace_seconds=grace),
            },
        },
    }


def service(ctx: ReleaseContext) -> dict[str, Any]:
    """Return a ClusterIP Service in front of the serving pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(ctx.app, "server"),
        "spec": {
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": ctx.options.service_port,
                    "protocol": "TCP",
                    "targetPort": PORT_NAME,
                }
            ],
            "selector": selector(ctx.app, "server"),
            "type": "ClusterIP",
        },
    }


def autoscaler(ctx: ReleaseContext) -> dict[str, Any]:
    """Return a HorizontalPodAutoscaler on CPU; it owns the replica count (the Deployment sets none)."""
    opts = ctx.options
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": ctx.metadata(ctx.app, "server"),
        "spec": {
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            "maxReplicas": opts.max_replicas,
            "metrics": [
                {
                    "resource": {
                        "name": "cpu",
                        "target": {"averageUtilization": opts.cpu_target, "type": "Utilization"},
                    },
                    "type": "Resource",
                }
            ],
            "minReplicas": opts.min_replicas,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": ctx.app},
        },
    }


def disruption_budget(ctx: ReleaseContext) -> dict[str, Any]:
    """Return a PodDisruptionBudget: voluntary evictions take at most one serving pod at a time."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.metadata(ctx.app, "server"),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(ctx.app, "server")},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def failure_policy(container_name: str, action: str = "FailJob") -> dict[str, Any]:
    """Fail at once on exit codes a retry cannot fix; never count node drains and preemptions."""
    return {
        "rules": [
            {
                "action": action,
                "onExitCodes": {
                    "containerName": container_name,
                    "operator": "In",
                    "values": list(NON_RETRYABLE),
                },
            },
            {"action": "Ignore", "onPodConditions": [{"status": "True", "type": "DisruptionTarget"}]},
        ]
    }


def job_pod(ctx: ReleaseContext, name: str, args: list[str], component: str) -> dict[str, Any]:
    """Return the pod template of a job running ``mlfactor ARGS`` from the release image."""
    main = container(ctx, name, list(MLFACTOR), args, ctx.options.jobs)
    return {
        "metadata": {"annotations": ctx.annotations(), "labels": ctx.labels(component)},
        "spec": pod_spec(main, restart_policy="Never", grace_seconds=30),
    }


def db_upgrade_job(ctx: ReleaseContext) -> dict[str, Any]:
    """Return the Job that migrates the tracking database before a rollout (``mlfactor admin db-upgrade``).

    With a tracking *server* (http://) the job needs the database itself: its
    URI comes from the Secret's ``MLFLOW_BACKEND_STORE_URI`` key, the variable
    ``mlflow server`` reads too.
    """
    name = dns_label(f"{ctx.app[:20]}-db-upgrade-{release_suffix(ctx.release.release_id)}")
    template = job_pod(ctx, "admin", ["admin", "db-upgrade"], "admin")
    if ctx.env.config.get("MLFLOW_TRACKING_URI", "").startswith(("http://", "https://")):
        ref = {"secretKeyRef": {"key": DATABASE_KEY, "name": ctx.env.secret_name}}
        template["spec"]["containers"][0]["env"] += [
            {"name": "MLFLOW_TRACKING_URI", "valueFrom": ref},
            {"name": "MLFLOW_REGISTRY_URI", "valueFrom": ref},
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": ctx.metadata(name, "admin"),
        "spec": {
            "activeDeadlineSeconds": ctx.options.admin_deadline_seconds,
            "backoffLimit": 3,
            "podFailurePolicy": failure_policy("admin"),
            "template": template,
            "ttlSecondsAfterFinished": ctx.options.job_ttl_seconds,
        },
    }


def pipeline_args(pipeline_ref: str, extra: list[str] | None = None) -> list[str]:
    """``mlfactor run`` arguments for a pipeline file inside the image's project folder."""
    return [
        "run",
        f"$(MLFACTOR_PROJECT_DIR)/{pipeline_ref}",
        *(extra or []),
        "--no-progress",
        "--output-dir",
        "$(TMPDIR)/output",
    ]


def pipeline_cron_job(ctx: ReleaseContext, pipeline_name: str, pipeline_ref: str) -> dict[str, Any]:
    """Return the CronJob running a pipeline on a schedule, one run at a time."""
    opts = ctx.options
    name = dns_label(f"{ctx.app[:32]}-{pipeline_name}", limit=52)
    template = job_pod(ctx, "pipeline", pipeline_args(pipeline_ref), "pipeline")
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": ctx.metadata(name, "pipeline"),
        "spec": {
            "concurrencyPolicy": "Forbid",
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": ctx.labels("pipeline")},
                "spec": {
                    "backoffLimit": 2,
                    "podFailurePolicy": failure_policy("pipeline"),
                    "template": template,
                },
            },
            "schedule": opts.schedule,
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "timeZone": opts.time_zone,
        },
    }
