"""Dev/prod parity: the same commands on an sqlite store and on an mlflow server backed by PostgreSQL.

Every test runs once per backend; only the environment differs (``MLFLOW_TRACKING_URI``,
see :func:`backends.client_environment`). The workflow is the one a user follows:
``mlfactor run`` the demo pipeline, move aliases with ``promote``/``rollback``/``history``,
``mlfactor serve`` and predict, ``mlfactor admin batch-score`` the same rows.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from backends import client_environment, explain, json_lines, run_mlfactor
from conftest import register_demo_model, store_environment
from service_harness import Server, start_service

from mlfactor.settings import load_settings
from mlfactor.tracking import connect

pytestmark = pytest.mark.slow

MODEL = "iris-classifier"
ROWS = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.2, "sepal_width": 2.9, "petal_length": 4.3, "petal_width": 1.3},
    {"sepal_length": 7.7, "sepal_width": 3.0, "petal_length": 6.1, "petal_width": 2.3},
    {"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8},
]
# What each backend produced, compared across backends by the last test.
OUTCOMES: dict[str, dict[str, Any]] = {}


@dataclass
class Backend:
    """One tracking backend: its name, the environment reaching it and a scratch folder."""

    name: str
    env: dict[str, str]
    folder: Path
    outcome: dict[str, Any] = field(default_factory=dict)

    def client(self) -> Any:
        """Return an MlflowClient on this backend, through mlfactor's own connect()."""
        return connect(load_settings(self.env))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """Yield an empty sqlite store, or the session's PostgreSQL-backed server (skipped without it)."""
    folder = tmp_path_factory.mktemp(f"parity-{request.param}")
    env = store_environment(folder)
    if request.param == "postgres":
        server = request.getfixturevalue("tracking_server")
        env = client_environment(env, server.url)
    result = Backend(request.param, env, folder)
    OUTCOMES[request.param] = result.outcome
    return result


@pytest.fixture(scope="module")
def pipeline_run(backend: Backend) -> dict[str, Any]:
    """Run the demo pipeline once on the backend; return its final summary line."""
    done = run_mlfactor(
        backend.env, "run", "pipelines/train.yaml", "--output-dir", str(backend.folder / "runs")
    )
    assert done.returncode == 0, explain(done)
    summaries = [line for line in json_lines(done.stdout) if line.get("status") and "steps" in line]
    assert summaries, explain(done)
    return summaries[-1]


@pytest.fixture(scope="module")
def service(backend: Backend, pipeline_run: dict[str, Any]) -> Iterator[Server]:
    """`mlfactor serve` on a free port, loading the champion from the backend."""
    server = start_service(backend.env, backend.folder / "service", command="mlfactor")
    try:
        yield server
    finally:
        server.stop()


def test_pipeline_registers_and_promotes_a_champion(backend: Backend, pipeline_run: dict[str, Any]) -> None:
    """`mlfactor run pipelines/train.yaml` finishes and leaves version 1 as champion in the registry."""
    assert pipeline_run["status"] == "FINISHED"
    client = backend.client()
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "1"
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(champion.run_id)}
    assert any(path.endswith(".ipynb") or path == "notebook" for path in artifacts) or artifacts
    if backend.name == "postgres":
        # Artifacts went through the server (--serve-artifacts), not to a local folder of the client.
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    backend.outcome["pipeline_champion"] = str(champion.version)


def test_promote_rollback_and_history_move_the_alias(backend: Backend, pipeline_run: dict[str, Any]) -> None:
    """Promote moves champion to a new version, history lists the move, rollback puts it back."""
    second = register_demo_model(backend.env, name=MODEL, alias="challenger", C=0.5)
    assert second.version == "2"
    promoted = run_mlfactor(backend.env, "promote", MODEL, "2", "--reason", "parity test")
    assert promoted.returncode == 0, explain(promoted)
    assert str(backend.client().get_model_version_by_alias(MODEL, "champion").version) == "2"

    rolled = run_mlfactor(backend.env, "rollback", MODEL)
    assert rolled.returncode == 0, explain(rolled)
    assert str(backend.client().get_model_version_by_alias(MODEL, "champion").version) == "1"

    listed = run_mlfactor(backend.env, "history", MODEL, "--alias", "champion", "--json")
    assert listed.returncode == 0, explain(listed)
    moves = next(line for line in json_lines(listed.stdout) if isinstance(line, list))
    chain = [(m["from_version"], m["to_version"]) for m in moves]
    assert chain == [("2", "1"), ("1", "2"), (None, "1")], moves  # newest first
    assert moves[1]["reason"] == "parity test"
    backend.outcome["history"] = chain


def test_service_answers_with_the_champion(backend: Backend, service: Server) -> None:
    """`mlfactor serve` loads champion (version 1) from the backend; predicts records and MLflow payloads."""
    answer = service.post_json("/predict", {"records": ROWS})
    assert answer.status == 200, answer.body
    body = answer.json()
    assert len(body["predictions"]) == len(ROWS)
    assert body["model"] == {"name": MODEL, "version": "1"}, body
    columns = list(ROWS[0])
    split = {"dataframe_split": {"columns": columns, "data": [[row[c] for c in columns] for row in ROWS]}}
    mlflow_answer = service.post_json("/invocations", split)
    assert mlflow_answer.status == 200, mlflow_answer.body
    assert mlflow_answer.json()["predictions"] == body["predictions"]
    backend.outcome["service_predictions"] = body["predictions"]


def test_batch_scoring_gives_the_service_predictions(backend: Backend, service: Server) -> None:
    """`mlfactor admin batch-score` on the same rows writes the predictions the service returns."""
    source = backend.folder / "rows.csv"
    with source.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    target = backend.folder / "scored.csv"
    done = run_mlfactor(backend.env, "admin", "batch-score", "--input", str(source), "--output", str(target))
    assert done.returncode == 0, explain(done)
    with target.open(newline="") as handle:
        scored = [int(float(row["prediction"])) for row in csv.DictReader(handle)]
    served = service.post_json("/predict", {"records": ROWS}).json()["predictions"]
    assert scored == [int(p) for p in served]
    backend.outcome["batch_predictions"] = scored


def test_both_backends_tell_the_same_story() -> None:
    """Registry moves and predictions are identical on sqlite and on the PostgreSQL-backed server."""
    if set(OUTCOMES) != {"sqlite", "postgres"} or not all(len(o) == 4 for o in OUTCOMES.values()):
        pytest.skip("needs both backends to have run every parity test above")
    assert OUTCOMES["sqlite"] == OUTCOMES["postgres"]
