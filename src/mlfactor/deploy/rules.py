"""mlfactor's own checks on rendered manifests, beyond what the Kubernetes schema says.

Each rule takes every rendered object and a :class:`RuleContext` and returns
its problems as sentences naming the object, the bad value and the fix.
:func:`check_manifests` runs them all and reports every problem at once;
``mlfactor deploy render`` refuses to write manifests that break a rule.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from mlfactor.deploy.environment import DEFAULT_GRACE, DEFAULT_PORT
from mlfactor.deploy.manifests import LIVE_PATH, READY_PATH
from mlfactor.masking import is_secret_name, mask_uri
from mlfactor.serving.core import ROUTES

Manifest = dict[str, Any]
# Served by BentoML itself for every service (bentoml/_internal/server/base_app.py, get_system_routes).
BENTOML_SYSTEM_ROUTES = ("/healthz", "/livez", "/metrics", "/readyz")
_MIN_SECRET_LENGTH = 6  # shorter values (true, 1234) would match innocent text


@cache
def service_routes() -> frozenset[str]:
    """Return the GET paths the service answers: BentoML's system routes plus mlfactor's GET routes."""
    mlfactor_routes = (path for path, methods in ROUTES.items() if "GET" in methods)
    return frozenset({*BENTOML_SYSTEM_ROUTES, *mlfactor_routes})


@dataclass(frozen=True)
class RuleContext:
    """What the rules compare the manifests with."""

    image: str
    secret_values: tuple[str, ...] = ()
    routes: frozenset[str] = field(default_factory=service_routes)


Rule = Callable[[Sequence[Manifest], RuleContext], list[str]]


def _name(obj: Manifest) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind', '?')}/{meta.get('name') or meta.get('generateName', '?')}"


def pod_specs(manifests: Sequence[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """Every (object, pod spec) pair of the workloads among ``manifests``."""
    for obj in manifests:
        if obj.get("kind") in {"Workflow", "CronWorkflow"}:  # Argo: one pod per container template
            from mlfactor.deploy.argo import container_templates

            for pod, _ in container_templates(obj):
                yield obj, pod
            continue
        spec = obj.get("spec") or {}
        if obj.get("kind") == "Pod":  # a pod template (Airflow's KubernetesPodOperator)
            yield obj, spec
            continue
        if obj.get("kind") == "CronJob":
            spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        template = spec.get("template") if obj.get("kind") in {"Deployment", "Job", "CronJob"} else None
        if template is not None:
            yield obj, template.get("spec") or {}


def containers(manifests: Sequence[Manifest]) -> Iterator[tuple[Manifest, Manifest, Manifest]]:
    """Every (object, pod spec, container) triple, init containers included."""
    for obj, pod in pod_specs(manifests):
        for item in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
            yield obj, pod, item


def _config_data(manifests: Sequence[Manifest], item: Manifest) -> dict[str, str]:
    names = {ref["configMapRef"]["name"] for ref in item.get("envFrom") or [] if "configMapRef" in ref}
    data: dict[str, str] = {}
    for obj in manifests:
        if obj.get("kind") == "ConfigMap" and obj.get("metadata", {}).get("name") in names:
            data.update(obj.get("data") or {})
    return data


def _port_of(config: Mapping[str, str]) -> int:
    for name in ("BENTOML_PORT", "PORT"):
        if str(config.get(name, "")).isdigit():
            return int(config[name])
    return DEFAULT_PORT


def check_probes(manifests: Sequence[Manifest], ctx: RuleContext) -> list[str]:
    """Check that serving containers probe /readyz and /livez on the port the service binds."""
    found: list[str] = []
    for obj, _, item in containers(manifests):
        if obj.get("kind") != "Deployment":
            continue
        where = f"{_name(obj)} container {item.get('name')}"
        ports = {p.get("name"): p.get("containerPort") for p in item.get("ports") or []}
        bound = _port_of(_config_data(manifests, item))
        if bound not in ports.values():
            found.append(f"{where}: declares ports {sorted(ports.values())} but the service binds {bound}")
        for kind, required in (
            ("readinessProbe", READY_PATH),
            ("livenessProbe", LIVE_PATH),
            ("startupProbe", None),
        ):
            probe = item.get(kind)
            if probe is None:
                if required is not None:
                    found.append(f"{where}: no {kind}; add an httpGet probe on {required}")
                continue
            get = probe.get("httpGet") or {}
            path, port = get.get("path"), get.get("port")
            if path not in ctx.routes:
                found.append(
                    f"{where}: {kind} path {path!r} is not a GET route of the service {sorted(ctx.routes)}"
                )
            elif required is not None and path != required:
                found.append(f"{where}: {kind} path {path!r}; expected {required}")
            if ports.get(port, port) != bound:
                found.append(f"{where}: {kind} port {port!r} is not the service's port {bound}")
    return found


def _pre_stop_seconds(item: Manifest) -> float | None:
    pre_stop = (item.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"].get("seconds", 0))
    return None


def _flag(command: Sequence[str], flag: str) -> str | None:
    items = list(command)
    return items[items.index(flag) + 1] if flag in items[:-1] else None


def check_grace_period(manifests: Sequence[Manifest], ctx: RuleContext) -> list[str]:
    """Check that terminationGracePeriodSeconds exceeds the preStop pause plus the service's grace period."""
    found: list[str] = []
    for obj, pod, item in containers(manifests):
        if obj.get("kind") != "Deployment":
            continue
        where = f"{_name(obj)} container {item.get('name')}"
        config = _config_data(manifests, item)
        grace = float(config.get("MLFACTOR_GRACE_PERIOD", DEFAULT_GRACE))
        pause = _pre_stop_seconds(item)
        if pause is None:
            found.append(f"{where}: no preStop sleep; endpoints would still send traffic after SIGTERM")
            pause = 0.0
        total = pod.get("terminationGracePeriodSeconds", 30)
        if not total > pause + grace:
            found.append(
                f"{where}: terminationGracePeriodSeconds {total} <= preStop {pause:g} s + grace period "
                f"{grace:g} s (MLFACTOR_GRACE_PERIOD); set it to at least {math.floor(pause + grace) + 1}"
            )
        command = [*(item.get("command") or []), *(item.get("args") or [])]
        bound = _flag(command, "--timeout-graceful-shutdown")
        if "serve" in command and (bound is None or float(bound) > total - pause):
            found.append(
                f"{where}: `bentoml serve` needs --timeout-graceful-shutdown <= {total - pause:g} s "
                f"(got {bound}); unbounded it waits up to 24 h"
            )
    return found


