"""Build and release on a real store: the Bento carries its model, records are shared, it serves alone.

One `bentoml build` for the module (project bentofile.yaml), one `bentoml serve` of the built Bento.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bentoml
import mlflow.pyfunc
import pandas as pd
import pytest
from conftest import PROJECT_DIR, RegisteredModel, register_demo_model, store_environment
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from service_harness import FEATURES, Server, free_port
from sklearn.datasets import load_iris

from mlfactor.admin.batch_score import batch_score
from mlfactor.bento_store import bentoml_stores
from mlfactor.errors import ConfigError, NotFoundError
from mlfactor.release import BuildResult, build_bento, create_release
from mlfactor.serving.launcher import serve_environment
from mlfactor.settings import Settings, load_settings
from mlfactor.tracking import connect

pytestmark = pytest.mark.slow
MLFACTOR = str(Path(sys.executable).with_name("mlfactor"))
BENTOML = str(Path(sys.executable).with_name("bentoml"))


@dataclass
class Built:
    """A store with a registered champion, and the Bento built from it."""

    model: RegisteredModel
    settings: Settings
    client: MlflowClient
    build: BuildResult
    folder: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Register iris-classifier@champion in a store of its own and build the Bento once.

    The build runs on a snapshot of the project (what the Bento includes), so edits made to the
    working tree while the module runs cannot change the inputs between two builds.
    """
    folder = tmp_path_factory.mktemp("release")
    project = folder / "project"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PROJECT_DIR / "src" / "mlfactor", project / "src" / "mlfactor", ignore=skip)
    for name in ("bentofile.yaml", "service.py", "pyproject.toml", "requirements/runtime.txt"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_DIR / name, project / name)
    env = {**store_environment(folder), "MLFACTOR_PROJECT_DIR": str(project)}
    model = register_demo_model(env)
    settings = load_settings(model.env)
    result = build_bento(settings)
    return Built(model, settings, connect(settings), result, folder)


def _env_file(folder: Path, name: str, **values: str) -> Path:
    path = folder / name
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


def test_build_packs_the_resolved_version_with_registry_labels(built: Built) -> None:
    """The Bento tag carries the model version; the model labels name registry version, run and commit."""
    with bentoml_stores(built.settings):
        bento = bentoml.bentos.get(built.build.bento_tag)
        labels = bentoml.models.get(built.build.model_tag).info.labels
    assert bento.tag.version.startswith(f"v{built.model.version}-")
    assert built.build.model_version == built.model.version
    packed = [str(m.tag) for m in bento.info.models]
    assert packed == [built.build.model_tag]
    envs = {e.name: e.value for e in bento.info.envs}
    assert envs["MLFACTOR_BENTO_MODEL"] == built.build.model_tag
    assert labels["registered_model"] == "iris-classifier"
    assert labels["version"] == built.model.version
    assert labels["run_id"] == built.model.run_id
    assert "git_commit" in labels
    requirements = Path(bento.path, "env", "python", "requirements.txt").read_text(encoding="utf-8")
    assert "scikit-learn==" in requirements  # pinned, the model's own requirement included


DEV_TOOLS = (
    "pytest",
    "pytest-timeout",
    "pytest-xdist",
    "mypy",
    "ruff",
    "nbval",
    "jupyterlab",
    "jupyter-server",
)


def test_the_bento_carries_the_runtime_lock_without_dev_tools(built: Built) -> None:
    """The Bento installs requirements/runtime.txt: the kernel tooling pipelines need; no test, lint, lab."""
    with bentoml_stores(built.settings):
        bento = bentoml.bentos.get(built.build.bento_tag)
    text = Path(bento.path, "env", "python", "requirements.txt").read_text(encoding="utf-8")
    names = {line.split("==")[0].strip().lower() for line in text.splitlines() if "==" in line}
    assert {"papermill", "ipykernel", "mlflow", "bentoml"} <= names
    assert names.isdisjoint(DEV_TOOLS), sorted(names & set(DEV_TOOLS))


def test_serve_bento_applies_the_bentos_own_model_tag(built: Built) -> None:
    """`mlfactor serve --bento TAG` hands the worker the Bento's MLFACTOR_BENTO_MODEL; exported values win."""
    with bentoml_stores(built.settings):
        env = serve_environment(built.settings, bento=built.build.bento_tag)
        with pytest.raises(NotFoundError, match="mlfactor build"):
            serve_environment(built.settings, bento="no-such-bento:v1")
    assert env["MLFACTOR_BENTO_MODEL"] == built.build.model_tag
    assert env["BENTOML_HOST"] == built.settings.host  # the Bento's 0.0.0.0 does not override local settings


