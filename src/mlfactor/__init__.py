"""mlfactor: twelve-factor notebooks, models and services on papermill, MLflow and BentoML."""

from __future__ import annotations

from mlfactor.errors import ExitCode, MlfactorError
from mlfactor.settings import Settings, load_settings

__all__ = ["ExitCode", "MlfactorError", "Settings", "load_settings"]
