"""Rendering a release: strict schema validity, determinism, secrets by reference, files and lookups."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from conftest import store_environment

from mlfactor.deploy import DeployOptions, pick_release, render_release
from mlfactor.deploy.render import release_context, write_folder
from mlfactor.deploy.sweep import sweep_job
from mlfactor.errors import NotFoundError, ValidationError
from mlfactor.release.records import Release, config_hash, release_config
from mlfactor.settings import Settings, load_settings

K8S_VERSION = "1.37"
SECRET_TOKEN = "tok-5f1b9a7c3e"
DB_PASSWORD = "pw-8c2d4e6f"


def make_settings(tmp_path: Path, **extra: str) -> Settings:
    """Return settings of a fresh store folder, plus ``extra`` variables."""
    return load_settings({**store_environment(tmp_path), **extra})


def make_release(
    settings: Settings, release_id: str = "rel-20261126-101500-a1b2c3", **changes: Any
) -> Release:
    """Return a release record as `mlfactor release` writes it, built from ``settings`` without a store."""
    config, excluded = release_config(settings)
    release = Release(
        release_id=release_id,
        app="mlfactor",
        bento_tag="mlfactor:v3-0123456789ab",
        model_name="iris-classifier",
        model_version="3",
        model_tag="iris-classifier:v3-feedc0ffee12",
        config_hash=config_hash(config),
        created_at="2026-11-26T10:15:00.000+00:00",
        created_ns=1,
        who="tester",
        config=config,
        secrets_excluded=excluded,
    )
    return dataclasses.replace(release, **changes)


def load_folder(folder: Path) -> dict[str, Any]:
    """Return every YAML file of a rendering, parsed."""
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))}


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[Path, Settings, Release]:
    """Render once a release with a secret and a password in its tracking URI."""
    settings = make_settings(
        tmp_path / "store",
        MLFLOW_TRACKING_TOKEN=SECRET_TOKEN,
        MLFLOW_TRACKING_URI=f"postgresql://mlflow:{DB_PASSWORD}@db.internal:5432/mlflow",
    )
    release = make_release(settings)
    out = tmp_path / "out"
    render_release(settings, release, out)
    return out, settings, release


def test_every_rendered_manifest_passes_strict_kubernetes_validation(
    rendered: tuple[Path, Settings, Release],
) -> None:
    """Each object validates in strict mode (no unknown fields) against Kubernetes 1.37."""
    out, _, _ = rendered
    objects = {name: obj for name, obj in load_folder(out).items() if name != "kustomization.yaml"}
    kinds = sorted(obj["kind"] for obj in objects.values())
    assert kinds == [
        "ConfigMap",
        "CronJob",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "PodDisruptionBudget",
        "Service",
    ]
    for name, obj in objects.items():
        assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True) == K8S_VERSION, name


def test_strict_validation_catches_an_unknown_field(rendered: tuple[Path, Settings, Release]) -> None:
    """The validator used above does reject a misspelt field (the check can fail)."""
    out, _, _ = rendered
    deployment = load_folder(out)["deployment.yaml"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_rendering_twice_gives_byte_identical_files(
    rendered: tuple[Path, Settings, Release], tmp_path: Path
) -> None:
    """The same release and options give the same bytes in every file, wherever they are written."""
    out, settings, release = rendered
    again = tmp_path / "again"
    render_release(settings, release, again)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    second = {p.name: p.read_bytes() for p in again.iterdir()}
    assert first == second
    assert "kustomization.yaml" in first and "render.json" in first


def test_secrets_are_referenced_never_written(rendered: tuple[Path, Settings, Release]) -> None:
    """Secret variables and URI passwords become secretKeyRefs; their values appear in no file."""
    out, _, _ = rendered
    text = "".join(p.read_text() for p in out.iterdir())
    assert SECRET_TOKEN not in text and DB_PASSWORD not in text
    files = load_folder(out)
    assert "MLFLOW_TRACKING_URI" not in files["configmap.yaml"]["data"]
    assert "MLFLOW_TRACKING_TOKEN" not in files["configmap.yaml"]["data"]
    env = files["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_URI"):
        assert refs[name] == {"key": name, "name": "mlfactor-secrets"}
    # The registry follows the tracking store when unset: nothing recorded, the pod derives it.
    assert "MLFLOW_REGISTRY_URI" not in refs and "MLFLOW_REGISTRY_URI" not in files["configmap.yaml"]["data"]
    summary = json.loads((out / "render.json").read_text())
    assert set(summary["secret"]["keys"]) >= {"MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_URI"}


def test_configmap_carries_the_release_and_the_packed_model(rendered: tuple[Path, Settings, Release]) -> None:
    """The ConfigMap is immutable, named after the release, and makes the Bento run this release."""
    out, _, release = rendered
    files = load_folder(out)
    config = files["configmap.yaml"]
    assert config["immutable"] is True
    assert config["metadata"]["name"] == "mlfactor-rel-20261126-101500-a1b2c3"
    assert config["data"]["MLFACTOR_RELEASE"] == release.release_id
    assert config["data"]["MLFACTOR_BENTO_MODEL"] == release.model_tag
    assert config["data"]["BENTOML_HOST"] == "0.0.0.0"  # noqa: S104 - a pod binds its own IP
    pod = files["deployment.yaml"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert pod["containers"][0]["image"] == "mlfactor:v3-0123456789ab"


def test_kustomization_applies_everything_but_the_admin_job(rendered: tuple[Path, Settings, Release]) -> None:
    """`kubectl apply -k` rolls the release out; the db-upgrade Job is applied on its own, first."""
    out, _, _ = rendered
    files = load_folder(out)
    resources = files["kustomization.yaml"]["resources"]
    jobs = [name for name, obj in files.items() if obj.get("kind") == "Job"]
    assert len(jobs) == 1 and jobs[0] not in resources
    assert set(resources) == set(files) - {"kustomization.yaml", jobs[0]}
    assert files[jobs[0]]["spec"]["template"]["spec"]["containers"][0]["args"] == ["admin", "db-upgrade"]


def test_registry_prefixes_the_image_and_options_change_the_autoscaler(tmp_path: Path) -> None:
    """--registry names the pushed image; replica bounds reach the HorizontalPodAutoscaler."""
    settings = make_settings(tmp_path / "store")
    options = DeployOptions(registry="ghcr.io/acme/", min_replicas=3, max_replicas=9)
    render_release(settings, make_release(settings), tmp_path / "out", options)
    files = load_folder(tmp_path / "out")
    images = {c["image"] for f in files.values() for c in _containers(f)}
    assert images == {"ghcr.io/acme/mlfactor:v3-0123456789ab"}
    assert (files["hpa.yaml"]["spec"]["minReplicas"], files["hpa.yaml"]["spec"]["maxReplicas"]) == (3, 9)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return list(((spec.get("template") or {}).get("spec") or {}).get("containers") or [])


def test_db_upgrade_behind_a_tracking_server_reads_the_database_uri_from_the_secret(tmp_path: Path) -> None:
    """With an http:// tracking server the admin Job gets the database URI from MLFLOW_BACKEND_STORE_URI."""
    settings = make_settings(tmp_path / "store", MLFLOW_TRACKING_URI="http://mlflow:5000")
    result = render_release(settings, make_release(settings), tmp_path / "out")
    job = next(o for o in load_folder(tmp_path / "out").values() if o.get("kind") == "Job")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"]["key"] == "MLFLOW_BACKEND_STORE_URI"
    assert "MLFLOW_BACKEND_STORE_URI" in result.secret_keys
    assert not any("MLFLOW_TRACKING_URI" in w for w in result.warnings)


