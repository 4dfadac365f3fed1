"""mlfactor's own manifest rules: each one passes the rendered manifests and catches its own breakage."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import store_environment

from mlfactor.deploy import manifests as m
from mlfactor.deploy.options import DeployOptions
from mlfactor.deploy.render import release_context, render_release
from mlfactor.deploy.rules import RULES, RuleContext, check_manifests, service_routes
from mlfactor.errors import ValidationError
from mlfactor.release.records import Release, config_hash, release_config
from mlfactor.settings import load_settings

Objects = list[dict[str, Any]]
KNOWN_SECRET = "s3cr3t-known-value"


def _release(env: dict[str, str]) -> Release:
    settings = load_settings(env)
    config, excluded = release_config(settings)
    return Release(
        release_id="rel-20261126-101500-a1b2c3", app="mlfactor", bento_tag="mlfactor:v3-0123456789ab",
        model_name="iris-classifier", model_version="3", model_tag="iris-classifier:v3-feedc0ffee12",
        config_hash=config_hash(config), created_at="2026-11-26T10:15:00.000+00:00", created_ns=1, who="t",
        config=config, secrets_excluded=excluded,
    )  # fmt: skip


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> Objects:
    """Build the objects `deploy render` writes for a release, before any rule ran."""
    env = {**store_environment(tmp_path_factory.mktemp("store")), "MLFLOW_TRACKING_TOKEN": KNOWN_SECRET}
    ctx = release_context(_release(env), DeployOptions())
    return [
        m.config_map(ctx), m.deployment(ctx), m.service(ctx), m.autoscaler(ctx), m.disruption_budget(ctx),
        m.pipeline_cron_job(ctx, "train", "pipelines/train.yaml"), m.db_upgrade_job(ctx),
    ]  # fmt: skip


CONTEXT = RuleContext(image="mlfactor:v3-0123456789ab", secret_values=(KNOWN_SECRET,))


def _kind(objs: Objects, kind: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind)


def _server(objs: Objects) -> dict[str, Any]:
    container: dict[str, Any] = _kind(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container  # the object itself, so breakages change it


def _pod(objs: Objects, kind: str = "Deployment") -> dict[str, Any]:
    spec = _kind(objs, kind)["spec"]
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def _probe_path(objs: Objects) -> None:
    _server(objs)["readinessProbe"]["httpGet"]["path"] = "/ready"


def _no_liveness(objs: Objects) -> None:
    del _server(objs)["livenessProbe"]


def _probe_port(objs: Objects) -> None:
    _server(objs)["ports"][0]["containerPort"] = 8080


def _short_grace(objs: Objects) -> None:
    _pod(objs)["terminationGracePeriodSeconds"] = 15  # = preStop 5 + grace 10: not longer


def _no_pre_stop(objs: Objects) -> None:
    del _server(objs)["lifecycle"]


def _unbounded_shutdown(objs: Objects) -> None:
    _server(objs)["command"] = ["bentoml", "serve", "$(BENTO_PATH)"]


def _secret_as_value(objs: Objects) -> None:
    _pod(objs, "Job")["containers"][0]["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"})


def _uri_password_in_configmap(objs: Objects) -> None:
    _kind(objs, "ConfigMap")["data"]["MLFLOW_TRACKING_URI"] = "postgresql://u:hunter22@db/mlflow"


def _known_secret_in_annotation(objs: Objects) -> None:
    _kind(objs, "Service")["metadata"]["annotations"]["note"] = f"token {KNOWN_SECRET}"


def _no_memory_limit(objs: Objects) -> None:
    del _pod(objs, "CronJob")["containers"][0]["resources"]["limits"]["memory"]


def _latest_image(objs: Objects) -> None:
    _pod(objs, "Job")["containers"][0]["image"] = "mlfactor:latest"


def _root_user(objs: Objects) -> None:
    _pod(objs)["securityContext"]["runAsUser"] = 0


def _escalation(objs: Objects) -> None:
    _pod(objs, "Job")["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True


def _writable_root(objs: Objects) -> None:
    _server(objs)["securityContext"]["readOnlyRootFilesystem"] = False


def _no_scratch_mount(objs: Objects) -> None:
    _pod(objs, "CronJob")["containers"][0]["volumeMounts"] = []


def _service_links(objs: Objects) -> None:
    _pod(objs, "Job")["enableServiceLinks"] = True


BREAKAGES: list[tuple[str, Callable[[Objects], None], str]] = [
    ("probes", _probe_path, "'/ready' is not a GET route"),
    ("probes", _no_liveness, "no livenessProbe"),
    ("probes", _probe_port, "binds 3000"),
    ("grace-period", _short_grace, "terminationGracePeriodSeconds 15 <="),
    ("grace-period", _no_pre_stop, "no preStop sleep"),
    ("grace-period", _unbounded_shutdown, "--timeout-graceful-shutdown"),
    ("no-secret-values", _secret_as_value, "AWS_SECRET_ACCESS_KEY is a secret written as a value"),
    ("no-secret-values", _uri_password_in_configmap, "URI with a password"),
    ("no-secret-values", _known_secret_in_annotation, "secret value(s) of this environment"),
    ("resources", _no_memory_limit, "no limits.memory"),
    ("image", _latest_image, "'mlfactor:latest'"),
    ("non-root", _root_user, "user 0"),
    ("non-root", _escalation, "allowPrivilegeEscalation"),
    ("read-only-root", _writable_root, "readOnlyRootFilesystem is not true"),
    ("read-only-root", _no_scratch_mount, "TMPDIR (/tmp) is not an emptyDir mount"),
    ("service-links", _service_links, "enableServiceLinks must be false"),
]


def test_rendered_objects_pass_every_rule(objects: Objects) -> None:
    """What `deploy render` produces breaks none of the rules."""
    assert check_manifests(objects, CONTEXT) == []


def test_every_rule_has_a_breakage_test() -> None:
    """Each registered rule is exercised by at least one breakage below."""
    assert {rule for rule, _, _ in BREAKAGES} == set(RULES)


@pytest.mark.parametrize(
    ("rule", "breakage", "expected"), BREAKAGES, ids=[f"{r}-{b.__name__[1:]}" for r, b, _ in BREAKAGES]
)
def test_each_rule_catches_its_breakage(
    objects: Objects, rule: str, breakage: Callable[[Objects], None], expected: str
) -> None:
    """Breaking one property makes exactly that rule report it, naming the object."""
    broken = copy.deepcopy(objects)
    breakage(broken)
    problems = check_manifests(broken, CONTEXT)
    assert problems, "the rule did not notice"
    assert all(p.startswith(f"{rule}: ") for p in problems), problems
    assert any(expected in p for p in problems), problems


def test_probe_routes_are_the_services_get_routes() -> None:
    """The routes probes may use include BentoML's health routes and the app's /metadata, not POST routes."""
    routes = service_routes()
    assert {"/readyz", "/livez", "/metrics", "/metadata"} <= routes
    assert "/predict" not in routes


def test_render_refuses_manifests_that_would_leak_a_secret(tmp_path: Path) -> None:
    """A plain setting equal to a secret value of this environment stops the rendering; nothing is written."""
    env = {
        **store_environment(tmp_path / "store"),
        "MLFLOW_TRACKING_TOKEN": "shared-value-42",
        "MLFACTOR_EXPERIMENT": "shared-value-42",
    }
    settings = load_settings(env)
    release = _release(env)
    with pytest.raises(ValidationError, match="no-secret-values"):
        render_release(settings, release, tmp_path / "out")
    assert not (tmp_path / "out").exists()
