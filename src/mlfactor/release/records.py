"""Release: a built Bento plus a configuration, recorded immutably in the tracking store (factor V).

:func:`create_release` checks the configuration (an env file, or the current
environment) the way the service will read it, hashes it with secrets
excluded, and records the release as one finished MLflow run in the
``mlfactor-releases`` experiment: every field is a run **parameter**, which
MLflow never lets anyone change. Because the records live in the tracking
store (a backing service), every machine lists the same releases.

Releases form one stream per Bento name (the application). The newest is
current; rolling a deployment back means running the previous one, which
:func:`list_releases` names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

from mlfactor.aliases import current_user
from mlfactor.bento_store import bentoml_stores, get_bento
from mlfactor.errors import ConfigError, NotFoundError, ValidationError
from mlfactor.log import event, get_logger
from mlfactor.masking import is_secret_name
from mlfactor.names import did_you_mean
from mlfactor.release.build import BENTO_MODEL_ENV
from mlfactor.settings import Settings, load_settings
from mlfactor.tags import (
    RELEASE_APP_TAG,
    RELEASE_BENTO_TAG,
    RELEASE_MODEL_VERSION_TAG,
    RELEASE_TAG,
    RELEASE_WHO_TAG,
    RUN_NAME_TAG,
    RunStatus,
)
from mlfactor.tracking import ensure_experiment

logger = get_logger(__name__)

RELEASES_EXPERIMENT = "mlfactor-releases"
RELEASE_ENV = "MLFACTOR_RELEASE"
# Set per process or per machine, never part of what a release means.
_NOT_CONFIG = {
    RELEASE_ENV,
    BENTO_MODEL_ENV,
    "MLFACTOR_RUN_ID",
    "MLFACTOR_OUTPUTS_FILE",
    "MLFACTOR_PROJECT_DIR",
    "MLFACTOR_PREFETCH_FILE",
}
_FIELDS = (
    "release_id",
    "app",
    "bento_tag",
    "model_name",
    "model_version",
    "model_tag",
    "config_hash",
    "created_at",
    "created_ns",
    "who",
)


@dataclass(frozen=True)
class Release:
    """One immutable release record; ``status`` is ``current``, ``previous`` or empty when listed."""

    release_id: str
    app: str
    bento_tag: str
    model_name: str
    model_version: str
    model_tag: str
    config_hash: str
    created_at: str
    created_ns: int
    who: str
    config: dict[str, Any] = field(default_factory=dict)
    secrets_excluded: list[str] = field(default_factory=list)
    run_id: str = ""
    status: str = ""
    created: bool = True

    def run_environment(self) -> dict[str, str]:
        """Return the variables that make ``bentoml serve BENTO_TAG`` run this release from its Bento."""
        return {BENTO_MODEL_ENV: self.model_tag, RELEASE_ENV: self.release_id}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping of every field."""
        return {**self.__dict__, "run_environment": self.run_environment()}


def release_config(settings: Settings) -> tuple[dict[str, Any], list[str]]:
    """Return the configuration a release pins (secrets excluded) and the names of the excluded secrets."""
    config: dict[str, Any] = {}
    excluded: list[str] = []
    for name, value in settings.declared().items():
        if name in _NOT_CONFIG:
            continue
        if is_secret_name(name):
            if value is not None:  # an unset secret is nothing the release must be given
                excluded.append(name)
            continue
        config[name] = value  # URI passwords are already masked by dump()
    for name in sorted(settings.environ):
        if is_secret_name(name) and name.startswith(("MLFACTOR_", "MLFLOW_", "BENTOML_", "AWS_", "POSTGRES")):
            excluded.append(name)
    return config, sorted(set(excluded))


def config_hash(config: Mapping[str, Any]) -> str:
    """Return the sha256 of a configuration mapping (stable across key order)."""
    return hashlib.sha256(json.dumps(dict(config), sort_keys=True, default=str).encode()).hexdigest()


def read_env_file(path: Path) -> Settings:
    """Load and validate the settings an env file describes (the file alone, not this shell)."""
    if not path.is_file():
        raise NotFoundError(f"env file {path} does not exist; pass the file the release will run with.")
    values = {k: v for k, v in dotenv_values(path).items() if v is not None}
    return load_settings(values, env_file=path)


def _bento_info(settings: Settings, bento_tag: str) -> dict[str, str]:
    with bentoml_stores(settings):
        bento = get_bento(bento_tag)
    labels = dict(bento.info.labels or {})
    missing = [k for k in ("registered_model", "model_version", "model_tag") if not labels.get(k)]
    if missing:
        raise ValidationError(
            f"Bento {bento_tag}",
            [
                f"label {k!r} is missing: the Bento was not built by `mlfactor build`; build it with that"
                for k in missing
            ],
        )
    return {"bento_tag": str(bento.tag), "app": bento.tag.name, **labels}


def _run_to_release(run: Any) -> Release | None:
    params = run.data.params
    if not all(k in params for k in _FIELDS):
        return None
    config = json.loads(params.get("config", "{}"))
    excluded = json.loads(params.get("secrets_excluded", "[]"))
    return Release(
        **{k: params[k] for k in _FIELDS if k != "created_ns"},
        created_ns=int(params["created_ns"]),
        config=config,
        secrets_excluded=excluded,
        run_id=run.info.run_id,
    )


