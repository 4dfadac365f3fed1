"""Follow the registry live: a moved alias is loaded, warmed and swapped in, with nothing dropped.

With ``MLFACTOR_FOLLOW_INTERVAL`` set (registry mode only), every worker runs
one :class:`AliasFollower` thread once its models are loaded. Each check asks
the registry once per followed alias which version it points at; when that is
not the version served, the new version is downloaded and loaded beside the
old one, warmed with a prediction on its input example, then swapped in for
the alias's variants (:meth:`~mlfactor.serving.runtime.ServingRuntime.swap`).
A request looks its model up once, so it is answered wholly by one version;
requests under way finish on the old one, which is freed when the last of them
ends (at most two versions in memory). A load or warm-up failure keeps the old
version serving, logs ``model_swap_failed`` and is retried at the next check;
a registry outage logs ``follow_check_failed`` once and never stops serving;
readiness never changes.

:meth:`AliasFollower.nudge` (a signed MLflow webhook, :mod:`mlfactor.serving.hooks`)
makes the next check happen at once: in this worker, and through a file in the
directory the service's workers share, in every other worker.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlfactor.errors import ConfigError
from mlfactor.log import event, get_logger
from mlfactor.masking import mask_text
from mlfactor.model_uri import parse_model_uri
from mlfactor.serving.metrics import shared_service_dir
from mlfactor.serving.model import load_resolved
from mlfactor.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlfactor.serving.runtime import ServingRuntime
    from mlfactor.serving.state import WorkerState

logger = get_logger("mlfactor.serving")

NUDGE_FILE = "follow-nudge"
TICK_SECONDS = 0.2  # how often the thread looks for a nudge between checks
MISSING_ALIAS_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class FollowedAlias:
    """An alias the service follows and the variants it serves."""

    name: str
    alias: str
    variants: tuple[str, ...]

    @property
    def uri(self) -> str:
        """``models:/NAME@ALIAS``."""
        return f"models:/{self.name}@{self.alias}"


@dataclass(frozen=True)
class Swap:
    """The outcome of one check of one alias that had moved."""

    alias: str
    from_version: str
    to_version: str
    swapped: bool
    reason: str = ""


def followed_aliases(settings: Settings, planned: Sequence[tuple[str, str]]) -> list[FollowedAlias]:
    """The aliases to follow among the planned ``(variant, uri)``; [] when following is off.

    Raises ConfigError when following cannot apply: a Bento or a release
    (factor V: they serve the version they were built with), a webhook secret
    without polling, or no alias among the served models.
    """
    problems: dict[str, str] = {}
    if settings.webhook_secret and settings.follow_interval is None:
        problems["MLFACTOR_WEBHOOK_SECRET"] = " ".join(
            (
                "is set but MLFACTOR_FOLLOW_INTERVAL is not: webhooks only speed following up,",
                "and polling stays the fallback for a lost delivery. Set MLFACTOR_FOLLOW_INTERVAL too.",
            )
        )
    if settings.follow_interval is None:
        if problems:
            raise ConfigError(problems)
        return []
    built = "MLFACTOR_BENTO_MODEL" if settings.bento_model else "MLFACTOR_RELEASE" if settings.release else ""
    if built:
        problems["MLFACTOR_FOLLOW_INTERVAL"] = (
            f"is set, but {built} says this service runs a build or a release, which is immutable "
            "(factor V) and serves the version it was built with. Unset MLFACTOR_FOLLOW_INTERVAL, or serve "
            "from the registry (staging, fast iteration) and ship with `mlfactor release`."
        )
        raise ConfigError(problems)
    variants: dict[str, list[str]] = {}
    for variant, uri in planned:
        if parse_model_uri(uri).alias:
            variants.setdefault(uri, []).append(variant)
    if not variants:
        served = ", ".join(uri for _, uri in planned)
        problems["MLFACTOR_FOLLOW_INTERVAL"] = (
            f"is set, but the service serves fixed versions only ({served}): nothing can move. "
            "Serve an alias (MLFACTOR_MODEL_ALIAS, or models:/NAME@ALIAS) or unset MLFACTOR_FOLLOW_INTERVAL."
        )
    if problems:
        raise ConfigError(problems)
    followed = []
    for uri, names in variants.items():
        ref = parse_model_uri(uri)
        followed.append(FollowedAlias(ref.name, str(ref.alias), tuple(names)))
    return followed


class AliasFollower:
    """One worker's follower: checks the followed aliases, swaps in moved versions."""

    def __init__(self, state: WorkerState, followed: Sequence[FollowedAlias], interval: float) -> None:
        self.state = state
        self.followed = tuple(followed)
        self.interval = interval
        self._shared = shared_service_dir()
        self._nudge_seen = self._nudge_mtime()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._client: MlflowClient | None = None
        self._outage: str | None = None
        self._missing: set[str] = set()
        self._collect_pending = False
        self._lock = threading.Lock()  # one check at a time (the thread, or a test calling check())
        self._thread: threading.Thread | None = None

    def follows(self, name: str, alias: str) -> bool:
        """True when ``name@alias`` is one of the followed aliases."""
        return any(f.name == name and f.alias == alias for f in self.followed)

    def start(self) -> None:
        """Check now, then every ``interval`` seconds (or at once when nudged) in a daemon thread.

        The first check catches a move made while this worker was loading (a
        webhook delivered to another worker meanwhile included).
        """
        try:
            self.check()
        except Exception as exc:  # noqa: BLE001 - as in the thread: the follower outlives surprises
            event(logger, "follow_check_failed", level=logging.ERROR, error=_reason(exc), pid=os.getpid())
        self._thread = threading.Thread(target=self._run, name="mlfactor-follow", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """Stop checking; the thread ends after the check under way (waited for up to ``wait`` s)."""
        self._stop.set()
        self._wake.set()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=wait)

    def nudge(self) -> None:
        """Check at once, here and in every other worker of the service."""
        if self._shared is not None:  # first the file, so this worker sees both in one wake-up
            with contextlib.suppress(OSError):
                (self._shared / NUDGE_FILE).write_text(str(time.time_ns()), encoding="utf-8")
        self._wake.set()

    def _nudge_mtime(self) -> int:
        if self._shared is None:
            return 0
        try:
            return (self._shared / NUDGE_FILE).stat().st_mtime_ns
        except OSError:
            return 0

    def _run(self) -> None:
        due = time.monotonic() + self.interval
        while not self._stop.is_set() and not self.state.draining:
            nudged = self._wake.wait(TICK_SECONDS)
            mtime = self._nudge_mtime()
            if mtime != self._nudge_seen:
                self._nudge_seen, nudged = mtime, True
            if self._stop.is_set() or not (nudged or time.monotonic() >= due):
                continue
            self._wake.clear()
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - the follower must outlive any surprise
                event(logger, "follow_check_failed", level=logging.ERROR, error=_reason(exc), pid=os.getpid())
            due = time.monotonic() + self.interval

    def check(self) -> list[Swap]:
        """Ask the registry where each followed alias points; swap in every moved version."""
        with self._lock:
            self._collect_replaced()
            runtime = self.state.runtime
            if runtime is None or not self.state.loaded:
                return []
            try:
                client = self._connected()
                targets = [(f, self._version_of(client, f)) for f in self.followed]
            except Exception as exc:  # noqa: BLE001 - an outage is logged once and serving goes on
                self._registry_down(exc)
                return []
            self._registry_up()
            swaps = []
            for followed, version in targets:
                served = runtime.models[followed.variants[0]]
                if version is None or version == served.version:
                    continue
                swaps.append(self._swap(client, runtime, followed, served.version, version))
            return swaps

    def _collect_replaced(self) -> None:
        """Free a version swapped out at an earlier check (its last requests have ended by now).

        The first load was frozen out of the collector (``gc.freeze()``, for short
        pauses); unfreeze, collect, and freeze what is served now.
        """
        if not self._collect_pending:
            return
        self._collect_pending = False
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def _connected(self) -> MlflowClient:
        if self._client is None:
            from mlfactor.tracking import connect  # imports MLflow: once, in this thread

            self._client = connect(self.state.settings, check=False)
        return self._client

    def _version_of(self, client: MlflowClient, followed: FollowedAlias) -> str | None:
        """The version the alias points at; None (logged once) when the alias or model is gone."""
        from mlflow.exceptions import MlflowException

        try:
            version = str(client.get_model_version_by_alias(followed.name, followed.alias).version)
        except MlflowException as exc:
            if exc.error_code not in MISSING_ALIAS_CODES:
                raise
            if followed.uri not in self._missing:
                self._missing.add(followed.uri)
                event(
                    logger,
                    "follow_alias_missing",
                    level=logging.WARNING,
                    uri=followed.uri,
                    message="the alias points nowhere; the served version stays until it is set again",
                )
            return None
        self._missing.discard(followed.uri)
        return version

    def _swap(
        self,
        client: MlflowClient,
        runtime: ServingRuntime,
        followed: FollowedAlias,
        before: str,
        version: str,
    ) -> Swap:
        from mlfactor.serving.resolve import resolve_and_download

        started = time.perf_counter()
        try:
            [found] = resolve_and_download(client, [f"models:/{followed.name}/{version}"])
            model = load_resolved(found, self.state.settings.environ)
            warmed = model.warm()
        except Exception as exc:  # noqa: BLE001 - whatever breaks, the old version keeps serving
            reason = _reason(exc)
            event(
                logger,
                "model_swap_failed",
                level=logging.ERROR,
                alias=followed.alias,
                model_name=followed.name,
                from_version=before,
                to_version=version,
                reason=reason,
                retry_in_s=self.interval,
            )
            return Swap(followed.alias, before, version, swapped=False, reason=reason)
        runtime.swap(followed.variants, model)
        for variant in followed.variants:
            self.state.metrics.serving(model.name, variant, model.version)
        elapsed = round(time.perf_counter() - started, 3)
        self._collect_pending = True
        event(
            logger,
            "model_swapped",
            alias=followed.alias,
            model_name=model.name,
            from_version=before,
            to_version=model.version,
            variants=list(followed.variants),
            warmed=warmed,
            elapsed_s=elapsed,
            pid=os.getpid(),
        )
        return Swap(followed.alias, before, model.version, swapped=True)

    def _registry_down(self, exc: BaseException) -> None:
        reason = _reason(exc)
        if self._outage is None:
            event(
                logger,
                "follow_check_failed",
                level=logging.WARNING,
                error=reason,
                message="the registry did not answer; the served versions keep serving",
                pid=os.getpid(),
            )
        self._outage = reason

    def _registry_up(self) -> None:
        if self._outage is not None:
            event(logger, "follow_check_recovered", after_error=self._outage, pid=os.getpid())
            self._outage = None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return mask_text(f"{type(exc).__name__}: {text}")[:300]
