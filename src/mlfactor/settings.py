"""The only reader of the environment: every setting typed, validated and documented.

``load_settings()`` reads the process environment (plus a ``.env`` file for
local development) once, checks every variable and raises one
:class:`~mlfactor.errors.ConfigError` naming every problem. Nothing else in
mlfactor reads ``os.environ``; child processes (papermill kernels,
``bentoml serve``) get their environment from :meth:`Settings.child_environment`.

environs 15 keeps ``.env`` values inside the ``Env`` instance instead of
exporting them, so they are passed on explicitly to MLflow and to children.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import environs
from marshmallow.validate import OneOf, Range

from mlfactor.errors import ConfigError
from mlfactor.masking import mask_value
from mlfactor.names import did_you_mean

PROJECT_MARKER = "pyproject.toml"


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, parser, default and meaning."""

    name: str
    attr: str
    parser: str
    default: Any
    doc: str
    expected: str
    validate: Callable[[Any], Any] | None = None
    shown_default: str | None = None

    @property
    def default_text(self) -> str:
        """The default as the docs show it (computed defaults described in words)."""
        if self.shown_default is not None:
            return self.shown_default
        return "" if self.default in (None, "") else str(self.default)


def _variables() -> tuple[Variable, ...]:
    """Return the table of every variable mlfactor reads, in documentation order."""
    seconds = Range(min=0)
    positive = Range(min=1)
    # fmt: off
    return (
        Variable("MLFLOW_TRACKING_URI", "tracking_uri", "str", None,
                 "Tracking store URI: `sqlite:///path.db`, `postgresql://...`, `http://mlflow:5000`.",
                 "a URI", None, "sqlite:///<project>/mlflow.db"),
        Variable("MLFLOW_REGISTRY_URI", "registry_uri", "str", None,
                 "Model registry URI, when it differs from the tracking store.", "a URI",
                 shown_default="MLFLOW_TRACKING_URI"),
        Variable("MLFACTOR_ARTIFACT_ROOT", "artifact_root", "str", None,
                 "Where new experiments store artifacts (a path or `s3://`, `mlflow-artifacts:/` URI).",
                 "a path or URI", shown_default="<project>/mlartifacts"),
        Variable("MLFACTOR_PROJECT_DIR", "project_dir", "path", None,
                 "Project root; defaults to the nearest folder above the working directory "
                 "holding pyproject.toml.",
                 "a folder", shown_default="nearest folder with pyproject.toml"),
        Variable("MLFACTOR_EXPERIMENT", "experiment", "str", "mlfactor",
                 "Experiment for runs started interactively (pipelines name their own).", "a name"),
        Variable("MLFACTOR_MODEL_NAME", "model_name", "str", "iris-classifier",
                 "Registered model the service, build and admin jobs use.", "a registered model name"),
        Variable("MLFACTOR_MODEL_ALIAS", "model_alias", "str", "champion",
                 "Alias of the registered model to load.", "an alias"),
        Variable("MLFACTOR_MODEL_URI", "model_uri", "str", None,
                 "Full model URI (`models:/name@alias`, `models:/name/3`); overrides name and alias.",
                 "a models:/ URI"),
        Variable("MLFACTOR_BENTO_MODEL", "bento_model", "str", None,
                 "BentoML model tag packed in a built Bento; when set the service loads it and never "
                 "calls the registry (set by `mlfactor build`).", "a BentoML model tag"),
        Variable("MLFACTOR_LOG_LEVEL", "log_level", "str", "INFO",
                 "Log level of every process.", "one of DEBUG, INFO, WARNING, ERROR",
                 OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])),
        Variable("MLFACTOR_LOG_FORMAT", "log_format", "str", "auto",
                 "`json` (one object per line), `console`, or `auto` "
                 "(console on a terminal, json otherwise).",
                 "one of json, console, auto", OneOf(["json", "console", "auto"])),
        Variable("BENTOML_HOST", "host", "str", "127.0.0.1", "Address the service binds to.", "a host"),
        Variable("BENTOML_PORT", "bentoml_port", "int", None,
                 "Port the service binds to; wins over PORT.", "a port 1-65535", Range(min=1, max=65535)),
        Variable("PORT", "plain_port", "int", 3000,
                 "Port the service binds to when BENTOML_PORT is unset.", "a port 1-65535",
                 Range(min=1, max=65535)),
        Variable("MLFACTOR_WORKERS", "workers", "int", 1, "Service worker processes.", "an integer >= 1",
                 positive),
        Variable("MLFACTOR_REQUEST_TIMEOUT", "request_timeout", "float", 30.0,
                 "Seconds before a request is answered 504.", "a number of seconds > 0", Range(min=0.001)),
        Variable("MLFACTOR_MAX_CONCURRENCY", "max_concurrency", "int", 64,
                 "Requests in flight per service before 429.", "an integer >= 1", positive),
        Variable("MLFACTOR_MAX_REQUEST_BYTES", "max_request_bytes", "int", 10 * 1024 * 1024,
                 "Largest request body accepted (413 above).", "a byte count >= 1", positive),
        Variable("MLFACTOR_MAX_ROWS", "max_rows", "int", 10_000,
                 "Most rows in one request (413 above).", "an integer >= 1", positive),
        Variable("MLFACTOR_GRACE_PERIOD", "grace_period", "float", 10.0,
                 "Seconds the service finishes in-flight requests after SIGTERM before it is forced.",
                 "a number of seconds >= 0", seconds),
        Variable("MLFACTOR_VARIANTS", "variants", "str", "",
                 "Traffic split between aliases or versions, e.g. `champion=90,challenger=10`.",
                 "comma-separated REF=WEIGHT pairs"),
        Variable("MLFACTOR_SHADOW", "shadow", "str", "",
                 "Alias or version scored in the background on every request, never returned.",
                 "an alias or version"),
        Variable("MLFACTOR_FLAGS_FILE", "flags_file", "path", None,
                 "JSON or YAML file of runtime feature flags, re-read when it changes.", "a file path"),
        Variable("MLFACTOR_LOG_PREDICTIONS", "log_predictions", "bool", False,
                 "Log every request's inputs and outputs as `prediction` events.", "true or false"),
        Variable("MLFACTOR_REGISTRY_WAIT", "registry_wait", "float", 60.0,
                 "Seconds the service keeps retrying an unreachable registry at start before it exits.",
                 "a number of seconds >= 0", seconds),
        Variable("MLFACTOR_RELEASE", "release", "str", None,
                 "Release id the service reports in /metadata (set by `mlfactor release`).", "a release id"),
        Variable("MLFACTOR_MAX_PARALLEL", "max_parallel", "int", 2,
                 "Pipeline steps (or sweep points) run at once.", "an integer >= 1", positive),
        Variable("MLFACTOR_BACKING_RETRIES", "backing_retries", "int", 5,
                 "Attempts to reach the tracking store before giving up (exit 69).", "an integer >= 1",
                 positive),
        Variable("MLFACTOR_BACKING_BACKOFF", "backing_backoff", "float", 0.5,
                 "First delay in seconds between those attempts; doubles each time.",
                 "a number of seconds >= 0", seconds),
        Variable("MLFACTOR_RUN_ID", "run_id", "str", None,
                 "Set by the pipeline runner for a step's kernel: the MLflow run the notebook logs into.",
                 "an MLflow run id"),
        Variable("MLFACTOR_OUTPUTS_FILE", "outputs_file", "path", None,
                 "Set by the pipeline runner for a step's kernel: where `record_output` writes.",
                 "a file path"),
    )
    # fmt: on


