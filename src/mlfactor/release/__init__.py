"""Build and release: a Bento carrying one model version, and immutable release records."""

from __future__ import annotations

from mlfactor.release.build import BuildFailedError, BuildResult, build_bento
from mlfactor.release.records import Release, create_release, list_releases

__all__ = ["BuildFailedError", "BuildResult", "Release", "build_bento", "create_release", "list_releases"]
