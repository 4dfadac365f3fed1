"""Monitoring from the event stream: training profiles, drift checks and A/B experiment analysis.

* :mod:`~mlfactor.monitoring.events`: read JSON-lines event files (gzip, stdin).
* :mod:`~mlfactor.monitoring.profile`: the training profile logged with a model.
* :mod:`~mlfactor.monitoring.drift` (tests in ``drift_tests``): live inputs against a profile.
* :mod:`~mlfactor.monitoring.sequential`, :mod:`~mlfactor.monitoring.experiment`: always-valid A/B statistics.
* :mod:`~mlfactor.monitoring.report`: JSON, tables and HTML reports.
* :mod:`~mlfactor.monitoring.feedback`: the ``POST /feedback`` body as ``feedback`` events.
"""

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
