"""Secret safety: a canary secret used by a notebook never reaches notebooks, metadata, artifacts or logs."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import store_environment
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
