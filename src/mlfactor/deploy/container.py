"""The release's image without Docker: its Dockerfile, its files, and what a job needs inside it.

``bentoml.container.get_containerfile`` renders the Dockerfile that
``bentoml containerize`` would build, from the Bento in the local store; no
Docker engine is involved. :func:`stage_image_files` writes the build context
that Dockerfile expects (the Bento plus its models), which is also exactly
what the image holds at ``/home/bentoml/bento``: tests run the manifests'
commands against it, and CI can build the image from it with any builder.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from bentoml._internal.container import construct_containerfile
from bentoml.container import get_containerfile

from mlfactor.bento_store import bentoml_stores, get_bento
from mlfactor.settings import Settings


def render_dockerfile(settings: Settings, bento_tag: str) -> str:
    """Return the Dockerfile `bentoml containerize BENTO_TAG` uses; NotFoundError without the Bento."""
    with bentoml_stores(settings), tempfile.TemporaryDirectory(prefix="mlfactor-dockerfile-") as folder:
        get_bento(bento_tag)
        target = Path(folder, "Dockerfile")
        get_containerfile(bento_tag, output_path=str(target), enable_buildkit=True)
        return target.read_text(encoding="utf-8")


def stage_image_files(settings: Settings, bento_tag: str, dest: Path) -> Path:
    """Write the image's build context (the Bento and its models) to ``dest``; return ``dest``.

    ``docker build -f dest/env/docker/Dockerfile dest`` (or kaniko, buildah)
    builds the release image from it; ``dest`` is also what the image holds at
    ``BENTO_PATH``.
    """
    with bentoml_stores(settings):
        bento = get_bento(bento_tag)
        if dest.exists():
            shutil.rmtree(dest)
        with construct_containerfile(bento, enable_buildkit=True, add_header=True) as (context, dockerfile):
            shutil.copytree(context, dest)
            Path(dest, "env", "docker", "Dockerfile").write_text(
                Path(dockerfile).read_text(encoding="utf-8"), encoding="utf-8"
            )
    return dest


def missing_in_bento(settings: Settings, bento_tag: str, paths: Iterable[str]) -> list[str]:
    """Return the project-relative ``paths`` the Bento's sources lack (empty when all are packed)."""
    with bentoml_stores(settings):
        sources = Path(get_bento(bento_tag).path_of("src"))
    return [path for path in paths if not (sources / path).is_file()]
