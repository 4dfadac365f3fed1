"""``mlfactor admin gc``: list (default) or delete old runs, model versions and their artifacts.

Never touches anything still referenced. Protected are:

* every model version an alias points at, and every version a rollback could
  return to (the ``from`` version of each promotion not yet rolled back);
* every model version a release names (releases are immutable and can be re-run);
* the newest ``keep_last`` versions of every registered model, and anything
  newer than ``older_than``;
* the runs that produced a surviving version, their parent runs, runs still
  running, and the release records themselves.

Deleting is two steps, as in MLflow: runs are marked deleted and model versions
removed through the client, then ``mlflow gc`` permanently removes the deleted
runs with their artifacts. That last step needs the database itself, so with
an ``http://`` tracking server the runs are only marked deleted and the report
says where to finish.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import _get_store

from mlfactor.aliases import alias_history, rollback_target
from mlfactor.errors import BackingServiceError, ValidationError
from mlfactor.log import event, get_logger
from mlfactor.masking import mask_uri
from mlfactor.release.records import RELEASES_EXPERIMENT, list_releases
from mlfactor.settings import Settings
from mlfactor.tags import PARENT_RUN_TAG, RunStatus

logger = get_logger(__name__)


@dataclass(frozen=True)
class VersionItem:
    """A model version and why it is kept or deleted."""

    name: str
    version: str
    run_id: str | None
    created: str
    reason: str


@dataclass(frozen=True)
class RunItem:
    """A run and why it is kept or deleted."""

    run_id: str
    experiment: str
    name: str
    started: str
    reason: str


@dataclass
class GcPlan:
    """What gc would delete and what it keeps, with reasons."""

    cutoff: str
    keep_last: int
    delete_versions: list[VersionItem] = field(default_factory=list)
    delete_runs: list[RunItem] = field(default_factory=list)
    delete_logged_models: list[str] = field(default_factory=list)
    kept_versions: list[VersionItem] = field(default_factory=list)
    kept_runs: int = 0
    applied: bool = False
    purged: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping (kept versions listed with their reason)."""
        return {
            "dry_run": not self.applied,
            "cutoff": self.cutoff,
            "keep_last": self.keep_last,
            "delete_versions": [v.__dict__ for v in self.delete_versions],
            "delete_runs": [r.__dict__ for r in self.delete_runs],
            "delete_logged_models": self.delete_logged_models,
            "kept_versions": [v.__dict__ for v in self.kept_versions],
            "kept_runs": self.kept_runs,
            "purged": self.purged,
            "note": self.note,
        }


def _iso(ms: int | None) -> str:
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def _protected_versions(client: MlflowClient, settings: Settings) -> dict[tuple[str, str], str]:
    """Map (model, version) to why it must stay: alias, rollback target or release."""
    keep: dict[tuple[str, str], str] = {}
    for model in client.search_registered_models(max_results=1000):
        for alias, version in (model.aliases or {}).items():
            keep.setdefault((model.name, str(version)), f"alias {alias}")
        moves = list(reversed(alias_history(client, model.name)))
        for alias in {m.alias for m in moves}:
            # every promotion still on the rollback stack keeps its from-version
            stack = [m for m in moves if m.alias == alias]
            while (target := rollback_target(stack, alias)) is not None:
                if target.from_version:
                    keep.setdefault((model.name, target.from_version), f"rollback target of {alias}")
                stack = stack[: stack.index(target)]
    for release in list_releases(client, settings):
        keep.setdefault((release.model_name, release.model_version), f"release {release.release_id}")
    return keep


def plan_gc(client: MlflowClient, settings: Settings, *, older_than: dt.timedelta, keep_last: int) -> GcPlan:
    """Work out what gc would delete; changes nothing."""
    if keep_last < 0:
        raise ValidationError("--keep-last", [f"got {keep_last}; expected 0 or more"])
    now = dt.datetime.now(tz=dt.UTC)
    cutoff_ms = int((now - older_than).timestamp() * 1000)
    plan = GcPlan(cutoff=_iso(cutoff_ms), keep_last=keep_last)
    protected = _protected_versions(client, settings)
    surviving_runs: set[str] = set()
    surviving_models: set[str] = set()
    for model in client.search_registered_models(max_results=1000):
        versions = sorted(client.search_model_versions(f"name='{model.name}'"), key=lambda v: -int(v.version))
        for rank, mv in enumerate(versions):
            key = (model.name, str(mv.version))
            reason = protected.get(key)
            if reason is None and rank < keep_last:
                reason = f"one of the last {keep_last}"
            if reason is None and (mv.creation_timestamp or 0) >= cutoff_ms:
                reason = "newer than the cutoff"
            item = VersionItem(
                model.name, str(mv.version), mv.run_id, _iso(mv.creation_timestamp), reason or ""
            )
            if reason is None:
                plan.delete_versions.append(
                    VersionItem(**{**item.__dict__, "reason": "unreferenced and old"})
                )
            else:
                plan.kept_versions.append(item)
                if mv.run_id:
                    surviving_runs.add(mv.run_id)
                if str(mv.source).startswith("models:/m-"):
                    surviving_models.add(str(mv.source).removeprefix("models:/"))
    experiments = [
        e
        for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000)
        if e.name != RELEASES_EXPERIMENT
    ]
    plan.delete_runs, plan.kept_runs = _plan_runs(client, experiments, cutoff_ms, surviving_runs)
    deleted_runs = {r.run_id for r in plan.delete_runs}
    plan.delete_logged_models = [
        model.model_id
        for model in _logged_models(client, [e.experiment_id for e in experiments])
        if model.source_run_id in deleted_runs and model.model_id not in surviving_models
    ]
    return plan


