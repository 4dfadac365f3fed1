"""A release's configuration as Kubernetes sees it: a ConfigMap of plain values, Secret references by name.

The release record holds the non-secret settings it was released with (URI
passwords already masked) and the *names* of the secret variables it left
out. Here they become:

* the ConfigMap data: every plain value, as a string, plus the two variables
  that make the Bento run this release (``MLFACTOR_BENTO_MODEL``,
  ``MLFACTOR_RELEASE``) and the bind address a pod needs (``0.0.0.0``);
* Secret references: every excluded secret and every value whose password
  was masked becomes ``valueFrom.secretKeyRef`` into one Secret the operator
  creates (``<app>-secrets``); no secret value is ever written;
* the pod's own variables: where the image keeps the Bento and where the pod
  may write, which map to local folders when the same command runs locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlfactor.deploy.options import IMAGE_BENTO_PATH, SCRATCH, SECRET_SUFFIX
from mlfactor.masking import MASK, is_secret_name
from mlfactor.release.records import Release

BIND_ALL = "0.0.0.0"  # noqa: S104 - a pod must listen on its own IP for probes and the Service
DEFAULT_PORT = 3000
DEFAULT_GRACE = 10.0
# Overridden in every pod, whatever the release said, and why (shown in an annotation).
POD_OVERRIDES = {"BENTOML_HOST": BIND_ALL}
# Variables of the pod itself, in order ($(VAR) may only name a variable defined before it).
POD_VARIABLES: tuple[tuple[str, str], ...] = (
    ("BENTO_PATH", IMAGE_BENTO_PATH),
    ("TMPDIR", SCRATCH),
    ("HOME", "$(TMPDIR)"),
    ("BENTOML_HOME", "$(TMPDIR)/bentoml"),
    ("PYTHONPATH", "$(BENTO_PATH)/src/src"),
    ("MLFACTOR_PROJECT_DIR", "$(BENTO_PATH)/src"),
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("BENTOML_DO_NOT_TRACK", "true"),
)
# The variables a local run may replace: filesystem roots, network binding, downward API.
LOCAL_OVERRIDABLE = frozenset(
    {"BENTO_PATH", "TMPDIR", "BENTOML_HOST", "BENTOML_PORT", "PORT", "JOB_COMPLETION_INDEX"}
)


@dataclass(frozen=True)
class ReleaseEnvironment:
    """The environment of every container of a release: ConfigMap data, Secret keys, pod variables."""

    app: str
    config: dict[str, str]
    secret_keys: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def secret_name(self) -> str:
        """The Secret the operator creates with one key per name in ``secret_keys``."""
        return f"{self.app}{SECRET_SUFFIX}"

    @property
    def port(self) -> int:
        """The port the service listens on (``BENTOML_PORT``, else ``PORT``, else 3000)."""
        for name in ("BENTOML_PORT", "PORT"):
            value = self.config.get(name, "")
            if value.isdigit():
                return int(value)
        return DEFAULT_PORT

    @property
    def grace_period(self) -> float:
        """The service's grace period after SIGTERM (``MLFACTOR_GRACE_PERIOD``)."""
        try:
            return float(self.config.get("MLFACTOR_GRACE_PERIOD", DEFAULT_GRACE))
        except ValueError:
            return DEFAULT_GRACE

    def container_env(self) -> list[dict[str, Any]]:
        """Return the ``env`` list of a container: pod variables, then one secretKeyRef per secret key."""
        env: list[dict[str, Any]] = [{"name": name, "value": value} for name, value in POD_VARIABLES]
        env += [
            {"name": key, "valueFrom": {"secretKeyRef": {"key": key, "name": self.secret_name}}}
            for key in self.secret_keys
        ]
        return env


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_masked(value: str) -> bool:
    return f":{MASK}@" in value or value == MASK


def _portability_warnings(config: dict[str, str]) -> list[str]:
    found: list[str] = []
    uri = config.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith(("sqlite:", "file:")) or (uri and "://" not in uri):
        found.append(
            f"MLFLOW_TRACKING_URI is {uri!r}, a file inside each pod: pipeline, sweep and admin jobs "
            "would each write their own store. Release with a shared tracking server "
            "(http://mlflow:5000) or PostgreSQL."
        )
    root = config.get("MLFACTOR_ARTIFACT_ROOT", "")
    if root.startswith("/"):
        found.append(
            f"MLFACTOR_ARTIFACT_ROOT is the local folder {root!r}; artifacts written by jobs stay in "
            "their pod. Release with an object store (s3://...) or `mlflow-artifacts:/` through the "
            "tracking server."
        )
    if config.get("MLFACTOR_FLAGS_FILE"):
        found.append("MLFACTOR_FLAGS_FILE names a file the image does not have: mount it into the pod.")
    if config.get("MLFACTOR_LOG_FORMAT") == "console":
        found.append("MLFACTOR_LOG_FORMAT is 'console': log collectors expect 'json' (or 'auto').")
    return found


def release_environment(release: Release, app: str) -> ReleaseEnvironment:
    """Split a release's configuration into ConfigMap data and Secret keys; no value leaves a secret."""
    config: dict[str, str] = {}
    secrets = set(release.secrets_excluded)
    for name, value in release.config.items():
        if value is None:
            continue
        text = _text(value)
        if is_secret_name(name) or _is_masked(text):
            secrets.add(name)
            continue
        config[name] = text
    config.update(release.run_environment())
    config.update(POD_OVERRIDES)
    pod_names = {name for name, _ in POD_VARIABLES}
    keys = tuple(sorted(name for name in secrets if name not in pod_names))
    for name in keys:
        config.pop(name, None)
    return ReleaseEnvironment(
        app=app,
        config=dict(sorted(config.items())),
        secret_keys=keys,
        warnings=tuple(_portability_warnings(config)),
    )
