"""What every pipeline and step run records about where it came from.

MLflow takes the git commit from ``sys.argv[0]``'s repository, which for a
kernel is ipykernel's launcher, so notebook runs carry no commit (FIELD_NOTES).
The runner tags each run itself: git commit, branch and dirty flag of the repo
holding the notebook (or pipeline file), the pipeline file's hash, the
mlfactor version, and the installed package versions (an artifact).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlfactor.tags import (
    ATTEMPT_TAG,
    NOTEBOOK_HASH_TAG,
    NOTEBOOK_TAG,
    PACKAGE_TAG_PREFIX,
    PACKAGES_HASH_TAG,
    PIPELINE_HASH_TAG,
    PIPELINE_PATH_TAG,
    PIPELINE_TAG,
    SOURCE_NAME_TAG,
    SOURCE_TYPE_TAG,
    STEP_TAG,
    VERSION_TAG,
)
from mlfactor.tags import ERROR_TAG as ERROR_TAG  # noqa: PLC0414 - runner.py reads these three from here
from mlfactor.tags import OUTPUT_TAG_PREFIX as OUTPUT_TAG_PREFIX  # noqa: PLC0414
from mlfactor.tags import STATUS_TAG as STATUS_TAG  # noqa: PLC0414
from mlfactor.tracking import git_info
from mlfactor.version import mlfactor_version

PACKAGES_ARTIFACT = "lineage/packages.txt"
KEY_PACKAGES = ("mlflow", "papermill", "scikit-learn", "pandas", "bentoml", "ipykernel", "nbclient")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed_packages() -> list[str]:
    """List ``name==version`` of every installed distribution, sorted and de-duplicated.

    Read from the ``NAME-VERSION.dist-info`` folder names on ``sys.path``
    (milliseconds), not from each distribution's metadata file (seconds).
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        folder = Path(entry or ".")
        if not folder.is_dir():
            continue
        for info in folder.glob("*.dist-info"):
            name, _, version = info.name.removesuffix(".dist-info").partition("-")
            if name and version:
                found.setdefault(name.lower().replace("_", "-"), f"{name.replace('_', '-')}=={version}")
    return [found[k] for k in sorted(found)]


def packages_text(packages: list[str]) -> str:
    """Render the packages artifact."""
    return "\n".join(packages) + "\n"


def package_tags(packages: list[str]) -> dict[str, str]:
    """Tags naming the key package versions and a hash of the whole list."""
    versions = dict(p.split("==", 1) for p in packages if "==" in p)
    lowered = {k.lower(): v for k, v in versions.items()}
    tags = {f"{PACKAGE_TAG_PREFIX}{name}": lowered[name] for name in KEY_PACKAGES if name in lowered}
    tags[PACKAGES_HASH_TAG] = hashlib.sha256(packages_text(packages).encode()).hexdigest()
    return tags


def relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def pipeline_tags(name: str, path: Path, sha256: str, project_dir: Path) -> dict[str, str]:
    """Tags of a pipeline's parent run."""
    tags = {
        PIPELINE_TAG: name,
        PIPELINE_HASH_TAG: sha256,
        PIPELINE_PATH_TAG: relative(path, project_dir),
        VERSION_TAG: mlfactor_version(),
        SOURCE_NAME_TAG: relative(path, project_dir),
        SOURCE_TYPE_TAG: "JOB",
    }
    tags.update(git_info(path).tags())
    return tags


def step_tags(step: str, notebook: Path, project_dir: Path, attempt: int) -> dict[str, str]:
    """Tags of a step's run: the notebook, its hash and the git state of the repo holding it."""
    tags = {
        STEP_TAG: step,
        NOTEBOOK_TAG: relative(notebook, project_dir),
        NOTEBOOK_HASH_TAG: file_sha256(notebook),
        ATTEMPT_TAG: str(attempt),
        VERSION_TAG: mlfactor_version(),
        SOURCE_NAME_TAG: relative(notebook, project_dir),
        SOURCE_TYPE_TAG: "NOTEBOOK",
    }
    tags.update(git_info(notebook).tags())
    return tags


def param_value(value: Any) -> str:
    """Render a parameter as ``mlflow.log_param`` does (``str``), so a notebook may log it again."""
    return str(value)[:6000]


def flatten_parameters(parameters: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{"train.C": "1.0", ...}`` for a pipeline's parent run."""
    return {
        f"{step}.{name}": param_value(v) for step, values in parameters.items() for name, v in values.items()
    }
