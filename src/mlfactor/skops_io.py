"""Import ``skops.io`` without the array libraries scikit-learn's estimator walk drags in.

skops lists its trusted types at import time with ``sklearn.utils.all_estimators()``,
whose ``pkgutil.walk_packages`` imports every scikit-learn package, the vendored
``array_api_compat.torch`` (and ``.cupy``, ``.dask``) shims included. With torch
installed beside scikit-learn, every process that saves or loads a skops model
then imports torch: about a second and 160 MiB more per process, and torch's
exit-time aborts ("terminate called without an active exception", exit -6) in
a job that had finished. Saving and serving a scikit-learn model never needs
them, so the walk runs with those libraries hidden from the importing thread;
a shim that fails to import is skipped by the walk, and a library the process
had already imported stays as it is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

#: Array libraries scikit-learn's vendored array-API shims import; none is needed to save or load.
HIDDEN = ("torch", "cupy", "dask")


class _Hide(importlib.abc.MetaPathFinder):
    """Refuse ``names`` (and their submodules) to one thread; every other import goes on as usual."""

    def __init__(self, names: frozenset[str], thread: int) -> None:
        self.names = names
        self.thread = thread

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if threading.get_ident() == self.thread and fullname.partition(".")[0] in self.names:
            message = f"No module named {fullname!r} (hidden while skops.io loads)"
            raise ModuleNotFoundError(message, name=fullname)
        return None


def skops_io() -> ModuleType:
    """Return ``skops.io``, importing it the first time with :data:`HIDDEN` libraries out of reach."""
    loaded = sys.modules.get("skops.io")
    if loaded is not None:
        return loaded
    hidden = frozenset(name for name in HIDDEN if name not in sys.modules)
    finder = _Hide(hidden, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module("skops.io")
    finally:
        sys.meta_path.remove(finder)
