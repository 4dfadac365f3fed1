"""``mlfactor reproduce``: rebuild a registered version from its lineage and compare it with the original."""

from __future__ import annotations

from mlfactor.reproduce.record import NotReproducibleError
from mlfactor.reproduce.report import Report

__all__ = ["NotReproducibleError", "Report"]
