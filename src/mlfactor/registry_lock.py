"""A registry-wide mutex for alias moves, held in the registry itself.

MLflow has no compare-and-set for aliases or tags, so two processes promoting
at once could both read the same "from" version. Creating a registered model
is unique in every backend (sqlite, PostgreSQL, an ``mlflow server``), so a
lock is a registered model named ``mlfactor-lock.<model>.<alias>``: whoever
creates it holds the lock, deleting it releases it. A lock older than
``stale_after`` seconds (its holder died) is broken.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlfactor.errors import LockTimeoutError
from mlfactor.log import event, get_logger
from mlfactor.tags import LOCK_TAG

logger = get_logger(__name__)

LOCK_PREFIX = "mlfactor-lock."


def lock_name(model: str, alias: str) -> str:
    """The registered-model name that serves as the lock of ``model@alias``."""
    return f"{LOCK_PREFIX}{model}.{alias}"


def is_lock(name: str) -> bool:
    """True for the registered models that are locks, so listings can leave them out."""
    return name.startswith(LOCK_PREFIX)


def _break_if_stale(client: MlflowClient, name: str, stale_after: float) -> None:
    try:
        created_ms = client.get_registered_model(name).creation_timestamp or 0
    except MlflowException:
        return  # released meanwhile
    if time.time() - created_ms / 1000 > stale_after:
        with contextlib.suppress(MlflowException):
            client.delete_registered_model(name)
            event(logger, "registry_lock_broken", lock=name, stale_after_s=stale_after)


def _held_by_another(exc: MlflowException) -> bool:
    """True when creating the lock failed because another process holds (or just released) it.

    The SQL store answers a duplicate name by reading the existing model; when its holder deleted
    it in between, that read fails with RESOURCE_DOES_NOT_EXIST: the lock was held, so try again.
    """
    code = str(exc.error_code)
    return (
        "ALREADY_EXISTS" in code or "already exists" in str(exc).lower() or "RESOURCE_DOES_NOT_EXIST" in code
    )


@contextlib.contextmanager
def alias_lock(
    client: MlflowClient, model: str, alias: str, *, timeout: float = 60.0, stale_after: float = 120.0
) -> Iterator[None]:
    """Hold the lock of ``model@alias`` for the block; LockTimeoutError after ``timeout`` seconds."""
    name = lock_name(model, alias)
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            client.create_registered_model(name, tags={LOCK_TAG: "true"})
            break
        except MlflowException as exc:
            if not _held_by_another(exc):
                raise
        if time.monotonic() > deadline:
            raise LockTimeoutError(
                f"another process has been moving {model}@{alias} for over {timeout:.0f} s "
                f"(lock {name!r}). Try again; if no process holds it, delete that registered model."
            )
        _break_if_stale(client, name, stale_after)
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            client.delete_registered_model(name)