def _logged_models(client: MlflowClient, experiment_ids: list[str]) -> list[Any]:
    found: list[Any] = []
    for start in range(0, len(experiment_ids), 100):
        token = None
        while True:
            page = client.search_logged_models(
                experiment_ids[start : start + 100], max_results=100, page_token=token
            )
            found.extend(page)
            token = page.token
            if not token:
                break
    return found


def _plan_runs(
    client: MlflowClient, experiments: list[Any], cutoff_ms: int, surviving: set[str]
) -> tuple[list[RunItem], int]:
    runs: list[Any] = []
    for experiment in experiments:
        token = None
        while True:
            page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
            runs.extend((experiment.name, run) for run in page)
            token = page.token
            if not token:
                break
    by_id = {run.info.run_id: run for _, run in runs}
    keep = set(surviving)
    for run_id in list(surviving):  # parents of kept runs stay too
        parent = by_id[run_id].data.tags.get(PARENT_RUN_TAG) if run_id in by_id else None
        while parent and parent not in keep:
            keep.add(parent)
            parent = by_id[parent].data.tags.get(PARENT_RUN_TAG) if parent in by_id else None
    delete: list[RunItem] = []
    kept = 0
    for experiment_name, run in runs:
        info = run.info
        old = (info.start_time or 0) < cutoff_ms
        if info.run_id in keep or not old or info.status == RunStatus.RUNNING:
            kept += 1
            continue
        delete.append(
            RunItem(
                info.run_id,
                experiment_name,
                info.run_name or "",
                _iso(info.start_time),
                "no surviving model version and older than the cutoff",
            )
        )
    return delete, kept


def apply_gc(client: MlflowClient, settings: Settings, plan: GcPlan) -> GcPlan:
    """Delete what ``plan`` lists, then purge the deleted runs and their artifacts with ``mlflow gc``."""
    for item in plan.delete_versions:
        client.delete_model_version(item.name, item.version)
        event(logger, "gc_deleted_version", model_name=item.name, model_version=item.version)
    for run in plan.delete_runs:
        try:
            client.delete_run(run.run_id)
        except MlflowException as exc:
            event(logger, "gc_run_skipped", run_id=run.run_id, error=str(exc)[:200])
            continue
        event(logger, "gc_deleted_run", run_id=run.run_id, experiment=run.experiment)
    for model_id in plan.delete_logged_models:
        client.delete_logged_model(model_id)
        event(logger, "gc_deleted_logged_model", model_id=model_id)
    plan.applied = True
    uri = settings.tracking_uri
    if not plan.delete_runs and not plan.delete_logged_models:
        return plan
    if uri.startswith(("http://", "https://")):
        plan.note = (
            f"runs are marked deleted on {mask_uri(uri)}; purge them and their artifacts where the "
            "database is: `mlflow gc --backend-store-uri <database URI> --tracking-uri <server URI>`"
        )
        return plan
    try:
        purge(uri, run_ids=[r.run_id for r in plan.delete_runs], logged_model_ids=plan.delete_logged_models)
    except MlflowException as exc:
        raise BackingServiceError(
            f"purging deleted runs on {mask_uri(uri)} failed: {mask_uri(str(exc))[:300]}", uri=mask_uri(uri)
        ) from exc
    plan.purged = True
    event(logger, "gc_purged", runs=len(plan.delete_runs))
    return plan


def purge(uri: str, *, run_ids: list[str], logged_model_ids: list[str]) -> None:
    """Permanently delete exactly these deleted runs and logged models, artifacts included.

    Uses the routine behind ``mlflow gc`` with explicit lists: the ``mlflow gc``
    command would also purge every other deleted run, experiment and logged
    model when a list is not given, which gc must not do behind a dry run.
    """
    from mlflow.cli import _gc_tracking_resources

    store = _get_store(uri)  # type: ignore[no-untyped-call]
    with contextlib.redirect_stdout(io.StringIO()):  # it echoes one line per item
        _gc_tracking_resources(
            store,
            run_ids=list(run_ids),
            experiment_ids=None,
            logged_model_ids=list(logged_model_ids),
            older_than=None,
            time_delta=0,
            skip_experiments=True,
            skip_logged_models=not hasattr(store, "_hard_delete_logged_model"),
        )
