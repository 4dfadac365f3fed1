"""Mask remembered secrets in everything this process sends to MLflow's tracking and registry API.

A notebook may log a secret without meaning to: ``mlflow.log_param("dsn",
dsn)``, a tag, a metric named after a value, autologging an estimator built
with a token. In a step's kernel (see :mod:`mlfactor.kernel_setup`) this guard
wraps the few client methods every fluent and ``MlflowClient`` call goes
through, so parameter and tag keys and values, metric names, run names and
model-version tags reach the store with every remembered secret
(:func:`mlfactor.masking.remember_secrets`) replaced by ``***``.

MLflow is not imported to install the guard: :func:`mlfactor.import_hooks.after_import`
patches each client module the moment it is first imported.
"""

from __future__ import annotations

import copy
import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from mlfactor.import_hooks import after_import, clear_import_hooks
from mlfactor.masking import mask_key, mask_text

# module -> class -> method -> names of the arguments to mask
_TARGETS: Mapping[str, tuple[str, Mapping[str, frozenset[str]]]] = {
    "mlflow.tracking._tracking_service.client": (
        "TrackingServiceClient",
        {
            "create_run": frozenset({"tags", "run_name"}),
            "log_param": frozenset({"key", "value"}),
            "set_tag": frozenset({"key", "value"}),
            "log_metric": frozenset({"key"}),
            "log_batch": frozenset({"metrics", "params", "tags"}),
            "update_run": frozenset({"name"}),
            "set_experiment_tag": frozenset({"key", "value"}),
        },
    ),
    "mlflow.tracking._model_registry.client": (
        "ModelRegistryClient",
        {
            "create_model_version": frozenset({"tags", "description"}),
            "set_model_version_tag": frozenset({"key", "value"}),
            "set_registered_model_tag": frozenset({"key", "value"}),
            "update_model_version": frozenset({"description"}),
        },
    ),
}
_MARK = "_mlfactor_secret_guard"


def masked(value: Any, *, key: bool = False) -> Any:
    """``value`` with remembered secrets masked: text (``key``: an MLflow key), mappings, entities.

    Entities are MLflow's Param, RunTag and Metric (their key, and their value when it is text).
    """
    if isinstance(value, str):
        return mask_key(value) if key else mask_text(value)
    if isinstance(value, Mapping):
        return {masked(k, key=True): masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(masked(v) for v in value)
    if hasattr(value, "_key") and hasattr(value, "_value"):
        entity = copy.copy(value)
        entity._key = mask_key(str(value._key))
        if isinstance(value._value, str):
            entity._value = mask_text(value._value)
        return entity
    return value


def _guarded(method: Callable[..., Any], names: frozenset[str]) -> Callable[..., Any]:
    signature = inspect.signature(method)

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for name in names & bound.arguments.keys():
            bound.arguments[name] = masked(bound.arguments[name], key=name == "key")
        return method(*bound.args, **bound.kwargs)

    setattr(call, _MARK, True)
    return call


def _patch(module: ModuleType) -> None:
    class_name, methods = _TARGETS[module.__name__]
    cls = getattr(module, class_name, None)
    if cls is None:
        return
    for name, arguments in methods.items():
        method = cls.__dict__.get(name)
        if callable(method) and not getattr(method, _MARK, False):
            setattr(cls, name, _guarded(method, arguments))


def unguard_mlflow() -> None:
    """Undo :func:`guard_mlflow` (tests start clean with it)."""
    clear_import_hooks()
    for module_name, (class_name, methods) in _TARGETS.items():
        cls = getattr(sys.modules.get(module_name), class_name, None)
        for name in methods if cls is not None else ():
            method: Any = cls.__dict__.get(name)
            if getattr(method, _MARK, False):
                setattr(cls, name, method.__wrapped__)


def guard_mlflow() -> None:
    """Mask remembered secrets in MLflow writes of this process from now on (idempotent)."""
    for name in _TARGETS:
        after_import(name, _patch)
