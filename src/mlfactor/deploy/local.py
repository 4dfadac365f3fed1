"""Run a rendered container as a local process: same command, same environment variables.

:func:`local_process` reads a container of a rendered manifest and gives the
command line and environment a local process needs to do what the pod does:

* variables from ``envFrom`` (the ConfigMap's data, or a Secret's values the
  caller supplies), then each ``env`` entry in order, with ``$(VAR)``
  references expanded and ``$$`` reduced to ``$`` as the kubelet does;
* ``secretKeyRef`` values from the caller's secrets (all missing keys are
  reported at once), ``fieldRef`` values (the downward API) from overrides;
* ``command`` and ``args`` expanded the same way.

Only the variables in :data:`~mlfactor.deploy.environment.LOCAL_OVERRIDABLE`
may be replaced: the two filesystem roots (``BENTO_PATH``, the image's Bento;
``TMPDIR``, the pod's scratch volume), the bind address and port (a pod has
its own network), and the completion index. Everything else is what the
manifest says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlfactor.deploy.environment import LOCAL_OVERRIDABLE
from mlfactor.errors import NotFoundError, ValidationError

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` from ``env`` and reduce ``$$`` to ``$``; unknown references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


@dataclass(frozen=True)
class LocalProcess:
    """A command line and the environment the manifest gives it."""

    command: list[str]
    env: dict[str, str]
    manifest_env: dict[str, str]  # the variables the manifest defines, after local overrides

    def popen_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``subprocess.Popen`` / ``run``."""
        return {"args": self.command, "env": self.env}


def local_process(
    container: Mapping[str, Any],
    *,
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
    base_env: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
) -> LocalProcess:
    """Build the local process of ``container`` (see the module docstring).

    ``config_maps`` and ``secrets`` map object names to their data; ``base_env``
    stands for what the image provides (``PATH`` to its Python); ``overrides``
    may only name :data:`LOCAL_OVERRIDABLE` variables.
    """
    overrides = dict(overrides or {})
    refused = sorted(set(overrides) - LOCAL_OVERRIDABLE)
    if refused:
        raise ValidationError(
            "local run",
            [f"{name} may not be overridden locally; only {sorted(LOCAL_OVERRIDABLE)}" for name in refused],
        )
    defined: dict[str, str] = {}
    missing: list[str] = []

    def source(kind: str, name: str) -> Mapping[str, str]:
        pool = config_maps if kind == "configMap" else secrets
        if name not in pool:
            missing.append(f"{kind} {name!r}")
            return {}
        return pool[name]

    for ref in container.get("envFrom") or []:
        kind = "configMap" if "configMapRef" in ref else "secret"
        data = source(kind, ref[f"{kind}Ref"]["name"])
        prefix = ref.get("prefix", "")
        defined.update({f"{prefix}{k}": str(v) for k, v in data.items()})
    defined.update({k: v for k, v in overrides.items() if k in defined})
    for entry in container.get("env") or []:
        name = entry["name"]
        value_from = entry.get("valueFrom") or {}
        if name in overrides:
            defined[name] = overrides[name]
        elif "value" in entry:
            defined[name] = expand(str(entry["value"]), defined)
        elif "fieldRef" in value_from:
            missing.append(
                f"{name} (downward API {value_from['fieldRef']['fieldPath']}): pass it as an override"
            )
        for kind in ("configMap", "secret"):
            ref = value_from.get(f"{kind}KeyRef")
            if ref is not None and name not in overrides:
                data = source(kind, ref["name"])
                if ref["key"] in data:
                    defined[name] = str(data[ref["key"]])
                elif ref["name"] in (config_maps if kind == "configMap" else secrets):
                    missing.append(f"key {ref['key']!r} of {kind} {ref['name']!r}")
    if missing:
        raise NotFoundError("the local run lacks " + "; ".join(missing))
    defined.update(overrides)
    command = [
        expand(str(part), defined)
        for part in [*(container.get("command") or []), *(container.get("args") or [])]
    ]
    return LocalProcess(command=command, env={**dict(base_env), **defined}, manifest_env=defined)
