"""Secret safety: canaries used by notebooks never reach notebooks, metadata, artifacts, the store or logs."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import store_environment
from mlflow.tracking import MlflowClient
from pipeline_harness import Finished, fixture, run_mlfactor, write_pipeline

pytestmark = pytest.mark.slow


@dataclass
class CanaryRun:
    """A pipeline run whose notebook printed and logged a secret from its environment."""

    result: Finished
    canary: str
    folder: Path


@pytest.fixture(scope="module")
def canary_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CanaryRun]:
    """Run uses-secret-from-env.ipynb with DEMO_API_TOKEN set to a random canary."""
    folder = tmp_path_factory.mktemp("canary")
    canary = "canary-" + secrets.token_hex(16)
    env = {**store_environment(folder), "DEMO_API_TOKEN": canary}
    path = write_pipeline(
        folder,
        "canary",
        [
            {
                "name": "use",
                "notebook": fixture("uses-secret-from-env.ipynb"),
                "parameters": {"greeting": "hi"},
            }
        ],
    )
    result = run_mlfactor(["run", str(path), "--output-dir", str(folder / "output")], env, folder / "proc")
    yield CanaryRun(result, canary, folder)


def test_the_notebook_really_used_the_secret(canary_run: CanaryRun) -> None:
    """The step succeeded and recorded a hash of the secret it read from its environment."""
    assert canary_run.result.returncode == 0, canary_run.result.stderr
    outputs = canary_run.result.summary["outputs"]["use"]
    assert outputs["fingerprint"] == hashlib.sha256(canary_run.canary.encode()).hexdigest()


def test_canary_never_leaks(canary_run: CanaryRun) -> None:
    """Not in stdout/stderr, the kept notebook and HTML, their metadata, MLflow artifacts or the store."""
    assert canary_run.result.returncode == 0
    assert canary_run.canary not in canary_run.result.stdout
    assert canary_run.canary not in canary_run.result.stderr
    files = [p for p in canary_run.folder.rglob("*") if p.is_file()]
    kept = [p for p in files if p.suffix in (".ipynb", ".html")]
    assert {p.suffix for p in kept} == {".ipynb", ".html"}
    assert len([p for p in kept if "artifacts" in p.parts]) == 2
    leaking = [p for p in files if canary_run.canary.encode() in p.read_bytes()]
    assert leaking == []
    notebook = next(p for p in kept if p.suffix == ".ipynb")
    assert "hi ***" in notebook.read_text()


def test_secret_parameter_is_refused_before_any_kernel(tmp_path: Path) -> None:
    """A secret-looking parameter exits 65, says to use the environment, and starts nothing."""
    env = store_environment(tmp_path)
    path = write_pipeline(tmp_path, "p", [{"name": "use", "notebook": fixture("records-output.ipynb")}])
    result = run_mlfactor(
        ["run", str(path), "-p", "use.api_token=abc123"], env, tmp_path / "proc", timeout=120
    )
    assert result.returncode == 65
    assert "looks like a secret" in result.stderr and "environment" in result.stderr
    assert not result.named("step_started")
    assert not (tmp_path / "mlflow.db").exists()


@dataclass
class LeakRun:
    """A pipeline whose first notebook sends two canaries every way out of a kernel; the second fails."""

    result: Finished
    canaries: tuple[str, str]
    folder: Path
    client: MlflowClient


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeakRun]:
    """Run leaks-secrets-everywhere.ipynb, then fails-on-cell-2.ipynb with both canaries as its parameter."""
    folder = tmp_path_factory.mktemp("leak")
    read, named = "canary-" + secrets.token_hex(12), "canary-" + secrets.token_hex(12)
    env = {**store_environment(folder), "DEMO_GREETING": read, "WAREHOUSE_DSN": named}
    path = write_pipeline(
        folder,
        "leak",
        [
            {"name": "leak", "notebook": fixture("leaks-secrets-everywhere.ipynb")},
            {
                "name": "fail",
                "notebook": fixture("fails-on-cell-2.ipynb"),
                "parameters": {"value": "${steps.leak.outputs.greeting} ${steps.leak.outputs.dsn}"},
            },
        ],
    )
    result = run_mlfactor(["run", str(path), "--output-dir", str(folder / "output")], env, folder / "proc")
    uri = env["MLFLOW_TRACKING_URI"]
    yield LeakRun(result, (read, named), folder, MlflowClient(tracking_uri=uri, registry_uri=uri))


def _store_text(client: MlflowClient, into: Path) -> str:
    """Every run's params, metric names, tags and downloaded artifacts, as one text."""
    parts = []
    experiments = client.search_experiments()
    for run in client.search_runs([e.experiment_id for e in experiments]):
        parts += [run.info.run_name or "", repr(run.data.params), repr(run.data.tags), repr(run.data.metrics)]
        local = Path(client.download_artifacts(run.info.run_id, "", str(into / run.info.run_id)))
        parts += [p.read_text(errors="replace") for p in local.rglob("*") if p.is_file()]
    return "\n".join(parts)


def test_secrets_are_masked_on_every_way_out(leak_run: LeakRun) -> None:
    """Summary, stderr, events, tags, params, metric names, summary.json, notebooks, HTML, fd output."""
    result = leak_run.result
    assert result.returncode == 1, result.stderr
    assert "ValueError: boom: value was *** ***" in result.stderr
    summary = result.summary
    assert summary["outputs"]["leak"] == {"greeting": "***", "dsn": "***"}
    assert summary["error"].endswith("value was *** ***")
    leak = leak_run.client.get_run(summary["steps"]["leak"]["run_id"])
    assert leak.data.params["greeting"] == "***" and leak.data.tags["dsn"] == "***"
    assert "p_masked" in leak.data.params and "m_masked" in leak.data.metrics
    assert leak.data.tags["mlfactor.output.dsn"] == "***"
    fail = leak_run.client.get_run(summary["steps"]["fail"]["run_id"])
    assert fail.data.params["value"] == "*** ***" and fail.data.tags["mlfactor.error"].endswith("*** ***")
    kernel_log = Path(summary["steps"]["leak"]["notebook"]).with_suffix(".kernel.log").read_text()
    assert {"fd1 ***", "fd2 ***", "C ***", "child ***"} <= set(kernel_log.splitlines())
    assert "fd1" not in result.stderr and "fd2" not in result.stderr, "kernel output stays off the terminal"
    stored = _store_text(leak_run.client, leak_run.folder / "downloaded")
    assert "summary.json" in {a.path for a in leak_run.client.list_artifacts(summary["run_id"])}
    for canary in leak_run.canaries:
        assert canary not in result.stdout and canary not in result.stderr
        assert canary not in stored
        leaking = [p for p in leak_run.folder.rglob("*") if p.is_file() and canary.encode() in p.read_bytes()]
        assert leaking == []
