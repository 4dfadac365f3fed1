"""The release's image without Docker: its Dockerfile, its files, and what a job needs inside it.

``bentoml.container.get_containerfile`` renders the Dockerfile that
``bentoml containerize`` would build, from the Bento in the local store; no
Docker engine is involved. :func:`stage_image_files` writes the build context
that Dockerfile expects (the Bento plus its models), which is also exactly
what the image holds at ``/home/bentoml/bento``: tests run the manifests'
commands against it, and CI can build the image from it with any builder.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import bentoml
from bentoml._internal.bento import BentoStore
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.container import construct_containerfile
from bentoml._internal.models import ModelStore
from bentoml.container import get_containerfile
from bentoml.exceptions import BentoMLException, NotFound

from mlfactor.errors import NotFoundError
from mlfactor.settings import Settings


@contextlib.contextmanager
def bentoml_stores(settings: Settings) -> Iterator[None]:
    """Point BentoML's Bento and model stores at the settings' ``BENTOML_HOME`` inside the block.

    BentoML memoises its stores on first use, so setting ``bentoml_home`` alone
    does not move them once the process has used another home; the stores are
    patched explicitly and restored afterwards.
    """
    home = settings.environ.get("BENTOML_HOME")
    if not home:
        yield
        return
    root = Path(home)
    for sub in ("bentos", "models"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    with (
        BentoMLContainer.bentoml_home.patch(str(root)),
        BentoMLContainer.bento_store.patch(BentoStore(str(root / "bentos"))),
        BentoMLContainer.model_store.patch(ModelStore(str(root / "models"))),
    ):
        yield


def _bento(bento_tag: str) -> Any:
    try:
        return bentoml.bentos.get(bento_tag)
    except (NotFound, BentoMLException, ValueError) as exc:
        raise NotFoundError(
            f"Bento {bento_tag!r} is not in this machine's BentoML store (BENTOML_HOME); build it here with "
            "`mlfactor build` or import it with `bentoml import`."
        ) from exc


def render_dockerfile(settings: Settings, bento_tag: str) -> str:
    """Return the Dockerfile `bentoml containerize BENTO_TAG` uses; NotFoundError without the Bento."""
    with bentoml_stores(settings), tempfile.TemporaryDirectory(prefix="mlfactor-dockerfile-") as folder:
        _bento(bento_tag)
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
        bento = _bento(bento_tag)
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
        sources = Path(_bento(bento_tag).path_of("src"))
    return [path for path in paths if not (sources / path).is_file()]