def _env_problems(where: str, name: str, value: str) -> list[str]:
    found = []
    if is_secret_name(name):
        found.append(f"{where}: {name} is a secret written as a value; use secretKeyRef")
    if "://" in value and mask_uri(value) != value:
        found.append(f"{where}: {name} holds a URI with a password; reference it from a Secret")
    return found


def check_no_secret_values(manifests: Sequence[Manifest], ctx: RuleContext) -> list[str]:
    """Check that no secret value is written: secrets come only from secretKeyRef or secretRef."""
    found: list[str] = []
    for obj in manifests:
        if obj.get("kind") == "Secret" and (obj.get("data") or obj.get("stringData")):
            found.append(f"{_name(obj)}: a Secret with values; create it out of band, never render it")
        if obj.get("kind") == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                found += _env_problems(_name(obj), key, str(value))
    for obj, _, item in containers(manifests):
        for entry in item.get("env") or []:
            if "value" in entry:
                found += _env_problems(
                    f"{_name(obj)} container {item.get('name')}", entry["name"], str(entry["value"])
                )
    text = json.dumps(list(manifests), sort_keys=True)
    leaked = [
        v for v in set(ctx.secret_values) if len(v) >= _MIN_SECRET_LENGTH and not v.isdigit() and v in text
    ]
    if leaked:
        found.append(f"{len(leaked)} secret value(s) of this environment appear in the manifests (not shown)")
    return found


