"""The only reader of the environment: every setting typed, validated and documented.

Each field of :class:`Settings` is declared with :func:`~mlfactor.variables.setting`:
the variable's name, type, default, meaning and secrecy, once. From that one
declaration come the field, its validation and the README's configuration
table (``mlfactor config --docs``). To add a variable, add a field.

``load_settings()`` reads the process environment (plus a ``.env`` file for
local development) once, checks every variable and raises one
:class:`~mlfactor.errors.ConfigError` naming every problem. Nothing else in
mlfactor reads ``os.environ``; child processes (papermill kernels,
``bentoml serve``) get their environment from :meth:`Settings.child_environment`,
which passes ``.env`` values on explicitly.

Why not environs (a choice the project started with): environs 15's public
API parses only ``os.environ`` and its own ``.env`` layer, while mlfactor
must validate environments that are not the running process's (a release's
recorded environment, a Bento's packed defaults, the environment
``mlfactor reproduce`` rebuilds) with the same rules and report every problem
at once with what was expected. Doing that with environs meant calling its
private ``_get_value``; :mod:`mlfactor.variables` does it with one declaration
per variable instead, and python-dotenv (what environs reads ``.env`` with)
reads the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from mlfactor.errors import ConfigError
from mlfactor.names import did_you_mean
from mlfactor.variables import (
    LOG_LEVEL,
    PATH,
    RATE,
    WEIGHTS,
    Resolution,
    Variable,
    choice,
    declared_variables,
    integer,
    read_variables,
    seconds,
    setting,
    text,
)

PROJECT_MARKER = "pyproject.toml"
_POSITIVE = integer(1)
_PORT = integer(1, 65535, noun="a port")


def _store(value: str | None, ctx: Resolution) -> str:
    return value or f"sqlite:///{ctx.project_dir / 'mlflow.db'}"


def _registry(value: str | None, ctx: Resolution) -> str:
    return value or str(ctx.values["tracking_uri"])


def _artifacts(value: str | None, ctx: Resolution) -> str:
    return value or str(ctx.project_dir / "mlartifacts")


def _project(value: Path | None, ctx: Resolution) -> Path:
    return ctx.project_dir


def _port(value: int | None, ctx: Resolution) -> int:
    return value if value is not None else int(ctx.values["fallback_port"])


@dataclass(frozen=True)
class Settings:
    """Every setting of an mlfactor process, read once from the environment (fields in docs order)."""

    tracking_uri: str = setting(
        "MLFLOW_TRACKING_URI",
        text("a URI"),
        doc="Tracking store URI: `sqlite:///path.db`, `postgresql://...`, `http://mlflow:5000`.",
        shown_default="sqlite:///<project>/mlflow.db",
        resolve=_store,
        machine_local=True,
    )
    registry_uri: str = setting(
        "MLFLOW_REGISTRY_URI",
        text("a URI"),
        doc="Model registry URI, when it differs from the tracking store.",
        shown_default="MLFLOW_TRACKING_URI",
        resolve=_registry,
        machine_local=True,
    )
    artifact_root: str = setting(
        "MLFACTOR_ARTIFACT_ROOT",
        text("a path or URI"),
        doc="Where new experiments store artifacts (a path or `s3://`, `mlflow-artifacts:/` URI).",
        shown_default="<project>/mlartifacts",
        resolve=_artifacts,
        machine_local=True,
    )
    project_dir: Path = setting(
        "MLFACTOR_PROJECT_DIR",
        PATH,
        doc="Project root; defaults to the nearest folder above the working directory "
        "holding pyproject.toml.",
        shown_default="nearest folder with pyproject.toml",
        resolve=_project,
        machine_local=True,
    )
    experiment: str = setting(
        "MLFACTOR_EXPERIMENT",
        text("a name"),
        default="mlfactor",
        doc="Experiment for runs started interactively (pipelines name their own).",
    )
    model_name: str = setting(
        "MLFACTOR_MODEL_NAME",
        text("a registered model name"),
        default="iris-classifier",
        doc="Registered model the service, build and admin jobs use.",
    )
    model_alias: str = setting(
        "MLFACTOR_MODEL_ALIAS",
        text("an alias"),
        default="champion",
        doc="Alias of the registered model to load.",
    )
    model_uri: str | None = setting(
        "MLFACTOR_MODEL_URI",
        text("a models:/ URI"),
        doc="Full model URI (`models:/name@alias`, `models:/name/3`); overrides name and alias.",
    )
    bento_model: str | None = setting(
        "MLFACTOR_BENTO_MODEL",
        text("a BentoML model tag"),
        doc="BentoML model tag packed in a built Bento; when set the service loads it and never "
        "calls the registry (set by `mlfactor build`).",
    )
    log_level: int = setting(
        "MLFACTOR_LOG_LEVEL", LOG_LEVEL, default=logging.INFO, doc="Log level of every process."
    )
    log_format: str = setting(
        "MLFACTOR_LOG_FORMAT",
        choice("json", "console", "auto"),
        default="auto",
        doc="`json` (one object per line), `console`, or `auto` (console on a terminal, json otherwise).",
    )
    host: str = setting(
        "BENTOML_HOST", text("a host"), default="127.0.0.1", doc="Address the service binds to."
    )
    port: int = setting(
        "BENTOML_PORT",
        _PORT,
        doc="Port the service binds to; wins over PORT.",
        shown_default="PORT",
        resolve=_port,
    )
    fallback_port: int = setting(
        "PORT", _PORT, default=3000, doc="Port the service binds to when BENTOML_PORT is unset."
    )
    workers: int = setting("MLFACTOR_WORKERS", _POSITIVE, default=1, doc="Service worker processes.")
    request_timeout: float = setting(
        "MLFACTOR_REQUEST_TIMEOUT",
        seconds(positive=True),
        default=30.0,
        doc="Seconds before a request is answered 504.",
    )
    max_concurrency: int = setting(
        "MLFACTOR_MAX_CONCURRENCY", _POSITIVE, default=64, doc="Requests in flight per service before 429."
    )
    max_request_bytes: int = setting(
        "MLFACTOR_MAX_REQUEST_BYTES",
        integer(1, noun="a byte count"),
        default=10 * 1024 * 1024,
        doc="Largest request body accepted (413 above).",
    )
    max_rows: int = setting(
        "MLFACTOR_MAX_ROWS", _POSITIVE, default=10_000, doc="Most rows in one request (413 above)."
    )
    grace_period: float = setting(
        "MLFACTOR_GRACE_PERIOD",
        seconds(),
        default=10.0,
        doc="Seconds the service finishes in-flight requests after SIGTERM before it is forced.",
    )
    variants: tuple[tuple[str, int], ...] = setting(
        "MLFACTOR_VARIANTS",
        WEIGHTS,
        default=(),
        doc="Traffic split between aliases or versions, e.g. `champion=90,challenger=10`.",
    )
    shadow: str | None = setting(
        "MLFACTOR_SHADOW",
        text("an alias or version"),
        doc="Alias or version scored in the background on every request, never returned.",
    )
    flags_file: Path | None = setting(
        "MLFACTOR_FLAGS_FILE",
        PATH,
        doc="JSON or YAML file of runtime feature flags, re-read when it changes.",
    )
    log_predictions: float = setting(
        "MLFACTOR_LOG_PREDICTIONS",
        RATE,
        default=0.0,
        doc=(
            "Share of requests whose inputs and outputs are logged as `prediction` events "
            "(`0.1`: one in ten, chosen by request id, so replicas agree; `true`: every request)."
        ),
    )
    registry_wait: float = setting(
        "MLFACTOR_REGISTRY_WAIT",
        seconds(),
        default=60.0,
        doc="Seconds the service keeps retrying an unreachable registry at start before it exits.",
    )
    follow_interval: float | None = setting(
        "MLFACTOR_FOLLOW_INTERVAL",
        seconds(positive=True),
        doc="Seconds between each worker's checks of the served aliases; a moved alias is loaded, "
        "warmed and swapped in without a restart (registry mode only; unset: off).",
    )
    webhook_secret: str | None = setting(
        "MLFACTOR_WEBHOOK_SECRET",
        text("the secret of the MLflow webhook"),
        doc="HMAC secret of the MLflow webhook that posts alias moves to `/hooks/mlflow` "
        "(needs MLFACTOR_FOLLOW_INTERVAL; polling stays the fallback).",
        secret=True,
    )
    prefetch_file: Path | None = setting(
        "MLFACTOR_PREFETCH_FILE",
        PATH,
        doc="Set by `mlfactor serve` (or the service's supervisor) for its workers: where the "
        "model resolver started at launch writes the resolved versions.",
    )
    release: str | None = setting(
        "MLFACTOR_RELEASE",
        text("a release id"),
        doc="Release id the service reports in /metadata (set by `mlfactor release`).",
    )
    max_parallel: int = setting(
        "MLFACTOR_MAX_PARALLEL", _POSITIVE, default=2, doc="Pipeline steps (or sweep points) run at once."
    )
    backing_retries: int = setting(
        "MLFACTOR_BACKING_RETRIES",
        _POSITIVE,
        default=5,
        doc="Attempts to reach the tracking store before giving up (exit 69).",
    )
    backing_backoff: float = setting(
        "MLFACTOR_BACKING_BACKOFF",
        seconds(),
        default=0.5,
        doc="First delay in seconds between those attempts; doubles each time.",
    )
    run_id: str | None = setting(
        "MLFACTOR_RUN_ID",
        text("an MLflow run id"),
        doc="Set by the pipeline runner for a step's kernel: the MLflow run the notebook logs into.",
    )
    outputs_file: Path | None = setting(
        "MLFACTOR_OUTPUTS_FILE",
        PATH,
        doc="Set by the pipeline runner for a step's kernel: where `record_output` writes.",
    )
    env_file: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict, repr=False)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def resolved_model_uri(self) -> str:
        """The model the service loads: ``MLFACTOR_MODEL_URI`` or ``models:/NAME@ALIAS``."""
        return self.model_uri or f"models:/{self.model_name}@{self.model_alias}"

    def child_environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a child process: ours, ``.env`` values, resolved URIs, then ``extra``."""
        env = dict(self.environ)
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        env["MLFLOW_REGISTRY_URI"] = self.registry_uri
        env["MLFACTOR_PROJECT_DIR"] = str(self.project_dir)
        env["MLFACTOR_ARTIFACT_ROOT"] = self.artifact_root
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        env.setdefault("BENTOML_DO_NOT_TRACK", "true")
        env.update(extra or {})
        return env

    def dump(self) -> dict[str, Any]:
        """Every variable with its effective value, secrets masked (for `mlfactor config`)."""
        return {var.name: var.shown(getattr(self, var.attr)) for var in VARIABLES}

    def declared(self) -> dict[str, Any]:
        """:meth:`dump` without the defaults computed on this machine (paths of the project folder).

        What a release records and a Kubernetes ConfigMap carries: a value set
        explicitly, or a default every machine computes the same way.
        """
        return {
            var.name: value
            for var, value in zip(VARIABLES, self.dump().values(), strict=True)
            if not var.machine_local or self.sources.get(var.name, "default") != "default"
        }