def test_building_again_from_the_same_inputs_gives_the_same_bento(built: Built) -> None:
    """A second build (from another process, through the CLI) resolves to the same tag and builds nothing."""
    done = subprocess.run(
        [MLFACTOR, "build"], env=built.model.env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    again = json.loads(done.stdout.strip().splitlines()[-1])
    assert (again["bento_tag"], again["model_tag"], again["built"]) == (
        built.build.bento_tag,
        built.build.model_tag,
        False,
    )


def test_release_records_are_immutable_shared_and_ordered(built: Built, tmp_path: Path) -> None:
    """Releases record the Bento and a secret-free config hash; newest is current, the one before previous."""
    base = {"MLFACTOR_MAX_ROWS": "500", "MLFACTOR_WORKERS": "1"}
    first = create_release(
        built.client,
        built.settings,
        built.build.bento_tag,
        env_file=_env_file(tmp_path, "a.env", **base, **{"MLFLOW_TRACKING_PASSWORD": "hunter2"}),
    )
    same = create_release(
        built.client,
        built.settings,
        built.build.bento_tag,
        env_file=_env_file(tmp_path, "b.env", **base, **{"MLFLOW_TRACKING_PASSWORD": "other"}),
    )
    assert same.created is False  # a changed secret is not a changed configuration
    assert same.release_id == first.release_id
    second = create_release(
        built.client,
        built.settings,
        built.build.bento_tag,
        env_file=_env_file(tmp_path, "c.env", **{**base, "MLFACTOR_MAX_ROWS": "900"}),
    )
    assert second.config_hash != first.config_hash
    assert "hunter2" not in json.dumps(first.to_dict())
    assert first.secrets_excluded == ["MLFLOW_TRACKING_PASSWORD"]
    assert (first.model_version, first.model_tag) == (built.model.version, built.build.model_tag)
    with pytest.raises(MlflowException):
        built.client.log_param(first.run_id, "bento_tag", "tampered:v9")
    listed = subprocess.run(
        [MLFACTOR, "releases"], env=built.model.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout.strip().splitlines()[-1])
    assert [(r["release_id"], r["status"]) for r in rows] == [
        (second.release_id, "current"),
        (first.release_id, "previous"),
    ]
    assert rows[1]["bento_tag"] == built.build.bento_tag


def test_release_refuses_bad_config_and_unknown_bento(built: Built, tmp_path: Path) -> None:
    """An invalid env file is a ConfigError naming each variable; an unknown Bento gets a close match."""
    bad = _env_file(tmp_path, "bad.env", MLFACTOR_WORKERS="zero", MLFACTOR_LOG_LEVEL="LOUD")
    with pytest.raises(ConfigError) as info:
        create_release(built.client, built.settings, built.build.bento_tag, env_file=bad)
    assert set(info.value.problems) == {"MLFACTOR_WORKERS", "MLFACTOR_LOG_LEVEL"}
    typo = built.build.bento_tag[:-1] + ("0" if built.build.bento_tag[-1] != "0" else "1")
    with pytest.raises(NotFoundError, match="Did you mean"):
        create_release(built.client, built.settings, typo)


@pytest.fixture(scope="module")
def released_server(
    built: Built, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Any, dict[str, str]]]:
    """`bentoml serve BENTO_TAG` with the release's environment and the registry pointed at a dead port."""
    folder = tmp_path_factory.mktemp("released")
    release = create_release(
        built.client,
        built.settings,
        built.build.bento_tag,
        env_file=_env_file(folder, "prod.env", MLFACTOR_MAX_ROWS="777"),
    )
    port = free_port()
    env = {
        **built.model.env,
        **release.run_environment(),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",  # nothing listens: the registry is gone
        "MLFACTOR_ARTIFACT_ROOT": str(folder / "nowhere"),
        "MLFACTOR_REGISTRY_WAIT": "1",
        "MLFACTOR_BACKING_RETRIES": "1",
        "BENTOML_PORT": str(port),
    }
    stdout, stderr = folder / "stdout.log", folder / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [BENTOML, "serve", built.build.bento_tag],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    server = Server(process, port, stdout, stderr)
    try:
        server.wait_ready(timeout=120)
        yield server, release, env
    finally:
        server.stop()


def test_released_bento_serves_with_the_registry_unreachable(
    released_server: tuple[Server, Any, dict[str, str]], built: Built
) -> None:
    """The released Bento starts and predicts from its packed model while the registry is unreachable."""
    server, release, _ = released_server
    metadata = server.request("GET", "/metadata").json()
    assert metadata["model"]["version"] == built.model.version
    assert metadata["model"]["source"] == "bento"
    assert metadata["release"] == release.release_id
    frame = load_iris(as_frame=True).frame.drop(columns=["target"])
    frame.columns = FEATURES
    rows = frame.sample(20, random_state=1).to_dict(orient="records")
    answer = server.post_json("/predict", {"records": rows})
    assert answer.status == 200, answer.body
    mlflow.set_tracking_uri(built.settings.tracking_uri)
    expected = mlflow.pyfunc.load_model(f"models:/iris-classifier/{built.model.version}").predict(
        pd.DataFrame(rows)
    )
    assert answer.json()["predictions"] == expected.tolist()
    assert not server.events("model_resolved")  # it never asked the registry


def test_batch_scoring_with_the_release_matches_its_service(
    released_server: tuple[Server, Any, dict[str, str]], tmp_path: Path
) -> None:
    """batch-score in the release's environment (registry gone) predicts what the released service answers."""
    server, _, env = released_server
    frame = load_iris(as_frame=True).frame.drop(columns=["target"])
    frame.columns = FEATURES
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.to_csv(source, index=False)
    result = batch_score(load_settings(env), source, target, chunk_rows=40)
    assert result.model_source == "bento"
    answer = server.post_json("/predict", {"records": frame.to_dict(orient="records")})
    assert pd.read_csv(target)["prediction"].tolist() == answer.json()["predictions"]
