"""Rebuild a registered version from its lineage and compare the result with the original.

:func:`reproduce_version` reads the version's lineage, checks the recorded
commit out in a temporary git worktree, verifies the pipeline file and the
notebook there are the very files the run used (same sha256), and re-runs the
pipeline in-process with the recorded parameters (those that referenced
another step's output are resolved afresh) into a separate experiment. The
re-run registers into a throwaway registry, so it never adds a version to the
original model nor moves one of its aliases; its kernels import the
worktree's ``src/`` first, so the notebook runs with the code of that commit.
Then it compares metrics and parameters of the version's run, predictions on
the version's input example, and the installed packages, and logs the report
as ``reproduce/report.json`` of the re-run, tagged on both pipeline runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfactor import tags
from mlfactor.log import event, get_logger
from mlfactor.pipeline.parameters import has_reference
from mlfactor.reproduce.compare import (
    Check,
    compare_metrics,
    compare_packages,
    compare_parameters,
    compare_predictions,
)
from mlfactor.reproduce.record import PACKAGES_ARTIFACT, NotReproducibleError, Recorded, read_record
from mlfactor.reproduce.report import Report
from mlfactor.reproduce.worktree import checked_out
from mlfactor.settings import Settings, load_settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from mlfactor.pipeline.progress import Progress
    from mlfactor.pipeline.runner import PipelineResult

logger = get_logger(__name__)
REPORT_ARTIFACT = "reproduce/report.json"
_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
DEFAULT_RTOL = 1e-6


def model_uri(target: str) -> str:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` from ``NAME@ALIAS``, ``NAME/VERSION`` or a URI."""
    return target if target.startswith("models:/") else f"models:/{target}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _verify_files(recorded: Recorded, project: Path) -> Path:
    """The pipeline file in the worktree; NotReproducibleError when it or the notebook is not the one used."""
    pipeline = project / recorded.pipeline_path
    for label, path, expected in (
        ("pipeline file", pipeline, recorded.pipeline_sha256),
        ("notebook", project / recorded.notebook, recorded.notebook_sha256),
    ):
        if expected and _sha256(path) != expected:
            state = "differs from" if path.is_file() else "is missing in"
            raise NotReproducibleError(
                recorded.target,
                f"the {label} {path.relative_to(project)} at commit {recorded.commit[:12]} {state} the one "
                "the run used (sha256 mismatch): it was changed without a commit.",
            )
    return pipeline


def _rerun_settings(settings: Settings, project: Path, registry: Path) -> Settings:
    """Settings of the re-run: the same store and artifact root, a throwaway registry, the worktree's code."""
    environ = dict(settings.environ)
    environ.update(
        {
            "MLFACTOR_PROJECT_DIR": str(project),
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "MLFACTOR_ARTIFACT_ROOT": settings.artifact_root,
            "MLFLOW_REGISTRY_URI": f"sqlite:///{registry}",
        }
    )
    if (project / "src").is_dir():
        environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(project / "src"), settings.environ.get("PYTHONPATH", "")) if p
        )
    return load_settings(environ)


def _overrides(recorded: Recorded) -> list[str]:
    """``-p STEP.NAME=VALUE`` for every recorded parameter but those referencing another step's output."""
    return [
        f"{step}.{name}={json.dumps(value)}"
        for step, values in recorded.parameters.items()
        for name, value in values.items()
        if not has_reference(value)
    ]


def _predict(model_source: str, tracking_uri: str, example_from: str | None = None) -> tuple[Any, Any]:
    """Predictions of the model at ``model_source`` on the input example saved with ``example_from``."""
    import mlflow.artifacts
    import mlflow.pyfunc
    from mlflow.models import Model

    os.environ[_PROGRESS_BAR] = "false"  # MLflow's download bars would garble the terminal and stderr
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_source, tracking_uri=tracking_uri)
    example_dir = local
    if example_from is not None:
        example_dir = mlflow.artifacts.download_artifacts(
            artifact_uri=example_from, tracking_uri=tracking_uri
        )
    example = Model.load(example_dir).load_input_example(example_dir)
    return example, mlflow.pyfunc.load_model(local).predict(example)


