"""The runtime environment a built Bento declares (``envs`` in its ``bento.yaml``), such as its packed model.

A container built from a Bento applies those ``envs``; a local
``bentoml serve TAG`` does not. So the service applies them itself, as
defaults under the real environment (:func:`packed_environment`), and plain
``bentoml serve TAG`` serves the model version packed in the Bento
(``MLFACTOR_BENTO_MODEL``) without any mlfactor variable set.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from mlfactor.errors import NotFoundError

BENTO_YAML = "bento.yaml"
BUILD_CONTEXT = "src"  # BentoML copies the build context to <bento>/src and imports the service from there


def declared_environment(bento_dir: Path) -> dict[str, str]:
    """The runtime ``envs`` (with a value) declared in ``bento_dir/bento.yaml``; {} when there is none."""
    try:
        info = yaml.safe_load((bento_dir / BENTO_YAML).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    envs = info.get("envs") if isinstance(info, dict) else None
    found: dict[str, str] = {}
    for env in envs if isinstance(envs, list) else []:
        if not isinstance(env, dict) or env.get("stage", "all") not in ("all", "runtime"):
            continue
        if env.get("name") and env.get("value") is not None:
            found[str(env["name"])] = str(env["value"])
    return found


def packed_environment(working_dir: Path) -> dict[str, str]:
    """The envs of the Bento being served from ``working_dir`` (its ``src`` folder); {} outside a Bento."""
    if working_dir.name != BUILD_CONTEXT:
        return {}
    return declared_environment(working_dir.parent)


def with_packed_defaults(environ: Mapping[str, str], working_dir: Path) -> dict[str, str]:
    """``environ`` over the served Bento's declared envs: the real environment always wins."""
    return {**packed_environment(working_dir), **environ}


def bento_environment(tag: str) -> dict[str, str]:
    """The runtime ``envs`` the built Bento ``tag`` declares, e.g. its ``MLFACTOR_BENTO_MODEL``.

    Raises NotFoundError when the Bento is not in the local store.
    """
    import bentoml

    try:
        bento = bentoml.bentos.get(tag)
    except bentoml.exceptions.NotFound as exc:
        raise NotFoundError(
            f"Bento {tag!r} is not in the local BentoML store. List them with `bentoml list`; "
            "build one with `mlfactor build`."
        ) from exc
    return declared_environment(Path(bento.path))