VARIABLES: tuple[Variable, ...] = _variables()


@dataclass(frozen=True)
class Settings:
    """Every setting of an mlfactor process, read once from the environment."""

    project_dir: Path
    tracking_uri: str
    registry_uri: str
    artifact_root: str
    experiment: str
    model_name: str
    model_alias: str
    model_uri: str | None
    bento_model: str | None
    log_level: str
    log_format: str
    host: str
    port: int
    workers: int
    request_timeout: float
    max_concurrency: int
    max_request_bytes: int
    max_rows: int
    grace_period: float
    variants: tuple[tuple[str, int], ...]
    shadow: str | None
    flags_file: Path | None
    log_predictions: bool
    registry_wait: float
    release: str | None
    max_parallel: int
    backing_retries: int
    backing_backoff: float
    run_id: str | None
    outputs_file: Path | None
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
        result: dict[str, Any] = {}
        for var in VARIABLES:
            value = _public_value(self, var)
            result[var.name] = mask_value(var.name, value)
        return result


def _public_value(settings: Settings, var: Variable) -> Any:
    if var.attr in {"bentoml_port", "plain_port"}:
        return settings.port
    value = getattr(settings, var.attr)
    if var.attr == "variants":
        return ",".join(f"{ref}={weight}" for ref, weight in value)
    if isinstance(value, Path):
        return str(value)
    return value


def find_project_dir(start: Path) -> Path:
    """Return the nearest folder at or above ``start`` holding pyproject.toml, else ``start``."""
    for folder in (start, *start.parents):
        if (folder / PROJECT_MARKER).is_file():
            return folder
    return start