VARIABLES: tuple[Variable[Any], ...] = declared_variables(Settings)


def find_project_dir(start: Path) -> Path:
    """Return the nearest folder at or above ``start`` holding pyproject.toml, else ``start``."""
    for folder in (start, *start.parents):
        if (folder / PROJECT_MARKER).is_file():
            return folder
    return start


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
    env_file: Path | None = None,
) -> Settings:
    """Read and validate every variable; raise one ConfigError listing every problem.

    ``environ`` defaults to ``os.environ``; ``.env`` is read from ``env_file`` or the
    project folder, and the process environment wins over it.
    """
    source = dict(os.environ if environ is None else environ)
    start = Path(source.get("MLFACTOR_PROJECT_DIR") or (cwd or Path.cwd())).resolve()
    project_dir = find_project_dir(start)
    dotenv_path = env_file or project_dir / ".env"
    loaded_env_file = dotenv_path if dotenv_path.is_file() else None
    dotenv: dict[str, str] = {}
    if loaded_env_file is not None:
        dotenv = {k: v for k, v in dotenv_values(loaded_env_file).items() if v is not None}
    merged = {**dotenv, **source}

    values, problems = read_variables(VARIABLES, merged, project_dir)
    known = {var.name for var in VARIABLES}
    for name in sorted(merged):
        if name.startswith("MLFACTOR_") and name not in known:
            problems[name] = (
                "unknown mlfactor variable." + did_you_mean(name, known) + " Remove or rename it."
            )
    if problems:
        where = f" or in {loaded_env_file}" if loaded_env_file else ""
        raise ConfigError(problems, hint=f"Fix these variables in the environment{where} and run again.")
    return Settings(
        **values,
        env_file=loaded_env_file,
        sources={var.name: _source_of(var.name, source, dotenv) for var in VARIABLES},
        environ=merged,
    )


