"""gc on a real store: a dry run deletes nothing; --apply removes only what nothing references."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pytest
from conftest import register_demo_model, store_environment
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlfactor.admin.gc import plan_gc
from mlfactor.aliases import promote_model
from mlfactor.release.records import record_release
from mlfactor.settings import Settings, load_settings
from mlfactor.tracking import connect, ensure_experiment

pytestmark = pytest.mark.slow
MLFACTOR = str(Path(sys.executable).with_name("mlfactor"))
NAME = "iris-classifier"


@dataclass
class Garden:
    """A store with six versions, aliases, a release, a model-less run and a running run."""

    env: dict[str, str]
    settings: Settings
    client: MlflowClient
    runs: dict[str, str]  # version -> run id
    plain_run: str
    running_run: str


def _artifact_dir(client: MlflowClient, run_id: str) -> Path:
    return Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://"))


@pytest.fixture(scope="module")
def garden(tmp_path_factory: pytest.TempPathFactory) -> Garden:
    """Versions 1-6: 1 a rollback target, 2 released, 3 champion, 4-5 unreferenced, 6 the newest."""
    folder = tmp_path_factory.mktemp("gc")
    env = store_environment(folder)
    runs = {}
    for _ in range(6):
        model = register_demo_model(env, alias="trained")
        runs[model.version] = model.run_id
    settings = load_settings(env)
    client = connect(settings)
    client.delete_registered_model_alias(NAME, "trained")
    promote_model(client, NAME, "1")
    promote_model(client, NAME, "3")  # version 1 stays reachable by rollback
    info = {
        "bento_tag": "mlfactor:v2-test",
        "app": "mlfactor",
        "registered_model": NAME,
        "model_version": "2",
        "model_tag": f"iris-classifier:v2-{runs['2'][:12]}",
    }
    record_release(client, settings, info, settings)
    experiment = ensure_experiment(client, "tests", settings)
    with mlflow.start_run(experiment_id=experiment) as plain:
        mlflow.log_text("scratch", "notes.txt")
    running = client.create_run(experiment).info.run_id
    return Garden(env, settings, client, runs, plain.info.run_id, running)


def test_dry_run_lists_candidates_and_deletes_nothing(garden: Garden) -> None:
    """Without --apply gc lists the unreferenced old versions and runs, with reasons, and changes nothing."""
    plan = plan_gc(garden.client, garden.settings, older_than=dt.timedelta(0), keep_last=1)
    assert sorted(v.version for v in plan.delete_versions) == ["4", "5"]
    kept = {v.version: v.reason for v in plan.kept_versions}
    assert kept["1"].startswith("rollback target")
    assert kept["2"].startswith("release rel-")
    assert kept["3"] == "alias champion"
    assert kept["6"] == "one of the last 1"
    doomed = {r.run_id for r in plan.delete_runs}
    assert doomed == {garden.runs["4"], garden.runs["5"], garden.plain_run}
    assert len(plan.delete_logged_models) == 2
    assert plan.to_dict()["dry_run"] is True
    for version in "123456":
        garden.client.get_model_version(NAME, version)
    assert _artifact_dir(garden.client, garden.plain_run).joinpath("notes.txt").is_file()


def test_apply_deletes_only_unreferenced_things(garden: Garden) -> None:
    """--apply (CLI) removes versions 4-5, their runs and artifacts; everything referenced still loads."""
    plain_dir = _artifact_dir(garden.client, garden.plain_run)
    done = subprocess.run(
        [MLFACTOR, "admin", "gc", "--older-than", "0s", "--keep-last", "1", "--apply"],
        env=garden.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["dry_run"], report["purged"]) == (False, True)
    versions = sorted(str(v.version) for v in garden.client.search_model_versions(f"name='{NAME}'"))
    assert versions == ["1", "2", "3", "6"]
    for gone in (garden.runs["4"], garden.runs["5"], garden.plain_run):
        with pytest.raises(MlflowException):
            garden.client.get_run(gone)
    assert not plain_dir.exists()
    assert len(report["delete_logged_models"]) == 2
    for model_id in report["delete_logged_models"]:
        with pytest.raises(MlflowException):
            garden.client.get_logged_model(model_id)
    assert garden.client.get_run(garden.running_run).info.status == "RUNNING"
    mlflow.set_tracking_uri(garden.settings.tracking_uri)
    for uri in (f"models:/{NAME}@champion", f"models:/{NAME}/1", f"models:/{NAME}/2"):
        assert mlflow.pyfunc.load_model(uri) is not None
    again = plan_gc(garden.client, garden.settings, older_than=dt.timedelta(0), keep_last=1)
    assert again.delete_versions == [] and again.delete_runs == []
