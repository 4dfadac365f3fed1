"""Keep torch out of processes that only save or load scikit-learn models with skops.

skops lists its trusted types at import time with ``sklearn.utils.all_estimators()``,
whose ``pkgutil.walk_packages`` imports every scikit-learn package, the vendored
``array_api_compat.torch`` (and ``.cupy``, ``.dask``) shims included. With torch
installed beside scikit-learn, every process that saves or loads a skops model
then imports torch: about a second and 160 MiB more per process, and torch's
exit-time aborts ("terminate called without an active exception", exit -6) in
a job that had finished. Saving and serving a scikit-learn model never needs
them, so :func:`hide_array_libraries_from_estimator_walk` makes the walk run
with those libraries out of the calling thread's reach: a shim that fails to
import is skipped by the walk (it lists no estimators anyway), and a library
the process had already imported stays as it is. Serving calls it through
:func:`skops_io`; pipeline kernels call it at start (:mod:`mlfactor.kernel_setup`),
so plain ``mlflow.sklearn.load_model`` in a notebook benefits too.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

from mlfactor.import_hooks import after_import

#: Array libraries scikit-learn's vendored array-API shims import; none is needed to save or load.
HIDDEN = ("torch", "cupy", "dask")
_WRAPPED = "__mlfactor_hides_array_libraries__"


class _Hide(importlib.abc.MetaPathFinder):
    """Refuse ``names`` (and their submodules) to one thread; every other import goes on as usual."""

    def __init__(self, names: frozenset[str], thread: int) -> None:
        self.names = names
        self.thread = thread

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if threading.get_ident() == self.thread and fullname.partition(".")[0] in self.names:
            message = f"No module named {fullname!r} (hidden from scikit-learn's estimator walk)"
            raise ModuleNotFoundError(message, name=fullname)
        return None


@contextlib.contextmanager
def hidden_array_libraries() -> Iterator[None]:
    """Within the block, this thread cannot import the :data:`HIDDEN` libraries it has not imported yet."""
    finder = _Hide(frozenset(name for name in HIDDEN if name not in sys.modules), threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _wrap_all_estimators(utils: ModuleType) -> None:
    original: Callable[..., Any] = utils.all_estimators
    if getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def all_estimators(*args: Any, **kwargs: Any) -> Any:
        with hidden_array_libraries():
            return original(*args, **kwargs)

    setattr(all_estimators, _WRAPPED, True)
    setattr(utils, "all_estimators", all_estimators)  # noqa: B010 - a module attribute mypy cannot see


def hide_array_libraries_from_estimator_walk() -> None:
    """Make ``sklearn.utils.all_estimators`` walk without the :data:`HIDDEN` libraries (now or on import)."""
    utils = sys.modules.get("sklearn.utils")
    if utils is not None:
        _wrap_all_estimators(utils)
    else:
        after_import("sklearn.utils", _wrap_all_estimators)


def skops_io() -> ModuleType:
    """Return ``skops.io``, its trusted-types walk kept away from the :data:`HIDDEN` libraries."""
    loaded = sys.modules.get("skops.io")
    if loaded is not None:
        return loaded
    hide_array_libraries_from_estimator_walk()
    return importlib.import_module("skops.io")
