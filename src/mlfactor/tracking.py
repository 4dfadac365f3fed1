"""Attach the MLflow tracking store as a backing service, and describe where code came from.

The store is whatever ``MLFLOW_TRACKING_URI`` names (factor IV): an sqlite file,
PostgreSQL, or an ``mlflow server``. :func:`connect` points MLflow at it, checks
it answers (retrying with backoff) and returns a client. :func:`git_info`
records the commit of the repository holding a notebook, which MLflow cannot
do for kernels (its ``sys.argv[0]`` is ipykernel's launcher).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import mlflow
from mlfactor.errors import BackingServiceError, ConfigError
from mlfactor.log import event, get_logger
from mlfactor.masking import mask_uri
from mlfactor.settings import Settings
from mlfactor.version import mlfactor_version

logger = get_logger(__name__)

GIT_COMMIT_TAG = "mlflow.source.git.commit"
GIT_DIRTY_TAG = "mlfactor.git.dirty"
GIT_BRANCH_TAG = "mlflow.source.git.branch"
VERSION_TAG = "mlfactor.version"


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
    ``MLFACTOR_BACKING_RETRIES`` attempts with doubling back-off.
    """
    if settings.tracking_uri.startswith("sqlite:///"):
        Path(settings.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)
    if check:
        ping_store(client, settings)
    return client


def ping_store(client: MlflowClient, settings: Settings) -> None:
    """Check the tracking store answers, retrying with back-off; raise BackingServiceError."""
    delay = settings.backing_backoff
    shown = mask_uri(settings.tracking_uri)
    last: Exception | None = None
    for attempt in range(1, settings.backing_retries + 1):
        try:
            client.search_experiments(max_results=1)
            return
        except MlflowException as exc:
            if _is_config_problem(exc):
                raise ConfigError(
                    {"MLFLOW_TRACKING_URI": f"the store at {shown!r} refused the connection: {_short(exc)}"},
                    hint="Check the user, password and database name in the URI.",
                ) from exc
            last = exc
        except Exception as exc:  # noqa: BLE001 - any transport failure means "unreachable"
            last = exc
        if attempt < settings.backing_retries:
            event(logger, "backing_service_retry", uri=shown, attempt=attempt, delay_s=delay, error=_short(last))
            time.sleep(delay)
            delay *= 2
    raise BackingServiceError(
        f"tracking store {shown} is unavailable after {settings.backing_retries} attempts: {_short(last)}. "
        "Start it (for the local stack: `make services`) or point MLFLOW_TRACKING_URI elsewhere.",
        uri=shown,
    ) from last


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "no answer"
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return mask_uri(first)[:300]


def _is_config_problem(exc: MlflowException) -> bool:
    """True when the store answered but refused us: wrong password or database name."""
    text = str(exc).lower()
    return "authentication failed" in text or ("database" in text and "does not exist" in text)


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
