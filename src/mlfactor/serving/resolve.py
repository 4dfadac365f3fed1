"""Resolve model URIs in a child process: ``python -m mlfactor.serving.resolve URI [URI ...]``.

The worker starts this child first thing and, while it imports MLflow (the
slowest import of the service), resolves each alias once with
:func:`mlfactor.registry.resolve_model` and downloads the version's files,
imports scikit-learn itself on the other core. The child prints one JSON line
on stdout: ``{"models": [{name, version, run_id, git_commit, source, path}, ...]}``
or ``{"error": ..., "kind": "not_found" | "invalid" | "unavailable"}``, and
exits 0 or 1. Its own log lines go to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass
from typing import Any

from mlfactor.errors import MlfactorError, NotFoundError, ValidationError
from mlfactor.log import configure_logging


@dataclass(frozen=True)
class ResolvedFiles:
    """A concrete model version and the local folder holding its MLflow model files."""

    uri: str
    name: str
    version: str
    run_id: str | None
    git_commit: str | None
    path: str


def resolve_and_download(uris: list[str]) -> list[ResolvedFiles]:
    """Resolve every URI once against the configured registry and download its files."""
    import mlflow.artifacts  # the whole point is to import MLflow here only

    from mlfactor.registry import resolve_model
    from mlfactor.settings import load_settings
    from mlfactor.tracking import connect

    settings = load_settings()
    client = connect(settings, check=False)
    found = []
    for uri in uris:
        resolved = resolve_model(client, uri)
        path = mlflow.artifacts.download_artifacts(artifact_uri=resolved.uri)
        found.append(
            ResolvedFiles(uri, resolved.name, resolved.version, resolved.run_id, resolved.git_commit, path)
        )
    return found


def main(argv: list[str] | None = None) -> int:
    """Child-process entry point: print the resolved models (or the error) as one JSON line."""
    configure_logging("WARNING", "json", stream=sys.stderr)
    uris = list(sys.argv[1:] if argv is None else argv)
    result: dict[str, Any]
    try:
        result = {"models": [asdict(r) for r in resolve_and_download(uris)]}
        code = 0
    except NotFoundError as exc:
        result, code = {"error": str(exc), "kind": "not_found"}, 1
    except ValidationError as exc:
        result, code = {"error": str(exc), "kind": "invalid"}, 1
    except MlfactorError as exc:
        result, code = {"error": str(exc), "kind": "unavailable"}, 1
    except Exception as exc:  # noqa: BLE001 - any transport failure means "registry unavailable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result, code = {"error": f"{type(exc).__name__}: {first}", "kind": "unavailable"}, 1
    logging.shutdown()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
