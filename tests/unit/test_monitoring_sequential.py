"""Always-valid A/B statistics, the sample-ratio check and the prediction/feedback join."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from mlfactor.errors import ValidationError
from mlfactor.monitoring.events import EventLine
from mlfactor.monitoring.experiment import Decision, analyse_experiment
from mlfactor.monitoring.sequential import Moments, compare_means, naive_z_test, sample_ratio_check

ALPHA = 0.05


def _moments(successes: int, n: int) -> Moments:
    p = successes / n
    return Moments(n, p, p * (1 - p))


def test_daily_peeking_keeps_false_positives_at_the_level_unlike_a_naive_z_test() -> None:
    """300 A/A experiments read daily for 30 days: mSPRT stays under the level, the naive z-test does not."""
    rng = np.random.default_rng(5)
    experiments, days, per_day = 300, 30, 200
    a = rng.binomial(per_day, 0.8, size=(experiments, days)).cumsum(axis=1)
    b = rng.binomial(per_day, 0.8, size=(experiments, days)).cumsum(axis=1)
    ours = naive = 0
    for e in range(experiments):
        ns = [per_day * (d + 1) for d in range(days)]
        pairs = [(_moments(a[e, d], n), _moments(b[e, d], n)) for d, n in enumerate(ns)]
        ours += any(compare_means(x, y, alpha=ALPHA).significant for x, y in pairs)
        naive += any(naive_z_test(x, y) < ALPHA for x, y in pairs)
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / experiments)
    assert ours / experiments <= bound
    assert naive / experiments > bound


def test_a_five_point_lift_is_detected_at_ten_thousand_per_arm() -> None:
    """Accuracy 0.80 against 0.85 with 10 000 events per arm gives an interval above zero."""
    result = compare_means(_moments(8000, 10_000), _moments(8500, 10_000))
    assert result.significant and result.lower > 0
    assert result.lower < 0.05 < result.upper


def test_small_arms_never_decide() -> None:
    """Below the minimum sample the interval is unbounded and the p-value 1."""
    result = compare_means(_moments(1, 10), _moments(10, 10))
    assert (result.lower, result.upper, result.p_value) == (-math.inf, math.inf, 1.0)


@pytest.mark.parametrize(
    ("counts", "mismatch"),
    [
        ({"champion": 5000, "challenger": 5000}, False),
        ({"champion": 5200, "challenger": 4800}, True),
        ({"champion": 9000, "challenger": 1000, "other": 0}, False),
        ({"champion": 9000, "challenger": 1000, "other": 5}, True),
    ],
    ids=["balanced", "52-48", "matches-90-10", "traffic-on-zero-weight"],
)
def test_sample_ratio_mismatch_against_the_weights(counts: dict[str, int], mismatch: bool) -> None:
    """Counts far from the configured split are flagged at p < 0.001; matching ones are not."""
    weights = {"champion": 50.0, "challenger": 50.0}
    if "other" in counts:
        weights = {"champion": 90.0, "challenger": 10.0, "other": 0.0}
    assert sample_ratio_check(counts, weights).mismatch is mismatch


def _experiment(rng: np.random.Generator, accuracy: dict[str, float], n: int) -> list[EventLine]:
    events: list[EventLine] = []
    for variant, p in accuracy.items():
        for i in range(n):
            request_id = f"{variant}-{i}"
            correct = rng.random() < p
            pred = {"event": "prediction", "request_id": request_id, "variant": variant, "outputs": [1],
                    "model_name": "m", "model_version": "2" if variant == "challenger" else "1"}  # fmt: skip
            feedback = {"event": "feedback", "request_id": request_id, "label": 1 if correct else 0}
            pair = [EventLine("sim", 0, feedback), EventLine("sim", 0, pred)]
            events.extend(pair if i % 2 else pair[::-1])  # feedback before its prediction half of the time
    return events


@pytest.mark.parametrize(
    ("challenger", "decision"),
    [(0.85, Decision.CHALLENGER_BETTER), (0.70, Decision.CHALLENGER_WORSE), (0.80, Decision.CONTINUE)],
    ids=["better", "worse", "same"],
)
def test_report_joins_in_any_order_and_decides(challenger: float, decision: Decision) -> None:
    """Feedback joined to predictions in either order yields per-variant accuracy and the right decision."""
    rng = np.random.default_rng(2)
    events = _experiment(rng, {"champion": 0.80, "challenger": challenger}, 3000)
    report = analyse_experiment(events, weights=(("champion", 50), ("challenger", 50)))
    assert report.decision is decision
    assert [(v.variant, v.predictions, v.joined) for v in report.variants] == [
        ("champion", 3000, 3000),
        ("challenger", 3000, 3000),
    ]
    assert report.ratio is not None and not report.ratio.mismatch
    assert report.promotable is (decision is Decision.CHALLENGER_BETTER)


def test_a_significant_win_with_sample_ratio_mismatch_is_not_promotable() -> None:
    """A better challenger that got far less traffic than its weight is reported but not promotable."""
    rng = np.random.default_rng(4)
    events = _experiment(rng, {"champion": 0.70, "challenger": 0.90}, 2000)
    report = analyse_experiment(events, weights=(("champion", 10), ("challenger", 90)))
    assert report.decision is Decision.CHALLENGER_BETTER
    assert report.ratio is not None and report.ratio.mismatch and not report.promotable


def test_feedback_without_label_or_value_names_the_line() -> None:
    """A feedback event carrying neither label nor value is a ValidationError naming file and line."""
    bad = EventLine("fb.jsonl", 7, {"event": "feedback", "request_id": "r1", "score": 3})
    with pytest.raises(ValidationError, match=r"fb\.jsonl:7"):
        analyse_experiment(
            [EventLine("p", 1, {"event": "prediction", "request_id": "r1", "variant": "a"}), bad]
        )


def test_values_give_the_mean_and_lower_can_be_better() -> None:
    """Value feedback is averaged per variant; with lower_is_better a lower mean wins."""
    rng = np.random.default_rng(9)
    events: list[EventLine] = []
    for variant, mean in (("a", 10.0), ("b", 9.0)):
        for i in range(2000):
            rid = f"{variant}{i}"
            events.append(EventLine("s", 0, {"event": "prediction", "request_id": rid, "variant": variant}))
            events.append(
                EventLine("s", 0, {"event": "feedback", "request_id": rid, "value": rng.normal(mean, 2)})
            )
    report = analyse_experiment(events, lower_is_better=True)
    assert report.metric == "mean_value" and report.ratio is None
    assert report.decision is Decision.CHALLENGER_BETTER
    assert abs(report.variants[1].metric.mean - 9.0) < 0.2


def test_matched_pairs_are_forgotten() -> None:
    """Once a prediction meets its feedback neither is kept: only unmatched request ids stay in memory."""
    import gc
    import weakref

    events = _experiment(np.random.default_rng(8), {"champion": 0.8, "challenger": 0.8}, 500)
    seen: list[weakref.ref[EventLine]] = []

    def stream() -> Iterator[EventLine]:
        while events:
            item = events.pop(0)
            seen.append(weakref.ref(item))
            yield item

    report = analyse_experiment(stream())
    gc.collect()
    assert [v.joined for v in report.variants] == [500, 500]
    assert sum(ref() is not None for ref in seen) == 0
