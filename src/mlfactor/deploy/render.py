"""Write a release's manifests to a folder: deterministic YAML, a kustomization, the Dockerfile.

Files are YAML with sorted keys and a fixed header, derived only from the
release record, the options and the Bento, so rendering the same release
twice gives byte-identical files. A folder is written completely or not at
all: everything goes to a temporary sibling first, which then replaces the
target (only an empty folder or an earlier rendering is ever replaced).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlfactor.deploy import manifests as m
from mlfactor.deploy.container import missing_in_bento, render_dockerfile
from mlfactor.deploy.environment import ReleaseEnvironment, release_environment
from mlfactor.deploy.options import DeployOptions, dns_label
from mlfactor.deploy.rules import RuleContext, check_manifests, containers
from mlfactor.errors import NotFoundError, ValidationError
from mlfactor.log import event, get_logger
from mlfactor.masking import secret_values
from mlfactor.pipeline.spec import load_pipeline
from mlfactor.release.records import Release
from mlfactor.settings import Settings

logger = get_logger(__name__)

MARKER = "render.json"
KUSTOMIZATION = "kustomization.yaml"
DOCKERFILE = "Dockerfile"


@dataclass(frozen=True)
class Rendered:
    """What a rendering wrote and what the operator must know."""

    out: Path
    files: tuple[str, ...]
    release_id: str
    image: str
    secret_name: str
    secret_keys: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    objects: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {
            "out": str(self.out),
            "release_id": self.release_id,
            "image": self.image,
            "files": list(self.files),
            "objects": list(self.objects),
            "secret": {"name": self.secret_name, "keys": list(self.secret_keys)},
            "warnings": list(self.warnings),
        }


def dump_yaml(obj: Any, header: str = "") -> str:
    """YAML with sorted keys, block style, no line wrapping: the same object gives the same text."""
    body = yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, width=10_000, allow_unicode=True)
    return header + body


def header_for(release: Release, command: str = "mlfactor deploy render") -> str:
    """Return the comment at the top of every file ``command`` writes."""
    return (
        f"# Rendered by `{command}` from release {release.release_id} ({release.bento_tag}).\n"
        "# Do not edit: change the configuration, release again and re-render.\n"
    )


def file_name(obj: Mapping[str, Any]) -> str:
    """``kind.yaml``, or ``kind-NAME.yaml`` for kinds a rendering may hold several of."""
    kind = str(obj["kind"]).lower()
    names = {"horizontalpodautoscaler": "hpa", "poddisruptionbudget": "pdb"}
    if kind in {"cronjob", "job"}:
        return f"{kind}-{obj['metadata']['name']}.yaml"
    return f"{names.get(kind, kind)}.yaml"


def kustomization(resources: Sequence[str]) -> dict[str, Any]:
    """Return a kustomization listing ``resources`` (so `kubectl apply -k DIR` applies them)."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(resources),
    }


