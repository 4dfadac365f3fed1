"""`mlfactor monitor drift` and `mlfactor experiment report` as a user runs them, on a real sqlite store."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import PROJECT_DIR, register_demo_model, store_environment
from sklearn.datasets import load_iris

from mlfactor.cli.common import run_cli
from mlfactor.cli.main import cli
from mlfactor.monitoring.profile import log_profile

MLFACTOR = str(Path(sys.executable).with_name("mlfactor"))
MODEL = "iris-classifier"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class Store:
    """A sqlite store: iris-classifier v1 (logged by mlfactor, with its profile), v2 (plain MLflow)."""

    env: dict[str, str]
    folder: Path
    profile: Path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """v1 through mlfactor (which logs the profile), v2 by plain MLflow (none); v1 profile as a file."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from mlfactor.monitoring.profile import download_profile
    from mlfactor.registry import set_alias
    from mlfactor.tracking import connect

    folder = tmp_path_factory.mktemp("monitor")
    first = register_demo_model(store_environment(folder))
    client = connect(first.settings)
    frame = load_iris(as_frame=True).frame
    features = frame.drop(columns=["target"])
    features.columns = FEATURES
    mlflow.set_tracking_uri(first.settings.tracking_uri)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            LogisticRegression(C=0.5, max_iter=500).fit(features, frame["target"]),
            name="model",
            registered_model_name=MODEL,
            input_example=features.head(2),
        )
    set_alias(client, MODEL, "challenger", "2")
    profile = download_profile(client, MODEL, first.version)
    assert profile.to_json() == log_profile(client, first.run_id, features).to_json()
    path = folder / "profile.json"
    path.write_text(profile.to_json())
    yield Store(first.env, folder, path)


