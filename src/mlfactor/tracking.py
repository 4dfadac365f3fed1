"""Attach the MLflow tracking store as a backing service, and describe where code came from.

The store is whatever ``MLFLOW_TRACKING_URI`` names (factor IV): an sqlite file,
PostgreSQL, or an ``mlflow server``. :func:`connect` points MLflow at it, checks
it answers (retrying with backoff) and returns a client. :func:`git_info`
records the commit of the repository holding a notebook, which MLflow cannot
do for kernels (its ``sys.argv[0]`` is ipykernel's launcher).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import requests
import sqlalchemy
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.pool import NullPool

from mlfactor.errors import BackingServiceError, ConfigError
from mlfactor.log import event, get_logger
from mlfactor.masking import mask_text, mask_uri
from mlfactor.settings import Settings
from mlfactor.tags import GIT_BRANCH_TAG, GIT_COMMIT_TAG, GIT_DIRTY_TAG

logger = get_logger(__name__)


_HTTP_MAX_RETRIES = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
_HTTP_BACKOFF_FACTOR = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
_SUPPRESS_URL_PRINTING = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
_PROBE_TIMEOUT_S = 5.0
_UNREACHABLE_MARKERS = (
    "Failed to establish a new connection",
    "Connection refused",
    "Max retries exceeded",
    "Connection aborted",
    "RemoteDisconnected",
    "Read timed out",
    "server closed the connection unexpectedly",
    "connection failed",
)
_API_URL = re.compile(r"API request to (?P<base>https?://[^/\s]+)")
_DATABASE_HINT = (
    "Check the user, password and database name in MLFLOW_TRACKING_URI; for the local stack the "
    "database is created by `make services`."
)


@dataclass(frozen=True)
class GitInfo:
    """The commit, branch and dirty flag of the repository holding a file."""

    commit: str | None
    branch: str | None
    dirty: bool | None

    def tags(self) -> dict[str, str]:
        """MLflow tags recording this information (absent values left out)."""
        tags: dict[str, str] = {}
        if self.commit:
            tags[GIT_COMMIT_TAG] = self.commit
        if self.branch:
            tags[GIT_BRANCH_TAG] = self.branch
        if self.dirty is not None:
            tags[GIT_DIRTY_TAG] = str(self.dirty).lower()
        return tags


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(path: Path) -> GitInfo:
    """Describe the git repository holding ``path`` (a file or folder); Nones outside a repo."""
    folder = path if path.is_dir() else path.parent
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return GitInfo(None, None, None)
    branch = _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return GitInfo(commit, branch, bool(status) if status is not None else None)


def connect(settings: Settings, *, check: bool = True) -> MlflowClient:
    """Point MLflow at the configured stores and return a client; retry while it is unreachable.

    Raises BackingServiceError (exit 69) naming the URI, password masked, after
    ``MLFACTOR_BACKING_RETRIES`` attempts with doubling back-off, and ConfigError
    (exit 78) when the store answers but refuses the user or database name.
    For an ``http(s)://`` store it also bounds MLflow's own per-request retries
    (see :func:`configure_http_client`), which otherwise last about four minutes.
    """
    if settings.tracking_uri.startswith("sqlite:///"):
        Path(settings.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    configure_http_client(settings)
    if check:
        # Before the client exists: MLflow's SQL store retries a refused database for ~100 s.
        _retrying(settings, lambda: _probe(settings.tracking_uri))
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)
    if check:
        ping_store(client, settings)
    return client


def http_client_environment(settings: Settings) -> dict[str, str]:
    """MLflow client variables mlfactor derives for an ``http(s)://`` tracking server.

    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` becomes ``MLFACTOR_BACKING_RETRIES - 1`` and
    ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` (an integer for MLflow) the back-off rounded
    up, so a dead server fails a call in seconds rather than MLflow's four minutes;
    ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT`` keeps MLflow's "View run at" lines off
    stdout, which carries only JSON. Values the user set explicitly are kept.
    """
    derived = {
        _HTTP_MAX_RETRIES: str(max(settings.backing_retries - 1, 0)),
        _HTTP_BACKOFF_FACTOR: str(math.ceil(settings.backing_backoff)),
        _SUPPRESS_URL_PRINTING: "true",
    }
    return {name: settings.environ.get(name, value) for name, value in derived.items()}


def configure_http_client(settings: Settings) -> None:
    """Apply :func:`http_client_environment` to this process, where MLflow's REST client reads it."""
    if settings.tracking_uri.startswith(("http://", "https://")):
        os.environ.update(http_client_environment(settings))


def ping_store(client: MlflowClient, settings: Settings) -> None:
    """Check the tracking store answers, retrying with back-off; raise BackingServiceError.

    Each attempt first probes the store without MLflow's own retries (``/health`` of a
    server, one connection to a database), so the back-off here is the only one.
    """

    def attempt() -> None:
        _probe(settings.tracking_uri)
        client.search_experiments(max_results=1)

    _retrying(settings, attempt)


