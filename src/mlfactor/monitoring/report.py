"""What the monitoring commands show: JSON documents, terminal tables and self-contained HTML reports.

HTML reports embed their plots as PNG (matplotlib, Agg backend, imported
only when a report is written), so one file can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlfactor.monitoring.drift import DriftReport, FeatureDrift
from mlfactor.monitoring.drift_tests import CHI_SQUARED, KS
from mlfactor.monitoring.experiment import ExperimentReport

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    ".bad{color:#b00020;font-weight:bold}.ok{color:#1b5e20}"
)


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def drift_json(report: DriftReport) -> dict[str, Any]:
    """The drift report as one JSON-ready document (no plot data)."""
    groups = []
    for group in report.groups:
        features = [
            {k: v for k, v in asdict(f).items() if k not in {"edges", "reference", "current", "labels"}}
            for f in group.features
        ]
        groups.append(
            {"model": group.model, "events": group.events, "rows": group.rows, "features": features}
        )
    return {"drift": report.drift, "alpha": report.alpha, "skipped_events": report.skipped, "groups": groups}


def drift_rows(report: DriftReport) -> list[tuple[str, ...]]:
    """One table row per (group, feature): model, feature, test, score, threshold, rows, verdict."""
    return [
        (
            group.model,
            f.feature,
            f.test,
            _number(f.score),
            _number(f.threshold),
            str(f.count),
            "DRIFT" if f.drifted else "ok",
        )
        for group in report.groups
        for f in group.features
    ]


DRIFT_HEADER = ("MODEL", "FEATURE", "TEST", "SCORE", "THRESHOLD", "ROWS", "VERDICT")


def _plot(feature: FeatureDrift) -> str:
    import matplotlib as mpl

    mpl.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.6))
    if feature.labels:
        positions = range(len(feature.labels))
        ax.bar([p - 0.2 for p in positions], feature.reference, width=0.4, label="training")
        ax.bar([p + 0.2 for p in positions], feature.current, width=0.4, label="live")
        ax.set_xticks(list(positions), feature.labels, rotation=30, fontsize=7)
    else:
        edges = feature.edges
        widths = [b - a or 1.0 for a, b in itertools.pairwise(edges)]
        inner_ref = [s / w for s, w in zip(feature.reference[1:-1], widths, strict=True)]
        inner_cur = [s / w for s, w in zip(feature.current[1:-1], widths, strict=True)]
        ax.stairs(inner_ref, edges, label="training")
        ax.stairs(inner_cur, edges, label="live")
        ax.set_ylabel("density")
    measure = "p" if feature.test in {KS, CHI_SQUARED} else "distance"
    ax.set_title(f"{feature.feature}: {feature.test} {measure} = {_number(feature.score)}", fontsize=9)
    ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"bad" if c in {"DRIFT", "MISMATCH"} else ""}">{html.escape(c)}</td>' for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def write_drift_html(report: DriftReport, path: Path) -> None:
    """Write the drift report: verdict, the per-feature table, one plot per drifted feature."""
    verdict = "drift found" if report.drift else "no drift"
    css = "bad" if report.drift else "ok"
    parts = [
        f'<p class="{css}">Verdict: {verdict} (family-wise level {report.alpha}).</p>',
        _table(DRIFT_HEADER, drift_rows(report)),
    ]
    for group in report.groups:
        for feature in group.drifted:
            parts.append(f"<h2>{html.escape(group.model)}: {html.escape(feature.feature)}</h2>")
            parts.append(
                f'<img alt="{html.escape(feature.feature)}" src="data:image/png;base64,{_plot(feature)}">'
            )
    path.write_text(_page("mlfactor drift report", "".join(parts)), encoding="utf-8")


def experiment_json(report: ExperimentReport) -> dict[str, Any]:
    """The experiment report as one JSON-ready document."""
    return {
        "decision": str(report.decision),
        "metric": report.metric,
        "control": report.control,
        "challenger": report.challenger,
        "promotable": report.promotable,
        "alpha": report.alpha,
        "lower_is_better": report.lower_is_better,
        "variants": [
            {
                "variant": v.variant,
                "predictions": v.predictions,
                "joined": v.joined,
                "observations": v.metric.count,
                "metric": v.metric.mean,
                "model_name": v.model_name,
                "model_version": v.model_version,
            }
            for v in report.variants
        ],
        "sample_ratio": asdict(report.ratio) if report.ratio else None,
        "comparisons": {name: _finite(asdict(c)) for name, c in report.comparisons.items()},
        "unmatched_feedback": report.unmatched_feedback,
    }


def _finite(data: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in data.items()}


EXPERIMENT_HEADER = (
    "VARIANT",
    "PREDICTIONS",
    "JOINED",
    "METRIC",
    "DIFFERENCE",
    "INTERVAL",
    "P (ALWAYS VALID)",
)


def experiment_rows(report: ExperimentReport) -> list[tuple[str, ...]]:
    """One row per variant; the challengers' rows carry the difference with the control."""
    rows: list[tuple[str, ...]] = []
    for v in report.variants:
        c = report.comparisons.get(v.variant)
        interval = f"[{_number(c.lower)}, {_number(c.upper)}]" if c else "control"
        rows.append(
            (
                v.variant,
                str(v.predictions),
                str(v.joined),
                _number(v.metric.mean),
                _number(c.difference) if c else "-",
                interval,
                _number(c.p_value) if c else "-",
            )
        )
    return rows


def experiment_summary(report: ExperimentReport) -> str:
    """The decision and the SRM verdict in one line."""
    srm = "not checked (no weights)"
    if report.ratio is not None:
        srm = f"p={_number(report.ratio.p_value)}" + (" MISMATCH" if report.ratio.mismatch else " ok")
    return f"decision: {report.decision} ({report.metric}, level {report.alpha}); sample ratio: {srm}"


def write_experiment_html(report: ExperimentReport, path: Path) -> None:
    """Write the experiment report: decision, SRM check and the per-variant table."""
    body = (
        f"<p>{html.escape(experiment_summary(report))}</p>"
        + _table(EXPERIMENT_HEADER, experiment_rows(report))
        + "<p>Intervals are always-valid (mSPRT) confidence sequences: reading this report every day "
        "does not raise the false-positive rate above the level.</p>"
    )
    path.write_text(_page("mlfactor experiment report", body), encoding="utf-8")