class Runner:
    """Runs mlfactor in this process against the module's store and reads what it printed."""

    def __init__(
        self, store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for key in [k for k in os.environ if k.startswith(("MLFACTOR_", "MLFLOW_"))]:
            monkeypatch.delenv(key)
        for key, value in store.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(PROJECT_DIR)
        self.capsys = capsys
        self.err = ""
        self.out = ""

    def __call__(self, *args: str) -> int:
        """The exit code of ``mlfactor ARGS``; stdout and stderr kept in ``out`` and ``err``."""
        code = run_cli(cli, list(args))
        captured = self.capsys.readouterr()
        self.out, self.err = captured.out, captured.err
        return code

    def json(self) -> Any:
        """The command's JSON result: the last stdout line (log events come before it)."""
        return json.loads(self.out.strip().splitlines()[-1])


@pytest.fixture
def mlfactor(store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Runner:
    """The in-process command runner on the module's store."""
    return Runner(store, monkeypatch, capsys)


def _predictions(rng: np.random.Generator, n: int, *, shift: float = 0.0) -> list[str]:
    """Prediction events on rows drawn from iris, petal_length moved by ``shift`` standard deviations."""
    frame = load_iris(as_frame=True).frame.drop(columns=["target"])
    frame.columns = FEATURES
    rows = frame.sample(n, replace=True, random_state=rng).reset_index(drop=True)
    rows["petal_length"] += shift * frame["petal_length"].std()
    lines = []
    for i, row in enumerate(rows.to_dict("records")):
        event = {"event": "prediction", "request_id": f"r{i}", "variant": "champion", "inputs": [row]}
        lines.append(json.dumps({**event, "model_name": MODEL, "model_version": "1", "outputs": [1]}))
        if i % 50 == 0:
            lines.append('{"event": "access", "status": 200}')
    return lines


def _write(path: Path, lines: list[str]) -> str:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return str(path)


def test_drift_exits_0_on_clean_traffic_and_10_with_a_plot_on_shifted(
    store: Store, tmp_path: Path, mlfactor: Runner
) -> None:
    """Clean events exit 0; a shifted feature exits 10, alone flagged, with its plot in the HTML report."""
    rng = np.random.default_rng(1)
    clean = _write(tmp_path / "clean.jsonl", _predictions(rng, 500))
    args = ["monitor", "drift", "--reference", str(store.profile), "--no-log", "--json"]
    assert mlfactor(*args, clean) == 0
    assert mlfactor.json()["drift"] is False
    shifted = _write(tmp_path / "shifted.jsonl", _predictions(rng, 500, shift=1.0))
    html = tmp_path / "drift.html"
    assert mlfactor(*args, "--html", str(html), shifted) == 10
    features = mlfactor.json()["groups"][0]["features"]
    assert [f["feature"] for f in features if f["drifted"]] == ["petal_length"]
    page = html.read_text()
    assert page.count("<img") == 1 and "petal_length" in page


def test_drift_reads_each_versions_profile_and_logs_a_run(
    store: Store, tmp_path: Path, mlfactor: Runner
) -> None:
    """By default the profile comes from the version the events name; the verdict is logged to MLflow."""
    from mlflow import MlflowClient

    events = _write(tmp_path / "e.jsonl", _predictions(np.random.default_rng(2), 300, shift=1.5))
    assert mlfactor("monitor", "drift", "--json", events) == 10
    assert mlfactor.json()["groups"][0]["model"] == f"models:/{MODEL}/1"
    client = MlflowClient(tracking_uri=store.env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("monitoring")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["drift"] == 1.0 and run.data.metrics["petal_length.ks.drifted"] == 1.0
    assert mlfactor("monitor", "drift", "--model", f"models:/{MODEL}@champion", "--no-log", events) == 10


@pytest.mark.parametrize(
    ("make", "code", "says"),
    [
        (
            lambda d: ["--reference", _write(d / "p.json", ["{}"]), _write(d / "e.jsonl", [])],
            65,
            "not a training",
        ),
        (lambda d: ["--reference", str(d / "none.json"), _write(d / "e.jsonl", [])], 66, "none.json"),
        (lambda d: [str(d / "missing.jsonl")], 66, "missing.jsonl"),
        (
            lambda d: [_write(d / "e.jsonl", ['{"event": "prediction", "schema_version": 9}'])],
            65,
            "upgrade mlfactor",
        ),
        (
            lambda d: [_write(d / "e.jsonl", ['{"event": "prediction", "inputs": [{"x": 1}]}'])],
            65,
            "--reference",
        ),
        (lambda d: ["--model", f"models:/{MODEL}/2", _write(d / "e.jsonl", [])], 66, "profile.json"),
    ],
    ids=[
        "not-a-profile",
        "no-profile-file",
        "no-event-file",
        "newer-schema",
        "no-version",
        "version-without-profile",
    ],
)
def test_drift_bad_input_exits_with_a_clear_message(
    tmp_path: Path, mlfactor: Runner, make: Callable[[Path], list[str]], code: int, says: str
) -> None:
    """Bad profiles, missing files, newer schemas and unplaceable events exit 65/66 naming the problem."""
    assert mlfactor("monitor", "drift", "--no-log", *make(tmp_path)) == code
    assert says in mlfactor.err and "Traceback" not in mlfactor.err


def test_drift_reads_gzip_from_stdin_as_a_process(store: Store) -> None:
    """`mlfactor monitor drift -` reads a gzip stream piped on stdin and exits 10 on a shifted feature."""
    data = gzip.compress(("\n".join(_predictions(np.random.default_rng(3), 500, shift=1.0)) + "\n").encode())
    done = subprocess.run(
        [MLFACTOR, "monitor", "drift", "--reference", str(store.profile), "--no-log", "--json", "-"],
        input=data,
        env=store.env,
        cwd=PROJECT_DIR,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 10, done.stderr
    assert json.loads(done.stdout.decode().strip().splitlines()[-1])["drift"] is True


def _experiment(rng: np.random.Generator, arms: dict[str, tuple[str, float, int]]) -> list[str]:
    """Prediction and feedback events per arm: (version, accuracy, requests)."""
    lines = []
    for variant, (version, accuracy, n) in arms.items():
        for i in range(n):
            served = {
                "event": "prediction",
                "request_id": f"{variant}-{i}",
                "variant": variant,
                "outputs": [2],
            }
            lines.append(json.dumps({**served, "model_name": MODEL, "model_version": version}))
            label = 2 if rng.random() < accuracy else 0
            lines.append(json.dumps({"event": "feedback", "request_id": f"{variant}-{i}", "label": label}))
    return lines


@pytest.mark.parametrize(
    ("counts", "champion_after"),
    [((2000, 2000), "2"), ((400, 3600), "1")],
    ids=["significant-promotes", "sample-ratio-mismatch-does-not"],
)
def test_experiment_report_decides_and_promotes_only_without_srm(
    store: Store, tmp_path: Path, mlfactor: Runner, counts: tuple[int, int], champion_after: str
) -> None:
    """A better challenger is promoted to champion via the recorded path, unless the sample ratio is off."""
    from mlflow import MlflowClient

    from mlfactor.aliases import promote_model
    from mlfactor.registry import alias_version

    client = MlflowClient(tracking_uri=store.env["MLFLOW_TRACKING_URI"])
    promote_model(client, MODEL, "1", alias="champion", reason="test starts from v1")
    arms = {"champion": ("1", 0.75, counts[0]), "challenger": ("2", 0.85, counts[1])}
    events = _write(tmp_path / "ab.jsonl.gz", _experiment(np.random.default_rng(4), arms))
    html = tmp_path / "ab.html"
    args = ["experiment", "report", "--weights", "champion=50,challenger=50", "--promote", "--json"]
    assert mlfactor(*args, "--html", str(html), events) == 0
    result = mlfactor.json()
    assert result["decision"] == "challenger_better"
    assert alias_version(client, MODEL, "champion") == champion_after
    assert result["promotion"]["promoted"] is (champion_after == "2")
    assert "challenger_better" in html.read_text()


def test_experiment_report_bad_weights_exit_65(tmp_path: Path, mlfactor: Runner) -> None:
    """Malformed --weights exit 65 with the syntax expected."""
    events = _write(tmp_path / "e.jsonl", [])
    assert mlfactor("experiment", "report", "--weights", "champion=x", events) == 65
    assert "champion=50,challenger=50" in mlfactor.err
