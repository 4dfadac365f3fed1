"""An A/B experiment from the event stream: join predictions with feedback, then decide.

Predictions and feedback are joined by request id in one pass, in any order:
a prediction waits (as its variant and outputs only) until its feedback
arrives and the other way round; a matched pair is folded into its variant's
running sums and forgotten. Memory therefore grows only with unmatched
request ids. Labels give accuracy (prediction equals label, per row); values
give their mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mlfactor.errors import ValidationError
from mlfactor.monitoring.events import FEEDBACK, PREDICTION, EventLine, event_rows
from mlfactor.monitoring.profile import category_key, finite
from mlfactor.monitoring.sequential import (
    DEFAULT_ALPHA,
    Comparison,
    Moments,
    RatioCheck,
    compare_means,
    sample_ratio_check,
)

ACCURACY = "accuracy"
MEAN_VALUE = "mean_value"


class Decision(StrEnum):
    """What the experiment says about the challenger (the first non-control variant)."""

    CONTINUE = "continue"
    CHALLENGER_BETTER = "challenger_better"
    CHALLENGER_WORSE = "challenger_worse"


@dataclass
class _Arm:
    predictions: int = 0
    joined: int = 0
    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)  # model name -> last version served

    def add(self, x: float) -> None:
        self.count += 1
        self.total += x
        self.squares += x * x


@dataclass(frozen=True)
class VariantResult:
    """One variant: prediction events, joined feedback, the metric and its observations."""

    variant: str
    predictions: int
    joined: int
    metric: Moments
    model_name: str
    model_version: str


@dataclass(frozen=True)
class ExperimentReport:
    """Per-variant results, the SRM check, each challenger against the control, and the decision."""

    metric: str
    control: str
    variants: list[VariantResult]
    ratio: RatioCheck | None
    comparisons: dict[str, Comparison]
    decision: Decision
    alpha: float
    lower_is_better: bool
    unmatched_feedback: int

    @property
    def challenger(self) -> str | None:
        """The variant the decision is about."""
        return next(iter(self.comparisons), None)

    @property
    def promotable(self) -> bool:
        """Significantly better and no sample-ratio mismatch."""
        return self.decision is Decision.CHALLENGER_BETTER and not (self.ratio and self.ratio.mismatch)


def _feedback_of(data: Mapping[str, object]) -> tuple[str, list[object]] | None:
    if "label" in data:
        value = data["label"]
        return ACCURACY, value if isinstance(value, list) else [value]
    if "value" in data:
        value = data["value"]
        return MEAN_VALUE, value if isinstance(value, list) else [value]
    return None


class _Join:
    def __init__(self) -> None:
        self.arms: dict[str, _Arm] = {}
        self.waiting_predictions: dict[str, tuple[str, list[object]]] = {}
        self.waiting_feedback: dict[str, tuple[str, list[object]]] = {}
        self.metric: str | None = None

    def prediction(self, item: EventLine) -> None:
        data = item.data
        variant = str(data.get("variant") or "")
        arm = self.arms.setdefault(variant, _Arm())
        arm.predictions += 1
        arm.versions[str(data.get("model_name", ""))] = str(data.get("model_version", ""))
        request_id = str(data.get("request_id", ""))
        outputs = event_rows(dict(data), "outputs")
        feedback = self.waiting_feedback.pop(request_id, None)
        if feedback is None:
            self.waiting_predictions[request_id] = (variant, outputs)
        else:
            self._score(variant, outputs, feedback, item)

    def feedback(self, item: EventLine) -> None:
        data = item.data
        feedback = _feedback_of(data)
        request_id = str(data.get("request_id", ""))
        if feedback is None or not request_id:
            raise ValidationError(
                item.where(),
                [
                    'a feedback event needs "request_id" and "label" or "value" '
                    "(docs/events/feedback.schema.json)"
                ],
            )
        waiting = self.waiting_predictions.pop(request_id, None)
        if waiting is None:
            self.waiting_feedback[request_id] = feedback
        else:
            self._score(waiting[0], waiting[1], feedback, item)

    def _score(
        self, variant: str, outputs: Sequence[object], feedback: tuple[str, list[object]], item: EventLine
    ) -> None:
        metric, values = feedback
        if self.metric is None:
            self.metric = metric
        elif metric != self.metric:
            raise ValidationError(
                item.where(),
                [
                    f"feedback mixes labels and values ({metric} after {self.metric}); "
                    "report one metric per run"
                ],
            )
        arm = self.arms[variant]
        arm.joined += 1
        if metric == ACCURACY:
            for output, label in zip(outputs, values, strict=False):
                arm.add(1.0 if category_key(output) == category_key(label) else 0.0)
            return
        for value in values:
            number = finite(value)
            if number is None:
                raise ValidationError(item.where(), [f"feedback value {value!r} is not a finite number"])
            arm.add(number)


def analyse_experiment(
    events: Iterable[EventLine],
    *,
    weights: Sequence[tuple[str, int]] = (),
    alpha: float = DEFAULT_ALPHA,
    lower_is_better: bool = False,
) -> ExperimentReport:
    """Join, count, check the sample ratio against ``weights`` and compare each variant with the control.

    The control is the first variant of ``weights`` (else the first seen).
    """
    if not 0.0 < alpha < 1.0:
        raise ValidationError("--alpha", [f"got {alpha}; expected a level between 0 and 1, e.g. 0.05"])
    join = _Join()
    for item in events:
        if item.name == PREDICTION and not item.data.get("shadow"):
            join.prediction(item)
        elif item.name == FEEDBACK:
            join.feedback(item)
    order = [name for name, _ in weights] + [name for name in join.arms if name not in dict(weights)]
    for name in order:
        join.arms.setdefault(name, _Arm())
    if not order:
        raise ValidationError(
            "experiment events", ["no prediction events found; is MLFACTOR_LOG_PREDICTIONS on?"]
        )
    results = [_result(name, join.arms[name]) for name in order]
    ratio = (
        sample_ratio_check({r.variant: r.predictions for r in results}, dict(weights)) if weights else None
    )
    control = results[0]
    comparisons = {r.variant: compare_means(control.metric, r.metric, alpha=alpha) for r in results[1:]}
    return ExperimentReport(
        metric=join.metric or ACCURACY,
        control=control.variant,
        variants=results,
        ratio=ratio,
        comparisons=comparisons,
        decision=_decide(next(iter(comparisons.values()), None), lower_is_better=lower_is_better),
        alpha=alpha,
        lower_is_better=lower_is_better,
        unmatched_feedback=len(join.waiting_feedback),
    )


def _result(name: str, arm: _Arm) -> VariantResult:
    model_name, version = next(reversed(arm.versions.items()), ("", ""))
    moments = Moments.of(arm.count, arm.total, arm.squares)
    return VariantResult(name, arm.predictions, arm.joined, moments, model_name, version)


def _decide(comparison: Comparison | None, *, lower_is_better: bool) -> Decision:
    if comparison is None or not comparison.significant:
        return Decision.CONTINUE
    better = comparison.lower > 0.0
    if lower_is_better:
        better = not better
    return Decision.CHALLENGER_BETTER if better else Decision.CHALLENGER_WORSE
