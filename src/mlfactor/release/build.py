"""Build: turn one registered model version into a Bento that carries it (factor V, build stage).

:func:`build_bento` resolves the model URI (an alias moves; a build must not)
to one concrete version, imports that version into the BentoML model store
with labels naming where it came from (BentoML does not record it), and runs
``bentoml build`` with the project's ``bentofile.yaml`` plus:

* ``models: [<model tag>]`` so the Bento packs the model;
* ``envs: MLFACTOR_BENTO_MODEL=<model tag>`` so the service loads the packed
  model and never calls the registry;
* the model's own pinned requirements, added to ``python.packages`` when the
  project does not pin them already (BentoML does not merge them, #3224).

The Bento's version is ``v<model version>-<hash of every input>`` (model
version and run, the merged bentofile, the content of every file it
includes), so building twice from the same inputs gives the same tag and the
second build is skipped; any change to an included file gives a new tag.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import yaml
from bentoml.exceptions import BentoMLException, NotFound

from mlfactor.bento_store import bentoml_stores
from mlfactor.errors import MlfactorError, NotFoundError, ValidationError
from mlfactor.log import event, get_logger
from mlfactor.registry import ResolvedModel, resolve_model
from mlfactor.settings import Settings
from mlfactor.tracking import connect, git_info
from mlfactor.version import mlfactor_version

logger = get_logger(__name__)

BENTOFILE = "bentofile.yaml"
COMBINED_REQUIREMENTS = "build/bento-requirements.txt"  # relative: BentoML refuses absolute paths
BENTO_MODEL_ENV = "MLFACTOR_BENTO_MODEL"
MLFLOW_FOLDER = "mlflow_model"
_TAG_PART = re.compile(r"[^a-z0-9._-]+")
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class BuildFailedError(MlfactorError):
    """Raised when ``bentoml build`` itself fails (bad bentofile, service import error)."""


@dataclass(frozen=True)
class BuildResult:
    """A built (or already built) Bento and the model version it carries."""

    bento_tag: str
    model_tag: str
    model_name: str
    model_version: str
    run_id: str | None
    git_commit: str | None
    inputs_hash: str
    built: bool
    model_imported: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping of every field."""
        return dict(self.__dict__)


def tag_part(text: str) -> str:
    """Return ``text`` as a valid BentoML tag name or version (lowercase, 63 characters at most)."""
    slug = _TAG_PART.sub("-", text.lower()).strip("-._") or "model"
    return slug[:63].rstrip("-._")


def model_tag_for(resolved: ResolvedModel) -> str:
    """Return the BentoML model tag of a registered version: ``<name>:v<version>-<run id prefix>``."""
    run = (resolved.run_id or "norun")[:12]
    return f"{tag_part(resolved.name)}:{tag_part(f'v{resolved.version}-{run}')}"