def _retrying(settings: Settings, action: Callable[[], object]) -> None:
    """Run ``action`` until it succeeds, ``MLFACTOR_BACKING_RETRIES`` times at most, doubling the delay."""
    delay = settings.backing_backoff
    shown = mask_uri(settings.tracking_uri)
    last: Exception | None = None
    for attempt in range(1, settings.backing_retries + 1):
        try:
            action()
            return
        except _StoreRefusedError as exc:
            raise ConfigError(
                {"MLFLOW_TRACKING_URI": f"the store at {shown!r} refused the connection: {exc.reason}"},
                hint=exc.hint,
            ) from None
        except MlflowException as exc:
            if _is_config_problem(exc):
                raise ConfigError(
                    {"MLFLOW_TRACKING_URI": f"the store at {shown!r} refused the connection: {_short(exc)}"},
                    hint=_DATABASE_HINT,
                ) from exc
            last = exc
        except Exception as exc:  # noqa: BLE001 - any transport failure means "unreachable"
            last = exc
        if attempt < settings.backing_retries:
            event(
                logger, "backing_service_retry", uri=shown, attempt=attempt, delay_s=delay, error=_short(last)
            )
            time.sleep(delay)
            delay *= 2
    raise BackingServiceError(
        f"tracking store {shown} is unavailable after {settings.backing_retries} attempts: {_short(last)}. "
        "Start it (for the local stack: `make services`) or point MLFLOW_TRACKING_URI elsewhere.",
        uri=shown,
    ) from last


def lost_store_error(exc: BaseException) -> BackingServiceError | None:
    """Translate a tracking store lost in the middle of a command into BackingServiceError (exit 69).

    MLflow raises a plain MlflowException (REST) or an SQLAlchemy OperationalError
    when the store stops answering after :func:`connect` succeeded; entry points
    report it as "backing service unavailable", naming the store with its
    password masked, instead of a traceback. Returns None for any other error.
    """
    seen: BaseException | None = exc
    for _ in range(20):  # follow the cause chain, never round a cycle forever
        if seen is None:
            break
        text = str(seen)
        if isinstance(
            seen, MlflowException | sqlalchemy.exc.OperationalError | requests.ConnectionError
        ) and any(marker in text for marker in _UNREACHABLE_MARKERS):
            where = _API_URL.search(text)
            uri = mask_uri(f"{where['base']}") if where else "the tracking store"
            return BackingServiceError(
                f"lost the tracking store {uri} while running: {_short(seen)}. Work in flight was not "
                "recorded (its MLflow runs may show RUNNING). Start the store again and re-run.",
                uri=uri,
            )
        seen = seen.__cause__ or seen.__context__
    return None


class _StoreRefusedError(Exception):
    """Raised by a probe when the store answered but will not serve us (a configuration problem)."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def _probe(uri: str) -> None:
    """One quick, retry-free check that the store at ``uri`` answers."""
    if uri.startswith(("http://", "https://")):
        _probe_server(uri)
    elif "://" in uri and not uri.startswith(("sqlite:", "file:")):
        _probe_database(uri)


def _probe_server(uri: str) -> None:
    response = requests.get(f"{uri.rstrip('/')}/health", timeout=_PROBE_TIMEOUT_S)
    if response.status_code in {401, 403}:
        raise _StoreRefusedError(
            f"HTTP {response.status_code} {mask_text(response.text.strip()[:200])}",
            "Check the user and password in the URI, and that the server allows this host name "
            "(mlflow server --allowed-hosts or MLFLOW_SERVER_ALLOWED_HOSTS).",
        )
    response.raise_for_status()


def _probe_database(uri: str) -> None:
    url = sqlalchemy.make_url(uri)
    postgres = url.get_backend_name() == "postgresql"
    connect_args = {"connect_timeout": int(_PROBE_TIMEOUT_S)} if postgres else {}
    engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.OperationalError as exc:
        reason = _database_reason(exc)
        if reason is not None:
            raise _StoreRefusedError(reason, _DATABASE_HINT) from None
        raise
    finally:
        engine.dispose()


def _database_reason(exc: BaseException) -> str | None:
    """Return the server's own words when it refused the user or database, else None (unreachable)."""
    text = str(getattr(exc, "orig", None) or exc)
    for line in text.splitlines():
        lowered = line.lower()
        if "fatal:" in lowered or "authentication failed" in lowered or "does not exist" in lowered:
            return mask_text(line.split("FATAL:", 1)[-1].strip())
    return None


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "no answer"
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return mask_text(first)[:300]


def _is_config_problem(exc: MlflowException) -> bool:
    """Tell whether the store answered but refused us: wrong password, user or database name."""
    text = str(exc).lower()
    return "authentication failed" in text or (
        ("database" in text or "role" in text) and "does not exist" in text
    )


def ensure_experiment(client: MlflowClient, name: str, settings: Settings) -> str:
    """Return the id of experiment ``name``, creating it under the artifact root if needed."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = _artifact_location(settings, name)
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:
        # Another process created it between our lookup and create.
        again = client.get_experiment_by_name(name)
        if again is None:
            raise
        return str(again.experiment_id)


def _artifact_location(settings: Settings, name: str) -> str | None:
    if settings.tracking_uri.startswith(("http://", "https://")) and not _explicit_artifact_root(settings):
        return None  # the server decides (e.g. --serve-artifacts)
    root = settings.artifact_root
    if "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)
        return Path(root, name).as_uri()
    return f"{root.rstrip('/')}/{name}"


def _explicit_artifact_root(settings: Settings) -> bool:
    return settings.sources.get("MLFACTOR_ARTIFACT_ROOT", "default") != "default"