def write_folder(out: Path, files: Mapping[str, str]) -> None:
    """Write ``files`` as the whole content of ``out``, atomically replacing an earlier rendering."""
    out = out.resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise ValidationError(
            "--out",
            [f"{out} exists and is not an mlfactor rendering (no {MARKER}); choose an empty or new folder"],
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}-old-{os.getpid()}")
            out.rename(old)
        staging.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def secret_keys(objects: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """Return every Secret key the objects' containers reference, sorted."""
    return tuple(
        sorted(
            {
                entry["valueFrom"]["secretKeyRef"]["key"]
                for _, _, item in containers(objects)
                for entry in item.get("env") or []
                if "secretKeyRef" in (entry.get("valueFrom") or {})
            }
        )
    )


def release_context(release: Release, options: DeployOptions) -> m.ReleaseContext:
    """Return the context every manifest of ``release`` is built from; ValidationError on bad options."""
    problems = options.problems()
    if problems:
        raise ValidationError("deploy options", problems)
    app = dns_label(release.app, limit=40)
    env: ReleaseEnvironment = release_environment(release, app)
    return m.ReleaseContext(release=release, env=env, options=options)


def _pipelines(settings: Settings, refs: Sequence[str]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(name, project-relative path) of each pipeline, the files each needs in the image, and problems."""
    found: list[tuple[str, str]] = []
    needed: list[str] = []
    problems: list[str] = []
    for ref in refs:
        path = (settings.project_dir / ref).resolve()
        try:
            rel = path.relative_to(settings.project_dir.resolve()).as_posix()
        except ValueError:
            problems.append(
                f"--pipeline {ref}: outside the project folder {settings.project_dir}, so not in the image"
            )
            continue
        try:
            spec = load_pipeline(path, project_dir=settings.project_dir)
        except (ValidationError, NotFoundError) as exc:
            problems.append(f"--pipeline {ref}: {exc}")
            continue
        found.append((spec.name, rel))
        needed += [rel, *(step.notebook_ref for step in spec.steps)]
    return found, needed, problems


def image_warnings(settings: Settings, bento_tag: str, needed: Sequence[str]) -> tuple[str | None, list[str]]:
    """Return the Dockerfile (when the Bento is in the local store) and what the image lacks."""
    try:
        dockerfile = render_dockerfile(settings, bento_tag)
    except NotFoundError as exc:
        return None, [f"no Dockerfile: {exc}"]
    missing = missing_in_bento(settings, bento_tag, ["pyproject.toml", *needed]) if needed else []
    if missing:
        return dockerfile, [
            f"the Bento does not pack {', '.join(missing)}: pipeline jobs would fail in its image; add them "
            "to `include:` in bentofile.yaml and build again"
        ]
    return dockerfile, []


def finish(
    out: Path,
    release: Release,
    ctx: m.ReleaseContext,
    objects: list[dict[str, Any]],
    *,
    applied: Sequence[str],
    extra: Mapping[str, str],
    warnings: Sequence[str],
    settings: Settings,
    embedded: Sequence[dict[str, Any]] = (),
    command: str = "mlfactor deploy render",
) -> Rendered:
    """Check ``objects`` against the rules, then write them, the kustomization and a summary to ``out``.

    ``embedded`` objects live inside an ``extra`` file (an Airflow DAG's pod
    template): checked and counted for Secret keys, not written as YAML.
    """
    problems = check_manifests(
        [*objects, *embedded],
        RuleContext(image=ctx.image, secret_values=tuple(secret_values(settings.environ))),
    )
    if problems:
        raise ValidationError(f"manifests of release {release.release_id}", problems)
    header = header_for(release, command)
    files = {file_name(obj): dump_yaml(obj, header) for obj in objects}
    files[KUSTOMIZATION] = dump_yaml(
        kustomization([file_name(o) for o in objects if file_name(o) in applied]), header
    )
    files.update(extra)
    names = tuple(sorted([*files, MARKER]))
    result = Rendered(
        out=out.resolve(),
        files=names,
        release_id=release.release_id,
        image=ctx.image,
        secret_name=ctx.env.secret_name,
        secret_keys=secret_keys([*objects, *embedded]),
        warnings=(*ctx.env.warnings, *warnings),
        objects=tuple(
            f"{o['kind']}/{o['metadata'].get('name') or o['metadata']['generateName']}" for o in objects
        ),
    )
    summary = {k: v for k, v in result.to_dict().items() if k != "out"}
    summary["bento_tag"] = release.bento_tag
    summary["model"] = {"name": release.model_name, "version": release.model_version}
    files[MARKER] = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    write_folder(out, files)
    event(
        logger,
        "manifests_rendered",
        release_id=release.release_id,
        out=str(out),
        files=len(files),
        warnings=len(result.warnings),
    )
    return result


def render_release(
    settings: Settings, release: Release, out: Path, options: DeployOptions | None = None
) -> Rendered:
    """Render every manifest of ``release`` into ``out`` (see the module docstring)."""
    options = options or DeployOptions()
    ctx = release_context(release, options)
    pipelines, needed, problems = _pipelines(settings, options.pipelines)
    if problems:
        raise ValidationError("deploy render", problems)
    serving = [
        m.config_map(ctx),
        m.deployment(ctx),
        m.service(ctx),
        m.autoscaler(ctx),
        m.disruption_budget(ctx),
    ]
    crons = [m.pipeline_cron_job(ctx, name, ref) for name, ref in pipelines]
    job = m.db_upgrade_job(ctx)
    dockerfile, warnings = image_warnings(settings, release.bento_tag, needed)
    objects = [*serving, *crons, job]
    applied = [file_name(o) for o in [*serving, *crons]]  # the admin Job runs first, on its own
    extra = {DOCKERFILE: dockerfile} if dockerfile is not None else {}
    return finish(
        out, release, ctx, objects, applied=applied, extra=extra, warnings=warnings, settings=settings
    )