def load_bentofile(path: Path) -> dict[str, Any]:
    """Read the project's bentofile as a mapping; NotFoundError or ValidationError naming the file."""
    if not path.is_file():
        raise NotFoundError(
            f"{path} does not exist; `mlfactor build` needs the project's bentofile.yaml (the service "
            "definition). Run it from the project folder or set MLFACTOR_PROJECT_DIR."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValidationError(str(path), [f"not valid YAML: {exc}"]) from exc
    if not isinstance(data, dict) or not data.get("service"):
        raise ValidationError(str(path), ["expected a mapping with at least `service: module:Class`"])
    return data


def _requirement_name(line: str) -> str | None:
    text = line.split("#", 1)[0].strip()
    if not text or text.startswith("-"):
        return None
    match = _REQUIREMENT_NAME.match(text)
    return match.group(1).lower().replace("_", "-") if match else None


def _pinned_names(config: dict[str, Any], project_dir: Path) -> set[str]:
    python = config.get("python") or {}
    lines = list(python.get("packages") or [])
    requirements = python.get("requirements_txt")
    if requirements:
        path = project_dir / requirements
        if path.is_file():
            lines += path.read_text(encoding="utf-8").splitlines()
    return {name for line in lines if (name := _requirement_name(str(line)))}


def merged_bentofile(
    config: dict[str, Any],
    *,
    model_tag: str,
    resolved: ResolvedModel,
    model_requirements: list[str],
    project_dir: Path,
) -> dict[str, Any]:
    """Return the project's bentofile plus the packed model, its env variable, labels and requirements."""
    merged = copy.deepcopy(config)
    models = [
        m for m in merged.get("models") or [] if (m.get("tag") if isinstance(m, dict) else m) != model_tag
    ]
    merged["models"] = [*models, model_tag]
    envs = [e for e in merged.get("envs") or [] if e.get("name") != BENTO_MODEL_ENV]
    merged["envs"] = [*envs, {"name": BENTO_MODEL_ENV, "value": model_tag}]
    labels = dict(merged.get("labels") or {})
    labels.update(
        {
            "registered_model": resolved.name,
            "model_version": resolved.version,
            "model_tag": model_tag,
            "run_id": resolved.run_id or "",
            "model_git_commit": resolved.git_commit or "",
        }
    )
    merged["labels"] = labels
    merged.setdefault("name", tag_part(resolved.name))
    pinned = _pinned_names(merged, project_dir)
    extra = [r for r in model_requirements if (name := _requirement_name(r)) and name not in pinned]
    if extra:
        python = dict(merged.get("python") or {})
        python["packages"] = [*(python.get("packages") or []), *extra]
        merged["python"] = python
    return merged


def combined_requirements(locked: str, extra: list[str]) -> str:
    """The pins of a hashed lock without their hashes, then ``extra`` (the model's own requirements).

    pip refuses to mix hashed and unhashed requirements, and BentoML ignores
    ``python.packages`` when ``requirements_txt`` is set; so a model that needs
    packages the lock does not pin is installed from this one file: the lock's
    exact versions (without hash checking) plus the model's pins.
    """
    pins = []
    for line in locked.splitlines():
        text = line.split("#", 1)[0].strip().removesuffix("\\").strip()
        if text and not text.startswith("-"):
            pins.append(text)
    head = "# written by mlfactor build: the runtime lock's pins (hashes dropped), then the model's own"
    return "\n".join([head, *pins, *extra]) + "\n"


def with_combined_requirements(merged: dict[str, Any], project_dir: Path) -> dict[str, Any]:
    """``merged`` installing from one requirements file when it has both a lock and extra packages.

    The file is written to ``build/`` in the project (the build context, git-ignored);
    without extra packages ``merged`` is returned as it is.
    """
    python = dict(merged.get("python") or {})
    locked, extra = python.get("requirements_txt"), list(python.get("packages") or [])
    if not locked or not extra:
        return merged
    target = project_dir / COMBINED_REQUIREMENTS
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(combined_requirements((project_dir / locked).read_text(encoding="utf-8"), extra))
    python.pop("packages")
    python["requirements_txt"] = COMBINED_REQUIREMENTS
    return {**merged, "python": python}


def source_fingerprint(merged: dict[str, Any], project_dir: Path) -> str:
    """Return the sha256 of every file the Bento includes (bentofile ``include`` minus ``exclude``)."""
    include = merged.get("include") or ["**/*"]
    exclude = list(merged.get("exclude") or [])
    requirements = (merged.get("python") or {}).get("requirements_txt")
    files: set[Path] = set()
    for pattern in include:
        files.update(p for p in project_dir.glob(str(pattern)) if p.is_file())
    if requirements:
        files.add(project_dir / str(requirements))
    digest = hashlib.sha256()
    for path in sorted(files):
        relative = path.relative_to(project_dir).as_posix()
        if any(
            fnmatch.fnmatch(relative, str(rule)) or fnmatch.fnmatch(relative, f"{rule}/*") for rule in exclude
        ):
            continue
        if "__pycache__" in path.parts or not path.is_file():
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def inputs_hash(merged: dict[str, Any], project_dir: Path, model_tag: str) -> str:
    """Return the sha256 of every build input: merged bentofile, model tag, the included files."""
    payload = {
        "bentofile": merged,
        "model_tag": model_tag,
        "sources": source_fingerprint(merged, project_dir),
        "mlfactor": mlfactor_version(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def import_model(resolved: ResolvedModel, model_tag: str) -> tuple[Any, bool]:
    """Copy the version into the BentoML model store once, labelled with its registry origin."""
    try:
        return bentoml.models.get(model_tag), False
    except NotFound:
        pass
    labels = {
        "registered_model": resolved.name,
        "version": resolved.version,
        "run_id": resolved.run_id or "",
        "git_commit": resolved.git_commit or "",
    }
    try:
        model = bentoml.mlflow.import_model(
            model_tag, resolved.uri, labels=labels, metadata={"source": resolved.source, "uri": resolved.uri}
        )
    except BentoMLException:
        try:  # another build imported the same version concurrently
            return bentoml.models.get(model_tag), False
        except NotFound:
            raise
    event(
        logger,
        "model_imported",
        model_tag=model_tag,
        model_name=resolved.name,
        model_version=resolved.version,
    )
    return model, True


def _model_requirements(model: Any) -> list[str]:
    path = Path(model.path_of(MLFLOW_FOLDER)) / "requirements.txt"
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if _requirement_name(line)]


def _run_bentoml_build(settings: Settings, merged: dict[str, Any], version: str) -> str:
    with tempfile.TemporaryDirectory(prefix="mlfactor-build-") as folder:
        bentofile = Path(folder, BENTOFILE)
        bentofile.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "bentoml",
            "build",
            "-f",
            str(bentofile),
            "--version",
            version,
            "--output",
            "tag",
            str(settings.project_dir),
        ]
        done = subprocess.run(
            command,
            cwd=settings.project_dir,
            env=settings.child_environment(),
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    tags = re.findall(r"__tag__:(\S+)", done.stdout)
    if done.returncode != 0 or not tags:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise BuildFailedError(f"`bentoml build` failed (exit {done.returncode}):\n{tail}")
    return str(tags[-1])


def build_bento(
    settings: Settings, model_uri: str | None = None, *, bentofile: Path | None = None
) -> BuildResult:
    """Build a Bento carrying the model version ``model_uri`` resolves to (default: the settings' model).

    Same inputs give the same Bento tag; an existing Bento with that tag is
    reused (``built=False``).
    """
    uri = model_uri or settings.resolved_model_uri
    path = bentofile or settings.project_dir / BENTOFILE
    config = load_bentofile(path)
    client = connect(settings)
    resolved = resolve_model(client, uri)
    if resolved.status != "READY":
        raise ValidationError("model", [f"{resolved.uri} is {resolved.status}, not READY; wait and retry"])
    with bentoml_stores(settings):
        return _build_in_store(settings, config, resolved)


def _build_in_store(settings: Settings, config: dict[str, Any], resolved: ResolvedModel) -> BuildResult:
    """Import the model and build the Bento in the store :func:`bentoml_stores` points at."""
    model_tag = model_tag_for(resolved)
    model, imported = import_model(resolved, model_tag)
    merged = merged_bentofile(
        config,
        model_tag=model_tag,
        resolved=resolved,
        model_requirements=_model_requirements(model),
        project_dir=settings.project_dir,
    )
    digest = inputs_hash(merged, settings.project_dir, model_tag)
    name = tag_part(str(merged["name"]))
    version = tag_part(f"v{resolved.version}-{digest[:12]}")
    bento_tag = f"{name}:{version}"
    merged["name"] = name
    merged["labels"]["inputs_hash"] = digest
    result = BuildResult(
        bento_tag=bento_tag,
        model_tag=model_tag,
        model_name=resolved.name,
        model_version=resolved.version,
        run_id=resolved.run_id,
        git_commit=git_info(settings.project_dir).commit,
        inputs_hash=digest,
        built=False,
        model_imported=imported,
    )
    try:
        bentoml.bentos.get(bento_tag)
        event(
            logger, "bento_exists", bento_tag=bento_tag, model_tag=model_tag, model_version=resolved.version
        )
        return result
    except NotFound:
        pass
    event(logger, "bento_build_started", bento_tag=bento_tag, model_tag=model_tag, model_uri=resolved.uri)
    built_tag = _run_bentoml_build(
        settings, with_combined_requirements(merged, settings.project_dir), version
    )
    event(logger, "bento_built", bento_tag=built_tag, model_tag=model_tag, model_version=resolved.version)
    return BuildResult(**{**result.to_dict(), "bento_tag": built_tag, "built": True})
