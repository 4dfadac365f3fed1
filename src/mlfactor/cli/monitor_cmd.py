"""``mlfactor monitor drift`` and ``mlfactor experiment report``: read event streams, decide, exit.

Both read JSON-lines event files (gzip allowed, ``-`` for stdin) written from
the service's stdout; the work lives in :mod:`mlfactor.monitoring`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json, render_table, wants_json
from mlfactor.errors import ExitCode, ValidationError, exit_codes_help

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlfactor.monitoring.drift import DriftReport
    from mlfactor.monitoring.experiment import ExperimentReport
    from mlfactor.settings import Settings

E = ExitCode
DRIFT_EXIT = 10  # a scheduler can alert on it; 0 means no drift
MONITORING_EXPERIMENT = "monitoring"  # the MLflow experiment the drift job's runs go to
_COMMON = (E.USAGE, E.INVALID_INPUT, E.NOT_FOUND, E.SERVICE_UNAVAILABLE, E.CONFIG)
DRIFT_EXIT_CODES = (
    exit_codes_help(E.OK, *_COMMON, said={E.OK: "no drift", E.INVALID_INPUT: "bad event or profile file"})
    .rstrip(".")
    .replace("0 no drift,", f"0 no drift, {DRIFT_EXIT} drift found,")
    + "."
)
REPORT_EXIT_CODES = exit_codes_help(E.OK, *_COMMON, said={E.INVALID_INPUT: "bad event file or weights"})
EVENTS = click.argument("events", nargs=-1, required=True, metavar="EVENTS...")
HTML = click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write an HTML report here.",
)
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON even on a terminal.")
ALPHA = click.option(
    "--alpha",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Level: false-alarm rate of the overall verdict.",
)


@click.group("monitor")
def monitor() -> None:
    """Compare live traffic with the training data: drift."""


@monitor.command("drift", epilog=DRIFT_EXIT_CODES)
@EVENTS
@click.option("--model", "model_uri", default=None, help="Use this version's profile for every event.")
@click.option(
    "--reference",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Use this profile JSON file for every event.",
)
@ALPHA
@HTML
@AS_JSON
@click.option("--no-log", is_flag=True, help="Do not record the result as an MLflow run.")
def drift(
    *,
    events: tuple[str, ...],
    model_uri: str | None,
    reference: Path | None,
    alpha: float,
    html_path: Path | None,
    as_json: bool,
    no_log: bool,
) -> int:
    """Check prediction events' inputs for drift from the training profile.

    EVENTS are JSON-lines files (other lines skipped, .gz allowed, - for
    stdin). By default each event is compared with the profile.json of the
    model version it names; --model or --reference picks one profile. Tests:
    KS / chi-squared for small samples, Wasserstein / Jensen-Shannon distance
    (threshold 0.1) for large ones.
    """
    from mlfactor.monitoring.drift import check_drift
    from mlfactor.monitoring.events import read_events
    from mlfactor.monitoring.profile import TrainingProfile, download_profile, read_profile
    from mlfactor.monitoring.report import DRIFT_HEADER, drift_json, drift_rows, write_drift_html

    store = _Store(start())
    if model_uri and reference:
        raise ValidationError(
            "options", ["--model and --reference both choose the profile; pass one of them"]
        )
    profile = read_profile(reference) if reference else None
    cache: dict[tuple[str, str], TrainingProfile] = {}

    def lookup(name: str, version: str) -> TrainingProfile:
        if (name, version) not in cache:
            cache[name, version] = download_profile(store.client, name, version)
        return cache[name, version]

    if model_uri:
        from mlfactor.registry import resolve_model

        resolved = resolve_model(store.client, model_uri)
        profile = download_profile(store.client, resolved.name, resolved.version)
    report = check_drift(read_events(events), profile=profile, lookup=lookup, alpha=alpha)
    if html_path:
        write_drift_html(report, html_path)
    if not no_log:
        _log_drift(store, report, html_path)
    if wants_json(as_json):
        emit_json(drift_json(report))
    else:
        click.echo(render_table(DRIFT_HEADER, drift_rows(report)))
        click.echo("drift found" if report.drift else "no drift")
    return DRIFT_EXIT if report.drift else 0


class _Store:
    """The tracking store, connected on first use only (a --reference run with --no-log needs none)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        """The connected client."""
        if self._client is None:
            from mlfactor.tracking import connect

            self._client = connect(self.settings)
        return self._client


