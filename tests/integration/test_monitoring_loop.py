"""The monitoring loop end to end: the service's own event stream in, decisions out.

Two versions serve 50/50 with prediction logging on; traffic has one feature
shifted and every answer gets its true label through ``POST /feedback``. The
JSON lines the service writes are the only input of ``mlfactor experiment
report`` and ``mlfactor monitor drift``, as a log shipper would hand them over.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT_DIR, register_demo_model, store_environment
from inprocess import captured_events, start_in_process
from sklearn.datasets import load_iris

from mlfactor.cli.common import run_cli
from mlfactor.cli.main import cli
from mlfactor.log import JsonFormatter

REQUESTS = 600
SHIFTED = "sepal_width"


class _StdoutFile(logging.Handler):
    """Writes the prediction stream to a file exactly as the service prints it on stdout."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.stream = path.open("w", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        """Append the record's JSON line."""
        self.stream.write(self.format(record) + "\n")
        self.stream.flush()


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Serve a weak champion (C=0.01) and a better challenger (C=1) 50/50; log traffic and feedback."""
    folder = tmp_path_factory.mktemp("monitoring-loop")
    env = store_environment(folder)
    register_demo_model(env, alias="champion", C=0.01)
    register_demo_model(env, alias="challenger", C=1.0)
    service = start_in_process(
        env, {"MLFACTOR_VARIANTS": "champion=50,challenger=50", "MLFACTOR_LOG_PREDICTIONS": "1"}
    )
    iris = load_iris(as_frame=True).frame.sample(REQUESTS, replace=True, random_state=7)
    shift = iris["sepal width (cm)"].std()
    path = folder / "events.jsonl"
    stream = logging.getLogger("mlfactor.predictions")
    writer = _StdoutFile(path)
    stream.addHandler(writer)
    try:
        feedback = []
        with service.client() as client, captured_events() as events:
            for i, (_, row) in enumerate(iris.iterrows()):
                record = {
                    "sepal_length": row["sepal length (cm)"],
                    "sepal_width": row["sepal width (cm)"] + shift,
                    "petal_length": row["petal length (cm)"],
                    "petal_width": row["petal width (cm)"],
                }
                answer = client.post(
                    "/predict", json={"records": [record]}, headers={"X-MLFACTOR-Key": f"user-{i}"}
                )
                assert answer.status_code == 200, answer.text
                feedback.append({"request_id": answer.json()["request_id"], "label": int(row["target"])})
            posted = client.post("/feedback", json=feedback)
            assert posted.status_code == 202, posted.text
            events.wait_for("prediction", where=lambda _: len(events.named("prediction")) >= REQUESTS)
    finally:
        stream.removeHandler(writer)
        writer.stream.close()
    return path, env


Command = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture
def mlfactor(
    events_file: tuple[Path, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Command:
    """Runs ``mlfactor ARGS EVENTS`` in this process on the loop's store: exit code and JSON result."""
    path, env = events_file
    for key in [k for k in os.environ if k.startswith(("MLFACTOR_", "MLFLOW_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(PROJECT_DIR)

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        code = run_cli(cli, [*args, "--json", str(path)])
        out = capsys.readouterr().out
        return code, json.loads(out.strip().splitlines()[-1])

    return run


def test_experiment_report_on_the_service_stream_finds_the_better_challenger(mlfactor: Command) -> None:
    """The served stream's predictions joined with their feedback give challenger_better, without SRM."""
    code, result = mlfactor("experiment", "report", "--weights", "champion=50,challenger=50")
    assert code == 0, result
    assert result["decision"] == "challenger_better", result
    assert result["sample_ratio"]["mismatch"] is False and result["promotable"], result["sample_ratio"]
    joined = {v["variant"]: v["joined"] for v in result["variants"]}
    assert sum(joined.values()) == REQUESTS and result["unmatched_feedback"] == 0, result


def test_drift_on_the_service_stream_flags_the_shifted_feature_alone(mlfactor: Command) -> None:
    """`monitor drift` on the served stream exits 10 and flags the shifted feature, no other."""
    code, result = mlfactor("monitor", "drift", "--no-log")
    assert code == 10, result
    assert result["groups"], result
    for group in result["groups"]:
        assert [f["feature"] for f in group["features"] if f["drifted"]] == [SHIFTED], group