def test_local_stores_are_warned_about(tmp_path: Path) -> None:
    """A release pointing at an sqlite file and a local artifact folder gets a warning for each."""
    settings = make_settings(tmp_path / "store")
    result = render_release(settings, make_release(settings), tmp_path / "out")
    assert any(w.startswith("MLFLOW_TRACKING_URI is 'sqlite:") for w in result.warnings)
    assert any(w.startswith("MLFACTOR_ARTIFACT_ROOT") for w in result.warnings)
    assert any("no Dockerfile" in w for w in result.warnings)  # the Bento is not in this empty store


def test_bad_options_are_all_reported_at_once(tmp_path: Path) -> None:
    """Three bad options give one ValidationError naming all three, and nothing is written."""
    settings = make_settings(tmp_path / "store")
    options = DeployOptions(
        min_replicas=4, max_replicas=2, schedule="daily", pipelines=("pipelines/nope.yaml",)
    )
    with pytest.raises(ValidationError) as caught:
        render_release(settings, make_release(settings), tmp_path / "out", options)
    assert len(caught.value.problems) == 2  # options are checked before the pipeline files
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValidationError, match=r"nope\.yaml"):
        render_release(
            settings,
            make_release(settings),
            tmp_path / "out",
            DeployOptions(pipelines=("pipelines/nope.yaml",)),
        )