def _log_drift(store: _Store, report: DriftReport, html_path: Path | None) -> None:
    """Record the drift job as an MLflow run: one metric per feature score, the verdict, the report."""
    import json
    import re

    from mlfactor import tags
    from mlfactor.monitoring.report import drift_json
    from mlfactor.tracking import ensure_experiment

    client = store.client
    experiment_id = ensure_experiment(client, MONITORING_EXPERIMENT, store.settings)
    run = client.create_run(
        experiment_id, tags={tags.RUN_NAME_TAG: "drift", tags.SOURCE_TAG: "monitor drift"}
    )
    run_id = run.info.run_id
    metrics = {"drift": float(report.drift), "skipped_events": float(report.skipped)}
    for group in report.groups:
        metrics["events"] = metrics.get("events", 0.0) + group.events
        for feature in group.features:
            if feature.count:
                key = re.sub(r"[^A-Za-z0-9_./ -]", "_", f"{feature.feature}.{feature.test}")
                metrics[key] = feature.score
                metrics[f"{key}.drifted"] = float(feature.drifted)
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.log_text(run_id, json.dumps(drift_json(report), indent=1), "drift.json")
    if html_path:
        client.log_artifact(run_id, str(html_path))
    client.set_terminated(run_id)


@click.group("experiment")
def experiment() -> None:
    """Analyse an A/B experiment between variants from its events."""


@experiment.command("report", epilog=REPORT_EXIT_CODES)
@EVENTS
@click.option(
    "--weights", default=None, help="Configured split, e.g. champion=50,challenger=50 [MLFACTOR_VARIANTS]."
)
@ALPHA
@click.option("--lower-is-better", is_flag=True, help="The metric is a cost (values): lower wins.")
@HTML
@AS_JSON
@click.option(
    "--promote", is_flag=True, help="Point the control's alias at the challenger's version when it is better."
)
def report(
    *,
    events: tuple[str, ...],
    weights: str | None,
    alpha: float,
    lower_is_better: bool,
    html_path: Path | None,
    as_json: bool,
    promote: bool,
) -> None:
    """Join prediction and feedback events by request id and decide between variants.

    Per variant: counts, a sample-ratio-mismatch check against the weights
    (alert at p < 0.001), accuracy (labels) or mean (values) with always-valid
    mSPRT intervals, so reading it daily keeps false positives at --alpha.
    Decision: continue, challenger_better or challenger_worse; the first
    variant of the weights is the control.
    """
    from mlfactor.monitoring.events import read_events
    from mlfactor.monitoring.experiment import analyse_experiment
    from mlfactor.monitoring.report import (
        EXPERIMENT_HEADER,
        experiment_json,
        experiment_rows,
        experiment_summary,
        write_experiment_html,
    )
    from mlfactor.syntax import parse_weights

    settings = start()
    try:
        split = parse_weights(weights) if weights is not None else settings.variants
    except ValueError as exc:
        raise ValidationError("--weights", [f"{exc}; expected e.g. champion=50,challenger=50"]) from exc
    result = analyse_experiment(
        read_events(events), weights=split, alpha=alpha, lower_is_better=lower_is_better
    )
    document = experiment_json(result)
    if promote:
        document["promotion"] = _promote(_Store(settings), result)
    if html_path:
        write_experiment_html(result, html_path)
    if wants_json(as_json):
        emit_json(document)
    else:
        click.echo(render_table(EXPERIMENT_HEADER, experiment_rows(result)))
        click.echo(experiment_summary(result))


def _promote(store: _Store, result: ExperimentReport) -> dict[str, object]:
    """Move the control's alias to the challenger's version when the report allows it; say what happened."""
    from mlfactor.aliases import promote_model

    if not result.promotable:
        why = (
            "sample-ratio mismatch"
            if result.ratio and result.ratio.mismatch
            else f"decision {result.decision}"
        )
        click.echo(f"not promoting: {why}", err=True)
        return {"promoted": False, "reason": why}
    challenger = next(v for v in result.variants if v.variant == result.challenger)
    alias = result.control if not result.control.isdigit() else "champion"
    reason = f"experiment report: {result.decision} ({result.metric}, level {result.alpha})"
    move = promote_model(
        store.client, challenger.model_name, challenger.model_version, alias=alias, reason=reason
    )
    click.echo(f"{move.model}@{move.alias} -> {move.to_version} ({reason})", err=True)
    return {"promoted": move.changed, "move": move.to_dict()}