class _MappingEnv(environs.Env):
    """An environs ``Env`` that reads a given mapping instead of ``os.environ``."""

    def __init__(self, source: Mapping[str, str]) -> None:
        super().__init__(eager=False)
        self._source = source

    def _get_value(self, env_key: str, default: Any) -> Any:
        if env_key in self._source:
            return self._source[env_key]
        return self._environ.get(env_key, default)


def parse_variants(raw: str) -> tuple[tuple[str, int], ...]:
    """Parse ``champion=90,challenger=10`` into ``(("champion", 90), ("challenger", 10))``."""
    if not raw.strip():
        return ()
    pairs: list[tuple[str, int]] = []
    for item in raw.split(","):
        ref, sep, weight = item.strip().partition("=")
        if not sep or not ref.strip() or not weight.strip().isdigit():
            raise ValueError(f"'{item.strip()}' is not REF=WEIGHT with a whole-number weight")
        pairs.append((ref.strip(), int(weight)))
    refs = [ref for ref, _ in pairs]
    if len(set(refs)) != len(refs):
        raise ValueError("a variant is named twice")
    if sum(weight for _, weight in pairs) <= 0:
        raise ValueError("the weights add up to 0")
    return tuple(pairs)


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
    env = _MappingEnv(source)
    dotenv = env_file or project_dir / ".env"
    loaded_env_file = dotenv if dotenv.is_file() else None
    if loaded_env_file is not None:
        env.read_env(str(loaded_env_file), recurse=False)
    merged = {**env._environ, **source}

    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for var in VARIABLES:
        parse = getattr(env, var.parser)
        kwargs: dict[str, Any] = {"validate": var.validate} if var.validate else {}
        values[var.attr] = parse(var.name, var.default, **kwargs)
    try:
        env.seal()
    except environs.EnvValidationError as exc:
        by_name = {var.name: var for var in VARIABLES}
        reported = exc.error_messages if isinstance(exc.error_messages, Mapping) else {}
        for name, messages in reported.items():
            var = by_name[str(name)]
            shown = mask_value(var.name, merged.get(var.name, ""))
            reason = " ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
            problems[var.name] = f"got {shown!r}; expected {var.expected} ({reason.rstrip('.')})."

    raw_variants = merged.get("MLFACTOR_VARIANTS", "")
    try:
        variants = parse_variants(raw_variants)
    except ValueError as exc:
        problems["MLFACTOR_VARIANTS"] = (
            f"got {raw_variants!r}; expected comma-separated REF=WEIGHT pairs such as "
            f"'champion=90,challenger=10' ({exc})."
        )
        variants = ()

    known = {var.name for var in VARIABLES}
    for name in sorted(merged):
        if name.startswith("MLFACTOR_") and name not in known:
            problems[name] = (
                "unknown mlfactor variable." + did_you_mean(name, known) + " Remove or rename it."
            )

    if problems:
        where = f" or in {loaded_env_file}" if loaded_env_file else ""
        raise ConfigError(problems, hint=f"Fix these variables in the environment{where} and run again.")

    default_store = f"sqlite:///{project_dir / 'mlflow.db'}"
    tracking_uri = values["tracking_uri"] or default_store
    return Settings(
        project_dir=project_dir,
        tracking_uri=tracking_uri,
        registry_uri=values["registry_uri"] or tracking_uri,
        artifact_root=values["artifact_root"] or str(project_dir / "mlartifacts"),
        experiment=values["experiment"],
        model_name=values["model_name"],
        model_alias=values["model_alias"],
        model_uri=values["model_uri"] or None,
        bento_model=values["bento_model"] or None,
        log_level=values["log_level"],
        log_format=values["log_format"],
        host=values["host"],
        port=values["bentoml_port"] or values["plain_port"],
        workers=values["workers"],
        request_timeout=values["request_timeout"],
        max_concurrency=values["max_concurrency"],
        max_request_bytes=values["max_request_bytes"],
        max_rows=values["max_rows"],
        grace_period=values["grace_period"],
        variants=variants,
        shadow=values["shadow"] or None,
        flags_file=values["flags_file"],
        log_predictions=values["log_predictions"],
        registry_wait=values["registry_wait"],
        release=values["release"] or None,
        max_parallel=values["max_parallel"],
        backing_retries=values["backing_retries"],
        backing_backoff=values["backing_backoff"],
        run_id=values["run_id"] or None,
        outputs_file=values["outputs_file"],
        env_file=loaded_env_file,
        sources={var.name: _source_of(var.name, source, env._environ) for var in VARIABLES},
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
