"""Same processes, same contract: what the rendered manifests run, run here as real processes.

One Bento is built for the module (the project's bentofile plus the pipeline files jobs need), released
with an env file, rendered with `mlfactor deploy render`, and staged as the image's /home/bentoml/bento
(read-only). Each container of the manifests then runs locally with the environment the manifest
gives it: the service answers its probes, the db-upgrade Job migrates a store, and one index of a
sweep rendered by `mlfactor run --sweep --render-k8s` runs as one traceable pipeline run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import PROJECT_DIR, RegisteredModel
from service_harness import free_port
from waiting import wait_until

from mlfactor.bento_store import bentoml_stores
from mlfactor.deploy.container import stage_image_files
from mlfactor.deploy.local import LocalProcess, local_process
from mlfactor.deploy.render import render_release
from mlfactor.release.build import BENTOFILE, build_bento, load_bentofile
from mlfactor.release.records import Release, create_release, read_env_file
from mlfactor.settings import Settings, load_settings
from mlfactor.tracking import connect

pytestmark = pytest.mark.slow
MLFACTOR = str(Path(sys.executable).with_name("mlfactor"))
TOKEN = "tok-deploy-test-4b7e1f"
JOB_FILES = ["pyproject.toml", "pipelines/*.yaml", "notebooks/*.ipynb"]
SWEEP = "train.C=0.5,2.0"


@dataclass
class Deployed:
    """A released Bento, its rendered manifests, the staged image files and the jobs' store."""

    env: dict[str, str]
    settings: Settings
    release: Release
    out: Path
    image: Path
    jobs_uri: str
    folder: Path

    def files(self, folder: Path | None = None) -> dict[str, Any]:
        """Return every YAML file of a rendering, parsed."""
        return {p.name: yaml.safe_load(p.read_text()) for p in sorted((folder or self.out).glob("*.yaml"))}

    def process(self, container: dict[str, Any], scratch: Path, **overrides: str) -> LocalProcess:
        """Return the local process of ``container``: the image is the staged folder."""
        config = next(f for f in self.files().values() if f.get("kind") == "ConfigMap")
        scratch.mkdir(parents=True, exist_ok=True)
        return local_process(
            container,
            config_maps={config["metadata"]["name"]: config["data"]},
            secrets={"mlfactor-secrets": {"MLFLOW_TRACKING_TOKEN": TOKEN}},
            base_env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8"},
            overrides={"BENTO_PATH": str(self.image), "TMPDIR": str(scratch), **overrides},
        )


def _set_writable(root: Path, writable: bool) -> None:
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            mode = path.stat().st_mode
            path.chmod(mode | 0o200 if writable else mode & ~0o222)
    root.chmod(0o755 if writable else 0o555)


