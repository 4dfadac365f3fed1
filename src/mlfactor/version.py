"""The installed mlfactor version, without importing anything heavy."""

from __future__ import annotations

import importlib.metadata


def mlfactor_version() -> str:
    """The installed mlfactor version."""
    try:
        return importlib.metadata.version("mlfactor")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
