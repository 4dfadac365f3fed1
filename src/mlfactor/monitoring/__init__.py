"""Monitoring from the event stream: training profiles, drift checks and A/B experiment analysis.

* :mod:`~mlfactor.monitoring.events`: read JSON-lines event files (gzip, stdin).
* :mod:`~mlfactor.monitoring.profile`: the training profile logged with a model.
* :mod:`~mlfactor.monitoring.drift` (tests in ``drift_tests``): live inputs against a profile.
* :mod:`~mlfactor.monitoring.sequential`, :mod:`~mlfactor.monitoring.experiment`: always-valid A/B statistics.
* :mod:`~mlfactor.monitoring.report`: JSON, tables and HTML reports.
* :mod:`~mlfactor.monitoring.feedback`: the ``POST /feedback`` body as ``feedback`` events.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlfactor.monitoring.drift import DriftReport, check_drift
    from mlfactor.monitoring.events import EventLine, read_events
    from mlfactor.monitoring.experiment import Decision, ExperimentReport, analyse_experiment
    from mlfactor.monitoring.feedback import Feedback, read_feedback
    from mlfactor.monitoring.profile import (
        TrainingProfile,
        download_profile,
        log_profile,
        profile_frame,
        read_profile,
    )

# Imported on first use: logging a model's profile must not pay for scipy's statistics.
_HOMES = {
    "DriftReport": "drift",
    "check_drift": "drift",
    "EventLine": "events",
    "read_events": "events",
    "Decision": "experiment",
    "ExperimentReport": "experiment",
    "analyse_experiment": "experiment",
    "Feedback": "feedback",
    "read_feedback": "feedback",
    "TrainingProfile": "profile",
    "download_profile": "profile",
    "log_profile": "profile",
    "profile_frame": "profile",
    "read_profile": "profile",
}

__all__ = [
    "Decision",
    "DriftReport",
    "EventLine",
    "ExperimentReport",
    "Feedback",
    "TrainingProfile",
    "analyse_experiment",
    "check_drift",
    "download_profile",
    "log_profile",
    "profile_frame",
    "read_events",
    "read_feedback",
    "read_profile",
]


def __getattr__(name: str) -> object:
    """Import ``name`` from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mlfactor.monitoring' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mlfactor.monitoring.{home}"), name)
