"""Training profiles and the drift check, with statistical properties checked by seeded simulation."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from mlfactor.errors import ValidationError
from mlfactor.monitoring.drift import check_drift
from mlfactor.monitoring.events import EventLine
from mlfactor.monitoring.profile import CATEGORICAL, NUMERIC, TrainingProfile, profile_frame

ALPHA = 0.05
COLOURS = ["red", "green", "blue"]


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": rng.normal(10.0, 2.0, n),
            "y": rng.exponential(1.0, n),
            "colour": rng.choice(COLOURS, n, p=[0.5, 0.3, 0.2]),
        }
    )


def _events(rng: np.random.Generator, n: int, shift_x: float = 0.0) -> Iterator[EventLine]:
    frame = _frame(rng, n)
    frame["x"] += shift_x * 2.0
    for i, row in enumerate(frame.to_dict("records")):
        data = {
            "event": "prediction",
            "model_name": "m",
            "model_version": "1",
            "inputs": [row],
            "outputs": [0],
        }
        yield EventLine("sim", i, data)


def _bound(rate: float, trials: int) -> float:
    """Upper end of a 3-sigma binomial interval around ``rate``."""
    return rate + 3.0 * math.sqrt(rate * (1.0 - rate) / trials)


def test_profile_round_trips_through_compact_json() -> None:
    """A profile survives to_json/from_json, types each column and stays a few kilobytes."""
    profile = profile_frame(_frame(np.random.default_rng(0), 2000).assign(small=lambda f: f.index % 3))
    text = profile.to_json()
    assert TrainingProfile.from_json(text) == profile
    assert len(text) < 8000
    kinds = {name: f.kind for name, f in profile.features.items()}
    assert kinds == {"x": NUMERIC, "y": NUMERIC, "colour": CATEGORICAL, "small": CATEGORICAL}
    assert sum(profile.features["x"].counts) == 2000 and profile.row_count == 2000
    assert profile.features["small"].categories == {"0": 667, "1": 667, "2": 666}


def test_profile_json_that_is_not_a_profile_names_the_source() -> None:
    """Reading JSON that is not a profile is a ValidationError naming where it came from."""
    with pytest.raises(ValidationError, match=r"ref\.json"):
        TrainingProfile.from_json('{"rows": 3}', source="ref.json")


@pytest.mark.parametrize(
    ("reference_rows", "events", "runs", "tests"),
    [(500, 300, 200, {"ks", "chi_squared"}), (5000, 2000, 20, {"wasserstein", "jensen_shannon"})],
    ids=["small-samples-p-values", "large-samples-distances"],
)
def test_false_alarm_rate_on_identical_distributions_stays_at_the_level(
    reference_rows: int, events: int, runs: int, tests: set[str]
) -> None:
    """Live traffic drawn from the training distribution is flagged at most at the level (binomial bound)."""
    rng = np.random.default_rng(7)
    alarms = 0
    for _ in range(runs):  # a new training sample each run: the level holds over both samples
        profile = profile_frame(_frame(rng, reference_rows))
        report = check_drift(_events(rng, events), profile=profile, alpha=ALPHA)
        assert {f.test for f in report.groups[0].features} == tests
        alarms += report.drift
    assert alarms / runs <= _bound(ALPHA, runs)


@pytest.mark.parametrize(
    ("reference_rows", "events"),
    [(500, 500), (20000, 500), (20000, 3000)],
    ids=["small-reference", "large-reference-few-events", "large-both"],
)
def test_one_sigma_shift_is_found_and_unshifted_features_are_not_flagged(
    reference_rows: int, events: int
) -> None:
    """A 1-sigma mean shift of one feature is detected in 500 events; the other features stay clean."""
    rng = np.random.default_rng(11)
    profile = profile_frame(_frame(rng, reference_rows))
    flagged_clean = 0
    for _ in range(10):
        report = check_drift(_events(rng, events, shift_x=1.0), profile=profile)
        verdicts = {f.feature: f.drifted for f in report.groups[0].features}
        assert verdicts["x"], report
        flagged_clean += verdicts["y"] + verdicts["colour"]
    assert flagged_clean <= 2


def test_each_model_version_is_checked_against_its_own_profile() -> None:
    """Without a fixed profile, events are grouped per model version and each group gets its profile."""
    rng = np.random.default_rng(3)
    asked: list[tuple[str, str]] = []
    profile = profile_frame(_frame(rng, 500))

    def lookup(name: str, version: str) -> TrainingProfile:
        asked.append((name, version))
        return profile

    events = list(_events(rng, 200))
    for item in events[100:]:
        item.data["model_version"] = "2"
    report = check_drift(events, lookup=lookup)
    assert asked == [("m", "1"), ("m", "2")]
    assert [(g.model, g.events) for g in report.groups] == [("models:/m/1", 100), ("models:/m/2", 100)]


def test_event_without_a_version_and_no_profile_is_refused() -> None:
    """An event naming no model version, with no --model or --reference, is refused saying what to pass."""
    item = EventLine("e.jsonl", 4, {"event": "prediction", "inputs": [{"x": 1.0}]})
    with pytest.raises(ValidationError, match=r"(?s)e\.jsonl:4.*--reference"):
        check_drift([item], lookup=lambda name, version: profile_frame(pd.DataFrame({"x": [1.0]})))


def test_shadow_and_feedback_events_are_not_counted() -> None:
    """Only served prediction events feed the check; shadow predictions and feedback are ignored."""
    profile = profile_frame(_frame(np.random.default_rng(1), 300))
    events = [
        EventLine("s", 1, {"event": "shadow_prediction", "shadow": True, "inputs": [{"x": 99.0}]}),
        EventLine("s", 2, {"event": "feedback", "request_id": "a", "label": 1}),
        EventLine("s", 3, {"event": "prediction", "inputs": [{"x": 10.0, "y": 1.0, "colour": "red"}]}),
    ]
    report = check_drift(events, profile=profile)
    assert report.groups[0].events == 1


def test_events_are_not_kept_once_counted() -> None:
    """The check holds no reference to the events it read: memory does not grow with the stream."""
    import gc
    import weakref

    rng = np.random.default_rng(6)
    profile = profile_frame(_frame(rng, 300))
    seen: list[weakref.ref[EventLine]] = []

    def stream() -> Iterator[EventLine]:
        for item in _events(rng, 3000):
            seen.append(weakref.ref(item))
            yield item

    report = check_drift(stream(), profile=profile)
    gc.collect()
    assert report.groups[0].rows == 3000
    assert sum(ref() is not None for ref in seen) == 0