def list_releases(client: MlflowClient, settings: Settings, app: str | None = None) -> list[Release]:
    """Return every release, newest first, marking each app's ``current`` and ``previous`` release."""
    found = client.get_experiment_by_name(RELEASES_EXPERIMENT)
    if found is None:
        return []
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{RELEASE_TAG}` = 'true' and attributes.status = '{RunStatus.FINISHED}'",
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    releases = [r for run in runs if (r := _run_to_release(run)) is not None]
    releases.sort(key=lambda r: (r.created_ns, r.release_id), reverse=True)
    seen: dict[str, int] = {}
    marked = []
    for release in releases:
        rank = seen.get(release.app, 0)
        seen[release.app] = rank + 1
        marked.append(replace(release, status={0: "current", 1: "previous"}.get(rank, "")))
    if app is not None:
        apps = sorted(seen)
        if app not in seen:
            raise NotFoundError(
                f"no releases of {app!r}.{did_you_mean(app, apps)} Apps: {', '.join(apps) or 'none'}."
            )
        marked = [r for r in marked if r.app == app]
    return marked


def refuse_following(run_settings: Settings) -> None:
    """Raise ConfigError when the release's configuration follows an alias (a release never moves)."""
    if run_settings.follow_interval is not None:
        where = f" in {run_settings.env_file}" if run_settings.env_file else ""
        raise ConfigError(
            {
                "MLFACTOR_FOLLOW_INTERVAL": f"is set{where}, but a release is immutable (factor V): it "
                "serves the model version packed in its Bento and never follows an alias. Remove "
                "MLFACTOR_FOLLOW_INTERVAL from the release's configuration; follow the registry only "
                "where you serve from it (staging, fast iteration)."
            }
        )


def create_release(
    client: MlflowClient,
    settings: Settings,
    bento_tag: str,
    *,
    env_file: Path | None = None,
    who: str | None = None,
) -> Release:
    """Record an immutable release of ``bento_tag`` with the configuration of ``env_file`` (or ``settings``).

    Idempotent: when the app's current release has the same Bento and
    configuration hash, it is returned with ``created=False``.
    """
    run_settings = read_env_file(env_file) if env_file is not None else settings
    refuse_following(run_settings)
    info = _bento_info(settings, bento_tag)
    return record_release(client, settings, info, run_settings, who=who)


def record_release(
    client: MlflowClient,
    settings: Settings,
    info: Mapping[str, str],
    run_settings: Settings,
    *,
    who: str | None = None,
) -> Release:
    """Write the release record of a looked-up Bento (``info``: its tag, app and model labels).

    ``settings`` names the tracking store; ``run_settings`` is the configuration
    the release runs with.
    """
    refuse_following(run_settings)
    config, excluded = release_config(run_settings)
    digest = config_hash(config)
    current = next((r for r in list_releases(client, settings) if r.app == info["app"]), None)
    if current is not None and current.bento_tag == info["bento_tag"] and current.config_hash == digest:
        event(logger, "release_unchanged", release_id=current.release_id, bento_tag=current.bento_tag)
        return replace(current, created=False)
    ns = time.time_ns()
    created = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    release = Release(
        release_id=f"rel-{created:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}",
        app=info["app"],
        bento_tag=info["bento_tag"],
        model_name=info["registered_model"],
        model_version=info["model_version"],
        model_tag=info["model_tag"],
        config_hash=digest,
        created_at=created.isoformat(timespec="milliseconds"),
        created_ns=ns,
        who=who or current_user(),
        config=config,
        secrets_excluded=excluded,
        status="current",
    )
    experiment_id = ensure_experiment(client, RELEASES_EXPERIMENT, settings)
    tags = {
        RELEASE_TAG: "true",
        RUN_NAME_TAG: release.release_id,
        RELEASE_APP_TAG: release.app,
        RELEASE_BENTO_TAG: release.bento_tag,
        RELEASE_MODEL_VERSION_TAG: release.model_version,
    }
    run = client.create_run(experiment_id, start_time=ns // 1_000_000, tags=tags, run_name=release.release_id)
    params = [Param(k, str(getattr(release, k))) for k in _FIELDS]
    params += [
        Param("config", json.dumps(config, sort_keys=True, default=str)),
        Param("secrets_excluded", json.dumps(excluded)),
    ]
    try:
        client.log_batch(run.info.run_id, params=params, tags=[RunTag(RELEASE_WHO_TAG, release.who)])
        client.set_terminated(run.info.run_id, RunStatus.FINISHED)
    except Exception:
        # never listed: a half-written release does not exist
        client.set_terminated(run.info.run_id, RunStatus.FAILED)
        raise
    release = replace(release, run_id=run.info.run_id)
    event(
        logger,
        "release_created",
        release_id=release.release_id,
        bento_tag=release.bento_tag,
        model_version=release.model_version,
        config_hash=digest,
    )
    return release