@pytest.fixture(scope="module")
def deployed(
    registered_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    """Build, release (config from an env file), render with the CLI and stage the image, once."""
    folder = tmp_path_factory.mktemp("deploy")
    settings = load_settings(registered_model.env)
    bentofile = load_bentofile(PROJECT_DIR / BENTOFILE)
    bentofile["include"] = [*bentofile["include"], *(f for f in JOB_FILES if f not in bentofile["include"])]
    (folder / BENTOFILE).write_text(yaml.safe_dump(bentofile), encoding="utf-8")
    with bentoml_stores(settings):  # this module's BENTOML_HOME, whatever other tests used before
        built = build_bento(settings, bentofile=folder / BENTOFILE)
    jobs_uri = f"sqlite:///{folder / 'jobs.db'}"
    env_file = folder / "release.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI={jobs_uri}\nMLFACTOR_ARTIFACT_ROOT={folder / 'artifacts'}\n"
        f"MLFACTOR_LOG_FORMAT=json\nMLFACTOR_GRACE_PERIOD=5\nMLFLOW_TRACKING_TOKEN={TOKEN}\n",
        encoding="utf-8",
    )
    connect(read_env_file(env_file))  # the jobs' tracking store exists, as a shared server's would
    with bentoml_stores(settings):
        release = create_release(connect(settings), settings, built.bento_tag, env_file=env_file)
    out = folder / "manifests"
    done = subprocess.run(
        [MLFACTOR, "deploy", "render", release.release_id, "--out", str(out)],
        env=registered_model.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["release_id"] == release.release_id
    image = stage_image_files(settings, built.bento_tag, folder / "image")
    _set_writable(image, False)  # the image's files are read-only, as with readOnlyRootFilesystem
    try:
        yield Deployed(registered_model.env, settings, release, out, image, jobs_uri, folder)
    finally:
        _set_writable(image, True)


def test_rendered_release_validates_strictly_and_keeps_the_bentos_dockerfile(deployed: Deployed) -> None:
    """Every manifest of a real release passes strict validation; the Dockerfile is the Bento's."""
    for name, obj in deployed.files().items():
        if name != "kustomization.yaml":
            assert kubernetes_validate.validate(obj, "1.37", strict=True) == "1.37", name
    dockerfile = (deployed.out / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile and "USER bentoml" in dockerfile
    summary = json.loads((deployed.out / "render.json").read_text())
    bento_name, version = deployed.release.bento_tag.split(":")
    assert summary["image"] == f"{bento_name}:{version}"
    assert summary["secret"] == {"keys": ["MLFLOW_TRACKING_TOKEN"], "name": "mlfactor-secrets"}
    assert not any("does not pack" in w for w in summary["warnings"])
    assert TOKEN not in "".join(p.read_text() for p in deployed.out.iterdir())


def test_rendering_a_real_release_again_gives_the_same_bytes(deployed: Deployed, tmp_path: Path) -> None:
    """The library renders the release the CLI rendered into byte-identical files, Dockerfile included."""
    render_release(deployed.settings, deployed.release, tmp_path / "again")
    first = {p.name: p.read_bytes() for p in deployed.out.iterdir()}
    assert "Dockerfile" in first
    assert {p.name: p.read_bytes() for p in (tmp_path / "again").iterdir()} == first


def test_render_names_a_missing_release_and_writes_nothing(deployed: Deployed, tmp_path: Path) -> None:
    """An unknown release id exits 66 with the newest releases listed; no folder is created."""
    done = subprocess.run(
        [MLFACTOR, "deploy", "render", "rel-does-not-exist", "--out", str(tmp_path / "out")],
        env=deployed.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 66
    assert "release 'rel-does-not-exist' does not exist" in done.stderr
    assert "Newest releases: rel-" in done.stderr
    assert not (tmp_path / "out").exists()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # not listening yet
        return 0


def test_service_container_runs_locally_and_answers_its_probes(deployed: Deployed, tmp_path: Path) -> None:
    """The Deployment's command serves the release from the read-only image and stops within its grace."""
    deployment = deployed.files()["deployment.yaml"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    port = free_port()
    process = deployed.process(
        container, tmp_path / "scratch", BENTOML_HOST="127.0.0.1", BENTOML_PORT=str(port), PORT=str(port)
    )
    config = next(f for f in deployed.files().values() if f.get("kind") == "ConfigMap")["data"]
    local = {
        k: v
        for k, v in process.env.items()
        if k in config and k not in {"BENTOML_HOST", "BENTOML_PORT", "PORT"}
    }
    assert local == {k: v for k, v in config.items() if k not in {"BENTOML_HOST", "BENTOML_PORT", "PORT"}}
    assert process.command[:3] == ["bentoml", "serve", str(deployed.image)]
    log = (tmp_path / "service.log").open("w")
    server = subprocess.Popen(process.command, env=process.env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        ready = container["readinessProbe"]["httpGet"]["path"]
        wait_until(
            lambda: _get(base + ready) == 200,
            timeout=90,
            what=f"{ready} not 200",
            alive=lambda: None if server.poll() is None else (tmp_path / "service.log").read_text()[-3000:],
        )
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert _get(base + container[probe]["httpGet"]["path"]) == 200, probe
        body = json.dumps({"records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                                        "petal_width": 0.2}]}).encode()  # fmt: skip
        request = urllib.request.Request(
            base + "/predict", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            predicted = json.load(answer)
        assert predicted["model"]["version"] == deployed.release.model_version
        with urllib.request.urlopen(base + "/metadata", timeout=5) as answer:
            metadata = json.load(answer)
        assert metadata["release"] == deployed.release.release_id
        assert metadata["model"]["source"] == "bento"  # the packed model, no registry call
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=pod["terminationGracePeriodSeconds"])
        assert code == 0
        assert time.monotonic() - started < pod["terminationGracePeriodSeconds"] - pause
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_db_upgrade_job_runs_locally_against_the_release_store(deployed: Deployed, tmp_path: Path) -> None:
    """The admin Job's command migrates (here: checks) the tracking database the release names."""
    job = next(f for f in deployed.files().values() if f.get("kind") == "Job")
    process = deployed.process(job["spec"]["template"]["spec"]["containers"][0], tmp_path / "scratch")
    done = subprocess.run(process.command, env=process.env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    upgrade = [e for e in events if e.get("event", "").startswith("db_upgrade")]
    assert upgrade and deployed.jobs_uri.split("///")[1] in json.dumps(upgrade)


def test_sweep_renders_as_indexed_job_and_one_index_is_one_traceable_run(
    deployed: Deployed, tmp_path: Path
) -> None:
    """`run --sweep --render-k8s` writes an Indexed Job; its index 0 runs here as one tagged pipeline run."""
    out = tmp_path / "sweep"
    env = {**deployed.env, "MLFACTOR_RELEASE": deployed.release.release_id}
    done = subprocess.run(
        [MLFACTOR, "run", "pipelines/train.yaml", "--sweep", SWEEP, "--render-k8s", str(out)],
        env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    files = deployed.files(out)
    job = next(f for f in files.values() if f.get("kind") == "Job")
    assert kubernetes_validate.validate(job, "1.37", strict=True) == "1.37"
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 2)
    container = job["spec"]["template"]["spec"]["containers"][0]
    sweep_id = container["args"][container["args"].index("--sweep-id") + 1]

    cron = next(f for f in deployed.files().values() if f.get("kind") == "CronJob")
    cron_container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    same = ("command", "envFrom", "image", "resources", "securityContext", "volumeMounts")
    assert {k: cron_container[k] for k in same} == {k: container[k] for k in same}
    grid = ["--sweep", SWEEP, "--sweep-id", sweep_id, "--sweep-index", "$(JOB_COMPLETION_INDEX)"]
    assert [a for a in container["args"] if a not in grid] == cron_container[
        "args"
    ]  # the CronJob's run + the grid

    process = deployed.process(container, tmp_path / "scratch", JOB_COMPLETION_INDEX="0")
    ran = subprocess.run(process.command, env=process.env, capture_output=True, text=True, timeout=240,
                         cwd=tmp_path, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    summary = json.loads(ran.stdout.strip().splitlines()[-1])
    assert summary["status"] == "FINISHED"
    client = connect(load_settings({**deployed.env, "MLFLOW_TRACKING_URI": deployed.jobs_uri}))
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`mlfactor.sweep.id` = '{sweep_id}'",
    )
    assert [r.info.run_id for r in runs] == [summary["run_id"]]
    assert runs[0].data.tags["mlfactor.sweep.index"] == "0" and runs[0].info.status == "FINISHED"
    train = client.get_run(summary["steps"]["train"]["run_id"])
    assert train.data.params["C"] == "0.5"  # grid point 0
    assert train.data.tags["mlflow.parentRunId"] == summary["run_id"]
