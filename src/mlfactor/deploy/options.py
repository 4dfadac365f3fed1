"""What a rendering is made of besides the release: Kubernetes names, the image, sizes and schedules.

Every name here is derived from immutable inputs (the release record and
these options), never from the clock, so rendering the same release twice
gives the same names.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from mlfactor.errors import ValidationError

IMAGE_BENTO_PATH = "/home/bentoml/bento"  # where the Bento sits in the image (`BENTO_PATH` of its Dockerfile)
SCRATCH = "/tmp"  # noqa: S108 - the pod's only writable folder (an emptyDir); the root filesystem is read-only
BENTO_UID = (
    1034  # the `bentoml` user the Bento's Dockerfile creates (bentoml/_internal/container/generate.py)
)
SECRET_SUFFIX = "-secrets"  # noqa: S105 - a name suffix, not a password
PART_OF = "mlfactor"
_DNS_LABEL = re.compile(r"[^a-z0-9-]+")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_CRON_FIELDS = 5


def dns_label(text: str, *, limit: int = 63) -> str:
    """Return ``text`` as a Kubernetes DNS-1035 label: lowercase letters, digits and '-', a letter first."""
    slug = _DNS_LABEL.sub("-", text.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"x-{slug}".rstrip("-")
    return slug[:limit].rstrip("-")


def split_bento_tag(bento_tag: str) -> tuple[str, str]:
    """Split ``name:version``; ValidationError when the tag has no version."""
    name, sep, version = bento_tag.partition(":")
    if not sep or not name or not version:
        raise ValidationError("release", [f"Bento tag {bento_tag!r} is not NAME:VERSION"])
    return name, version


def image_for(bento_tag: str, registry: str = "") -> str:
    """Return the image of a Bento: ``[REGISTRY/]NAME:VERSION``, the name `bentoml containerize` gives it."""
    name, version = split_bento_tag(bento_tag)
    prefix = registry.strip().rstrip("/")
    return f"{prefix}/{name}:{version}" if prefix else f"{name}:{version}"


def release_suffix(release_id: str) -> str:
    """Return a short stable suffix naming one release's objects (ConfigMap, admin Job)."""
    return dns_label(release_id, limit=30)


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str

    def to_manifest(self) -> dict[str, dict[str, str]]:
        """Return the ``resources`` block of a container."""
        return {
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
        }


SERVICE_RESOURCES = Resources("500m", "1", "1Gi", "1Gi")
JOB_RESOURCES = Resources("1", "2", "2Gi", "2Gi")


@dataclass(frozen=True)
class DeployOptions:
    """Choices of a rendering that are not part of the release (they do not change what runs)."""

    registry: str = ""
    min_replicas: int = 2
    max_replicas: int = 5
    cpu_target: int = 70
    pre_stop_seconds: int = 5
    shutdown_margin_seconds: int = 5
    service_port: int = 80
    service: Resources = SERVICE_RESOURCES
    jobs: Resources = JOB_RESOURCES
    pipelines: tuple[str, ...] = ("pipelines/train.yaml",)
    schedule: str = "0 3 * * *"
    time_zone: str = "Etc/UTC"
    job_ttl_seconds: int = 86_400
    admin_deadline_seconds: int = 900
    extra_labels: dict[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Every invalid option, described (empty when all are valid)."""
        found: list[str] = []
        if self.min_replicas < 1:
            found.append(f"--min-replicas {self.min_replicas}: expected an integer >= 1")
        if self.max_replicas < self.min_replicas:
            found.append(
                f"--max-replicas {self.max_replicas}: expected at least --min-replicas ({self.min_replicas})"
            )
        if not 1 <= self.cpu_target <= 100:
            found.append(f"--cpu-target {self.cpu_target}: expected a percentage 1-100")
        for role, res in (("service", self.service), ("job", self.jobs)):
            for name, value in res.__dict__.items():
                if not _QUANTITY.match(value):
                    found.append(
                        f"{role} {name.replace('_', ' ')} {value!r}: expected a quantity like 500m or 1Gi"
                    )
        if len(self.schedule.split()) != _CRON_FIELDS:
            found.append(f"--schedule {self.schedule!r}: expected 5 cron fields, e.g. '0 3 * * *'")
        return found

    def termination_grace_seconds(self, grace_period: float) -> int:
        """Seconds Kubernetes waits after SIGTERM: preStop pause + service grace period + margin."""
        return self.pre_stop_seconds + math.ceil(grace_period) + self.shutdown_margin_seconds


def common_labels(app: str, component: str) -> dict[str, str]:
    """Return the labels every object carries; ``component`` is server, admin, pipeline or sweep."""
    return {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "mlfactor",
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/part-of": PART_OF,
    }
