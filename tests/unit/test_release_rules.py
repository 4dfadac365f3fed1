"""Pure rules of build and release: tag names, the merged bentofile, the secret-free config hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlfactor.registry import ResolvedModel
from mlfactor.release.build import (
    inputs_hash,
    merged_bentofile,
    model_tag_for,
    tag_part,
    with_combined_requirements,
)
from mlfactor.release.records import config_hash, release_config
from mlfactor.settings import load_settings

RESOLVED = ResolvedModel(
    "Iris Classifier", "7", "0123456789abcdef", "models:/m-1", "champion", "abc", "READY"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris-classifier", "iris-classifier"),
        ("Iris Classifier", "iris-classifier"),
        ("__x__", "x"),
        ("a" * 80, "a" * 63),
        ("é", "model"),
    ],
)
def test_tag_part_makes_valid_bentoml_names(text: str, expected: str) -> None:
    """Registered names become lowercase BentoML tag parts of at most 63 characters."""
    assert tag_part(text) == expected


def test_model_tag_names_version_and_run() -> None:
    """The BentoML model tag is the registered name plus v<version>-<run id prefix>."""
    assert model_tag_for(RESOLVED) == "iris-classifier:v7-0123456789ab"


def _merge(config: dict[str, object], requirements: list[str], tmp_path: Path) -> dict[str, object]:
    return merged_bentofile(
        config,
        model_tag="iris:v7-x",
        resolved=RESOLVED,
        model_requirements=requirements,
        project_dir=tmp_path,
    )


def test_merged_bentofile_packs_the_model_and_sets_its_variable(tmp_path: Path) -> None:
    """The build adds the model, MLFACTOR_BENTO_MODEL and registry labels; project entries stay."""
    config = {
        "service": "service:Svc",
        "envs": [{"name": "A", "value": "1"}, {"name": "MLFACTOR_BENTO_MODEL", "value": "old"}],
        "labels": {"project": "p"},
    }
    merged = _merge(config, [], tmp_path)
    assert merged["models"] == ["iris:v7-x"]
    assert merged["envs"] == [
        {"name": "A", "value": "1"},
        {"name": "MLFACTOR_BENTO_MODEL", "value": "iris:v7-x"},
    ]
    labels = merged["labels"]
    assert isinstance(labels, dict)
    assert labels["project"] == "p"
    assert (labels["registered_model"], labels["model_version"]) == ("Iris Classifier", "7")
    assert config["envs"][1]["value"] == "old"  # type: ignore[index]  # the input is not modified


def test_model_requirements_are_added_only_when_not_pinned(tmp_path: Path) -> None:
    """The model's requirements join python.packages unless the project's requirements file pins them."""
    (tmp_path / "lock.txt").write_text(
        "scikit-learn==1.9.0 \\\n    --hash=sha256:00\nnumpy==2.0\n", encoding="utf-8"
    )
    config = {"service": "s:S", "python": {"requirements_txt": "lock.txt"}}
    merged = _merge(config, ["scikit-learn==1.9.0", "skops==0.13", "numpy==2.0"], tmp_path)
    assert merged["python"] == {"requirements_txt": "lock.txt", "packages": ["skops==0.13"]}


def test_extra_model_packages_install_from_one_file_with_the_lock_pins(tmp_path: Path) -> None:
    """A lock plus extra packages gives one file: the lock's pins, hashes dropped, then the extras."""
    (tmp_path / "lock.txt").write_text(
        "# comment\nscikit-learn==1.9.0 \\\n    --hash=sha256:00\nnumpy==2.0 ; python_version >= '3.11'\n",
        encoding="utf-8",
    )
    merged = _merge(
        {"service": "s:S", "python": {"requirements_txt": "lock.txt"}}, ["onnxruntime==1.32.0"], tmp_path
    )
    built = with_combined_requirements(merged, tmp_path)
    assert built["python"] == {"requirements_txt": "build/bento-requirements.txt"}
    lines = (tmp_path / "build" / "bento-requirements.txt").read_text(encoding="utf-8").splitlines()
    assert lines[1:] == [
        "scikit-learn==1.9.0",
        "numpy==2.0 ; python_version >= '3.11'",
        "onnxruntime==1.32.0",
    ]
    assert with_combined_requirements(_merge({"service": "s:S"}, [], tmp_path), tmp_path) == _merge(
        {"service": "s:S"}, [], tmp_path
    )


def test_inputs_hash_follows_included_files(tmp_path: Path) -> None:
    """The build hash is stable for the same files and changes when an included file changes."""
    (tmp_path / "svc.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not included\n", encoding="utf-8")
    merged = _merge({"service": "svc:S", "include": ["*.py"]}, [], tmp_path)
    first = inputs_hash(merged, tmp_path, "iris:v7-x")
    (tmp_path / "notes.md").write_text("edited\n", encoding="utf-8")
    assert inputs_hash(merged, tmp_path, "iris:v7-x") == first
    (tmp_path / "svc.py").write_text("x = 2\n", encoding="utf-8")
    assert inputs_hash(merged, tmp_path, "iris:v7-x") != first


def test_release_config_excludes_secrets_and_per_process_values(tmp_path: Path) -> None:
    """The release config leaves out secret variables and per-process ones; URI passwords are masked."""
    env = {
        "MLFACTOR_PROJECT_DIR": str(tmp_path),
        "MLFLOW_TRACKING_URI": "postgresql://app:s3cret@db:5432/mlflow",
        "MLFLOW_TRACKING_PASSWORD": "hunter2",
        "MLFACTOR_RELEASE": "rel-1",
        "MLFACTOR_MAX_ROWS": "12",
    }
    config, excluded = release_config(load_settings(env))
    text = repr(config)
    assert "s3cret" not in text and "hunter2" not in text
    assert config["MLFACTOR_MAX_ROWS"] == 12
    assert "MLFACTOR_RELEASE" not in config and "MLFACTOR_PROJECT_DIR" not in config
    assert excluded == ["MLFLOW_TRACKING_PASSWORD"]
    other, _ = release_config(load_settings({**env, "MLFLOW_TRACKING_PASSWORD": "changed"}))
    assert config_hash(other) == config_hash(config)
    changed, _ = release_config(load_settings({**env, "MLFACTOR_MAX_ROWS": "13"}))
    assert config_hash(changed) != config_hash(config)
