"""Drift on features a model reports in its outputs (a dict per row), beside its input columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlfactor.monitoring.drift import check_drift
from mlfactor.monitoring.events import EventLine
from mlfactor.monitoring.profile import profile_frame

RNG = np.random.default_rng(3)
PROFILE = profile_frame(pd.DataFrame({"query_length": RNG.normal(60, 15, 400).round()}))


def events(lengths: list[float], *, in_inputs: bool = False) -> list[EventLine]:
    """Prediction events whose output (or input) row carries ``query_length``."""
    found = []
    for i, length in enumerate(lengths):
        row: dict[str, Any] = {"query": "x" * int(max(length, 1))}
        output: dict[str, Any] = {"results": [], "query_length": 9999}
        if in_inputs:
            row["query_length"] = length
        else:
            output["query_length"] = length
        data = {
            "event": "prediction",
            "model_name": "m",
            "model_version": "1",
            "inputs": [row],
            "outputs": [output],
        }
        found.append(EventLine("sim", i, data))
    return found


def test_a_feature_missing_from_inputs_is_read_from_the_output() -> None:
    """Outputs like the profile do not drift; outputs twice as long do, on that feature."""
    same = check_drift(events(list(RNG.normal(60, 15, 300))), profile=PROFILE).groups[0]
    longer = check_drift(events(list(RNG.normal(120, 15, 300))), profile=PROFILE).groups[0]
    assert same.features[0].count == 300 and not same.drifted
    assert [f.feature for f in longer.drifted] == ["query_length"]


def test_inputs_win_over_outputs() -> None:
    """When the input row has the feature, the output's value (9999 here) is not used."""
    group = check_drift(events(list(RNG.normal(60, 15, 300)), in_inputs=True), profile=PROFILE).groups[0]
    assert not group.drifted and group.features[0].current_mean is not None
    assert group.features[0].current_mean < 100