def _reproduced_version(client: MlflowClient, recorded: Recorded, pipeline_run_id: str) -> Any | None:
    for mv in client.search_model_versions(f"name = '{recorded.model}'"):
        mv_tags = mv.tags or {}
        if (
            mv_tags.get(tags.PIPELINE_RUN_TAG) == pipeline_run_id
            and mv_tags.get(tags.STEP_TAG) == recorded.step
        ):
            return mv
    return None


def _compare(
    report: Report, recorded: Recorded, result: PipelineResult, settings: Settings, registry: Path
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)
    rerun = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=f"sqlite:///{registry}")
    version = _reproduced_version(rerun, recorded, result.run_id)
    if version is None:
        report.checks.append(Check("run", "registered version", recorded.version, None, False))
        return
    report.reproduced_version = str(version.version)
    report.reproduced_run_id = version.run_id
    new_run = client.get_run(version.run_id)
    references = {n for n, v in recorded.parameters.get(recorded.step, {}).items() if has_reference(v)}
    report.checks += compare_metrics(recorded.metrics, new_run.data.metrics, report.rtol)
    original = client.get_model_version(recorded.model, recorded.version)
    _, before = _predict(str(original.source), settings.tracking_uri)
    _, after = _predict(str(version.source), settings.tracking_uri, example_from=str(original.source))
    report.checks.append(compare_predictions(before, after, report.rtol))
    report.checks += compare_parameters(recorded.params, new_run.data.params, skip=references)
    with tempfile.TemporaryDirectory(prefix="mlfactor-packages-") as folder:
        packages = (
            Path(client.download_artifacts(result.run_id, PACKAGES_ARTIFACT, folder)).read_text().split()
        )
    report.checks += compare_packages(recorded.packages, packages)


def _link(client: MlflowClient, report: Report) -> None:
    """Log the report on the re-run and tag both pipeline runs with where it is."""
    if report.reproduced_pipeline_run_id is None:
        return
    client.log_dict(report.reproduced_pipeline_run_id, report.to_dict(), REPORT_ARTIFACT)
    link = f"runs:/{report.reproduced_pipeline_run_id}/{REPORT_ARTIFACT}"
    client.set_tag(report.reproduced_pipeline_run_id, tags.REPRODUCE_REPORT_TAG, link)
    client.set_tag(report.original_pipeline_run_id, tags.REPRODUCE_REPORT_TAG, link)


def reproduce_version(
    settings: Settings,
    target: str,
    *,
    rtol: float = DEFAULT_RTOL,
    experiment: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Rebuild ``target`` (``NAME@ALIAS``, ``NAME/VERSION``) and compare it; NotReproducibleError if not."""
    from mlfactor.pipeline.plan import make_plan
    from mlfactor.pipeline.runner import run_pipeline
    from mlfactor.registry import resolve_model
    from mlfactor.tracking import connect

    client = connect(settings)
    recorded = read_record(client, resolve_model(client, model_uri(target)))
    report = Report(
        model=recorded.model,
        version=recorded.version,
        alias=recorded.alias,
        commit=recorded.commit,
        rtol=rtol,
        original_run_id=recorded.step_run_id,
        original_pipeline_run_id=recorded.pipeline_run_id,
        experiment=experiment or f"{recorded.experiment}-reproduce",
    )
    event(logger, "reproduce_started", model=recorded.model, version=recorded.version, commit=recorded.commit)
    with checked_out(settings.project_dir, recorded.commit, recorded.target) as checkout:
        pipeline = _verify_files(recorded, checkout.project)
        with tempfile.TemporaryDirectory(prefix="mlfactor-reproduce-run-") as scratch:
            registry = Path(scratch) / "registry.db"
            rerun = _rerun_settings(settings, checkout.project, registry)
            plan = make_plan(pipeline, _overrides(recorded), project_dir=checkout.project)
            try:
                result = run_pipeline(
                    plan,
                    rerun,
                    output_dir=Path(scratch) / "output",
                    experiment=report.experiment,
                    progress=progress,
                    tags={tags.REPRODUCE_OF_TAG: recorded.pipeline_run_id},
                )
            finally:
                connect(settings, check=False)  # the re-run pointed MLflow at the throwaway registry
            report.reproduced_pipeline_run_id = result.run_id
            if result.error is not None:
                report.error = f"the re-run failed: {result.error}"
            else:
                _compare(report, recorded, result, settings, registry)
    _link(client, report)
    event(
        logger, "reproduce_finished", status=report.status, differences=len(report.to_dict()["differences"])
    )
    return report