def check_resources(manifests: Sequence[Manifest], ctx: RuleContext) -> list[str]:
    """Check that every container sets CPU and memory requests and limits."""
    found = []
    for obj, _, item in containers(manifests):
        resources = item.get("resources") or {}
        missing = [
            f"{kind}.{res}"
            for kind in ("requests", "limits")
            for res in ("cpu", "memory")
            if not (resources.get(kind) or {}).get(res)
        ]
        if missing:
            found.append(f"{_name(obj)} container {item.get('name')}: no {', '.join(missing)}")
    return found


def check_image(manifests: Sequence[Manifest], ctx: RuleContext) -> list[str]:
    """Check that every container runs the release's image, whose tag is the release's Bento version."""
    return [
        f"{_name(obj)} container {item.get('name')}: image {item.get('image')!r}; "
        f"expected the release's {ctx.image!r}"
        for obj, _, item in containers(manifests)
        if item.get("image") != ctx.image
    ]


def check_non_root(manifests: Sequence[Manifest], ctx: RuleContext) -> list[str]:
    """Check that pods run as a non-root user without privilege escalation."""
    found = []
    for obj, pod, item in containers(manifests):
        where = f"{_name(obj)} container {item.get('name')}"
        pod_sc, sc = pod.get("securityContext") or {}, item.get("securityContext") or {}
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            found.append(f"{where}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            found.append(f"{where}: runs as user 0 (root)")
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("privileged"):
            found.append(f"{where}: allowPrivilegeEscalation must be false and privileged unset")
    return found


def check_read_only_root(manifests: Sequence[Manifest], ctx: RuleContext) -> list[str]:
    """Check that root filesystems are read-only; TMPDIR, HOME and BENTOML_HOME sit on a mounted emptyDir."""
    found = []
    for obj, pod, item in containers(manifests):
        where = f"{_name(obj)} container {item.get('name')}"
        if (item.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
            found.append(f"{where}: readOnlyRootFilesystem is not true")
        empty = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}
        mounts = [m["mountPath"] for m in item.get("volumeMounts") or [] if m.get("name") in empty]
        env = {e["name"]: str(e.get("value", "")) for e in item.get("env") or []}
        tmp = env.get("TMPDIR", "")
        if not tmp or tmp not in mounts:
            found.append(f"{where}: TMPDIR ({tmp or 'unset'}) is not an emptyDir mount {mounts}")
        for name in ("HOME", "BENTOML_HOME"):
            value = env.get(name, "").replace("$(TMPDIR)", tmp or "$(TMPDIR)", 1)
            if not any(value == m or value.startswith(m + "/") for m in mounts):
                found.append(f"{where}: {name} ({value or 'unset'}) is not on a writable mount")
    return found


def check_service_links(manifests: Sequence[Manifest], ctx: RuleContext) -> list[str]:
    """Check that pods turn service links off: their <SERVICE>_PORT variables break settings."""
    return [
        f"{_name(obj)}: enableServiceLinks must be false (a Service named mlfactor injects MLFACTOR_PORT=tcp://...)"
        for obj, pod in pod_specs(manifests)
        if pod.get("enableServiceLinks") is not False
    ]


RULES: dict[str, Rule] = {
    "probes": check_probes,
    "grace-period": check_grace_period,
    "no-secret-values": check_no_secret_values,
    "resources": check_resources,
    "image": check_image,
    "non-root": check_non_root,
    "read-only-root": check_read_only_root,
    "service-links": check_service_links,
}


def check_manifests(manifests: Sequence[Manifest], ctx: RuleContext) -> list[str]:
    """Run every rule; return ``"rule: problem"`` lines (empty when the manifests pass)."""
    return [f"{name}: {problem}" for name, rule in RULES.items() for problem in rule(manifests, ctx)]