def _source_of(name: str, source: Mapping[str, str], dotenv: Mapping[str, str]) -> str:
    if name in source:
        return "environment"
    if name in dotenv:
        return ".env"
    return "default"


def sandbox_environment(folder: Path, project_dir: Path, base: Mapping[str, str]) -> dict[str, str]:
    """Environment of a throwaway local store inside ``folder``, for tests, benchmarks and trials.

    ``base`` (usually the caller's environment) loses every ``MLFACTOR_*``,
    ``MLFLOW_*`` and ``BENTOML_*`` variable, then gets an sqlite store, an
    artifact folder and a BentoML home inside ``folder``, JSON logs and
    telemetry off, so nothing reaches the user's own store.
    """
    env = {k: v for k, v in base.items() if not k.startswith(("MLFACTOR_", "MLFLOW_", "BENTOML_"))}
    env.update(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
            "MLFACTOR_ARTIFACT_ROOT": str(folder / "artifacts"),
            "MLFACTOR_PROJECT_DIR": str(project_dir),
            "MLFACTOR_LOG_FORMAT": "json",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "BENTOML_DO_NOT_TRACK": "true",
            "BENTOML_HOME": str(folder / "bentoml"),
        }
    )
    return env


def setting_names() -> list[str]:
    """Names of every variable, for docs and tests."""
    return [var.name for var in VARIABLES]


def settings_fields() -> list[str]:
    """Attribute names of :class:`Settings`, for tests that check the table covers them."""
    return [f.name for f in fields(Settings)]
