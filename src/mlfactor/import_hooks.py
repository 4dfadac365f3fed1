"""Run a function on a module right after its first import (or now, when it is already imported).

The kernel setup adjusts MLflow without importing it (a notebook that never
uses MLflow must not pay for it): :func:`after_import` registers a callback
that a ``sys.meta_path`` finder runs the moment the module has executed, before
anything else can take names from it (``from mlflow.tracking.fluent import
set_experiment`` in ``mlflow/__init__.py`` sees the adjusted function).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

Callback = Callable[[ModuleType], None]
_callbacks: dict[str, list[Callback]] = {}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Wrap the loader of each watched module so its callbacks run right after it executed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _callbacks:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader: Any = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_module = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run_module(module)
            for callback in _callbacks.get(fullname, []):
                callback(module)

        loader.exec_module = exec_module
        return spec


def after_import(module_name: str, callback: Callback) -> None:
    """Call ``callback(module)`` once ``module_name`` is imported: now if it is, else right after it is."""
    _callbacks.setdefault(module_name, []).append(callback)
    module = sys.modules.get(module_name)
    if module is not None:
        callback(module)
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


def clear_import_hooks() -> None:
    """Drop every callback and the finder (tests start clean with it)."""
    _callbacks.clear()
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterImport)]