def test_write_folder_replaces_a_rendering_and_refuses_other_folders(tmp_path: Path) -> None:
    """An earlier rendering is replaced whole (stale files go); a folder of other files is refused."""
    out = tmp_path / "out"
    write_folder(out, {"render.json": "{}", "old.yaml": "a: 1\n"})
    write_folder(out, {"render.json": "{}", "new.yaml": "b: 2\n"})
    assert sorted(p.name for p in out.iterdir()) == ["new.yaml", "render.json"]
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValidationError, match="not an mlfactor rendering"):
        write_folder(other, {"render.json": "{}"})
    assert (other / "notes.txt").read_text() == "keep me"


def test_pick_release_by_id_current_and_previous(tmp_path: Path) -> None:
    """Ids, `current` and `previous` resolve per app; typos and ambiguity are explained."""
    settings = make_settings(tmp_path / "store")
    new = make_release(settings, "rel-2", status="current")
    old = make_release(settings, "rel-1", status="previous")
    other = make_release(settings, "rel-9", app="other", status="current")
    assert pick_release([new, old], "current") is new
    assert pick_release([new, old], "previous") is old
    assert pick_release([new, old, other], "rel-1") is old
    assert pick_release([new, old, other], "current", app="other") is other
    with pytest.raises(ValidationError, match="ambiguous"):
        pick_release([new, old, other], "current")
    with pytest.raises(NotFoundError, match="no 'previous'"):
        pick_release([other], "previous")
    with pytest.raises(NotFoundError, match="Did you mean"):
        pick_release([new, old], "rel-3")


def test_sweep_job_fans_the_grid_out_by_completion_index(tmp_path: Path) -> None:
    """The Indexed Job has one completion per grid point and passes its index to --sweep-index."""
    settings = make_settings(tmp_path / "store")
    ctx = release_context(make_release(settings), DeployOptions())
    job = sweep_job(
        ctx,
        "pipelines/train.yaml",
        ["train.C=0.1,1,10"],
        ["note=$(HOME)"],
        grid_size=3,
        sweep_id="0123abcd4567",
        max_parallel=2,
    )
    assert kubernetes_validate.validate(job, K8S_VERSION, strict=True) == K8S_VERSION
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 2)
    main = spec["template"]["spec"]["containers"][0]
    args = main["args"]
    assert args[args.index("--sweep-index") + 1] == "$(JOB_COMPLETION_INDEX)"
    assert args[args.index("-p") + 1] == "note=$$(HOME)"  # a user's `$` is not expanded by Kubernetes
    index = next(e for e in main["env"] if e["name"] == "JOB_COMPLETION_INDEX")
    assert "job-completion-index" in index["valueFrom"]["fieldRef"]["fieldPath"]
    with pytest.raises(ValidationError):
        sweep_job(ctx, "pipelines/train.yaml", [], [], grid_size=0, sweep_id="x", max_parallel=1)


def test_a_release_records_no_path_of_the_machine_that_built_it(tmp_path: Path) -> None:
    """Defaults computed from the builder's project folder stay out of the record and the ConfigMap."""
    env = store_environment(tmp_path)
    del env["MLFACTOR_ARTIFACT_ROOT"]
    env["MLFLOW_TRACKING_URI"] = "postgresql://db.internal:5432/mlflow"
    settings = load_settings(env)
    release = make_release(settings)
    assert settings.artifact_root.startswith(str(settings.project_dir))
    assert not {"MLFACTOR_ARTIFACT_ROOT", "MLFACTOR_PROJECT_DIR", "MLFLOW_REGISTRY_URI"} & set(release.config)
    out = tmp_path / "out"
    render_release(settings, release, out)
    text = json.dumps(release.config) + "".join(p.read_text() for p in out.iterdir())
    assert str(settings.project_dir) not in text
