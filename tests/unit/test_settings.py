"""Settings: the only reader of the environment (factor III)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mlfactor.errors import ConfigError, ExitCode
from mlfactor.settings import VARIABLES, Settings, load_settings, sandbox_environment, settings_fields
from mlfactor.variables import BOOLEAN


def test_defaults_point_at_embedded_sqlite_store(tmp_path: Path) -> None:
    """With no variables set, the store is an sqlite file and artifacts a folder in the project."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    settings = load_settings({}, cwd=tmp_path)
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.registry_uri == settings.tracking_uri
    assert settings.artifact_root == str(tmp_path / "mlartifacts")
    assert settings.resolved_model_uri == "models:/iris-classifier@champion"
    assert settings.port == 3000


def test_project_dir_is_found_above_the_working_directory(tmp_path: Path) -> None:
    """A command started in a sub-folder still uses the project's store."""
    (tmp_path / "pyproject.toml").write_text("")
    sub = tmp_path / "notebooks" / "deep"
    sub.mkdir(parents=True)
    assert load_settings({}, cwd=sub).project_dir == tmp_path


def test_every_bad_variable_is_reported_at_once(tmp_path: Path) -> None:
    """Three bad variables give one ConfigError naming all three, with the values and expectations."""
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"MLFACTOR_LOG_FORMAT": "xml", "PORT": "eighty", "MLFACTOR_GRACE_PERIOD": "-1"}, cwd=tmp_path
        )
    error = caught.value
    assert set(error.problems) == {"MLFACTOR_LOG_FORMAT", "PORT", "MLFACTOR_GRACE_PERIOD"}
    assert "'xml'" in error.problems["MLFACTOR_LOG_FORMAT"]
    assert "json, console, auto" in error.problems["MLFACTOR_LOG_FORMAT"]
    assert "'eighty'" in error.problems["PORT"]
    assert error.exit_code == ExitCode.CONFIG == 78


def test_misspelt_variable_gets_a_did_you_mean_hint(tmp_path: Path) -> None:
    """An unknown MLFACTOR_ variable is an error that suggests the close name."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"MLFACTOR_LOG_LEVL": "DEBUG"}, cwd=tmp_path)
    assert "Did you mean 'MLFACTOR_LOG_LEVEL'?" in caught.value.problems["MLFACTOR_LOG_LEVL"]


def test_secret_values_are_masked_in_errors(tmp_path: Path) -> None:
    """A bad value of a secret-looking variable never appears in the error."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"MLFACTOR_API_KEY": "hunter2-secret"}, cwd=tmp_path)
    assert "hunter2" not in str(caught.value)


def test_dump_masks_uri_passwords(tmp_path: Path) -> None:
    """`mlfactor config` output never shows the password inside a database URI."""
    settings = load_settings({"MLFLOW_TRACKING_URI": "postgresql://ml:s3cr3tpw@db:5432/mlflow"}, cwd=tmp_path)
    dumped = settings.dump()
    assert dumped["MLFLOW_TRACKING_URI"] == "postgresql://ml:***@db:5432/mlflow"
    assert "s3cr3tpw" not in repr(dumped)


def test_bentoml_port_wins_over_port(tmp_path: Path) -> None:
    """PORT is honoured only when BENTOML_PORT is unset."""
    assert load_settings({"PORT": "8080"}, cwd=tmp_path).port == 8080
    assert load_settings({"PORT": "8080", "BENTOML_PORT": "9090"}, cwd=tmp_path).port == 9090


def test_dotenv_is_read_and_passed_to_children_but_environment_wins(tmp_path: Path) -> None:
    """.env values reach child processes explicitly; an exported variable beats the file."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / ".env").write_text("MLFACTOR_MODEL_NAME=from-file\nMLFACTOR_MODEL_ALIAS=staging\nEXTRA=1\n")
    settings = load_settings({"MLFACTOR_MODEL_ALIAS": "from-env"}, cwd=tmp_path)
    assert settings.model_name == "from-file"
    assert settings.model_alias == "from-env"
    assert settings.sources["MLFACTOR_MODEL_NAME"] == ".env"
    child = settings.child_environment({"MLFACTOR_RUN_ID": "abc"})
    assert child["EXTRA"] == "1"
    assert child["MLFLOW_TRACKING_URI"] == settings.tracking_uri
    assert child["MLFACTOR_RUN_ID"] == "abc"


def test_model_uri_overrides_name_and_alias(tmp_path: Path) -> None:
    """MLFACTOR_MODEL_URI wins over MLFACTOR_MODEL_NAME and MLFACTOR_MODEL_ALIAS."""
    settings = load_settings({"MLFACTOR_MODEL_NAME": "a", "MLFACTOR_MODEL_URI": "models:/b/3"}, cwd=tmp_path)
    assert settings.resolved_model_uri == "models:/b/3"


def test_a_bad_variant_split_says_why(tmp_path: Path) -> None:
    """MLFACTOR_VARIANTS is parsed by the one weights parser; the error names the value and the reason."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"MLFACTOR_VARIANTS": "champion=0"}, cwd=tmp_path)
    problem = caught.value.problems["MLFACTOR_VARIANTS"]
    assert "'champion=0'" in problem and "REF=WEIGHT" in problem and "add up to 0" in problem
    settings = load_settings({"MLFACTOR_VARIANTS": "champion=90,challenger=10"}, cwd=tmp_path)
    assert settings.variants == (("champion", 90), ("challenger", 10))
    assert settings.dump()["MLFACTOR_VARIANTS"] == "champion=90,challenger=10"


def test_every_variable_maps_to_a_settings_field() -> None:
    """The variable table and the Settings dataclass cannot drift apart."""
    attrs = [var.attr for var in VARIABLES]
    assert attrs == [name for name in settings_fields() if name not in {"env_file", "sources", "environ"}]
    assert isinstance(load_settings({}), Settings)


def test_sandbox_environment_isolates_a_throwaway_store(tmp_path: Path) -> None:
    """A sandbox drops the caller's MLflow, BentoML and mlfactor variables and points inside the folder."""
    base = {"MLFLOW_TRACKING_URI": "postgresql://prod/db", "BENTOML_HOME": "/srv/b"}
    base.update({"MLFACTOR_X": "1", "HOME": "/h"})
    env = sandbox_environment(tmp_path, tmp_path, base)
    settings = load_settings(env)
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert settings.artifact_root == str(tmp_path / "artifacts")
    assert env["BENTOML_HOME"] == str(tmp_path / "bentoml")
    assert env["HOME"] == "/h"
    assert "MLFACTOR_X" not in env


def test_log_level_is_a_logging_constant(tmp_path: Path) -> None:
    """MLFACTOR_LOG_LEVEL reads a name (any case) into the logging constant; the dump shows the name."""
    settings = load_settings({"MLFACTOR_LOG_LEVEL": "debug"}, cwd=tmp_path)
    assert settings.log_level == logging.DEBUG
    assert settings.dump()["MLFACTOR_LOG_LEVEL"] == "DEBUG"
    with pytest.raises(ConfigError, match="one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        load_settings({"MLFACTOR_LOG_LEVEL": "LOUD"}, cwd=tmp_path)


def test_an_empty_variable_means_its_default(tmp_path: Path) -> None:
    """`PORT=` or `MLFACTOR_EXPERIMENT=` (as compose files write them) leave the default in force."""
    settings = load_settings({"PORT": "", "MLFACTOR_EXPERIMENT": "", "MLFACTOR_MODEL_URI": ""}, cwd=tmp_path)
    assert (settings.port, settings.experiment, settings.model_uri) == (3000, "mlfactor", None)


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("YES", True), ("1", True), ("off", False), ("0", False)], ids=str
)
def test_booleans_read_the_usual_spellings(raw: str, expected: bool) -> None:
    """true/yes/1/on and false/no/0/off, in any case."""
    assert BOOLEAN.convert(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("0.25", 0.25), ("true", 1.0), ("off", 0.0), ("1", 1.0)], ids=str
)
def test_the_prediction_log_rate_is_a_share_or_a_boolean(tmp_path: Path, raw: str, expected: float) -> None:
    """MLFACTOR_LOG_PREDICTIONS takes a share from 0 to 1, or true/false for all or none."""
    assert load_settings({"MLFACTOR_LOG_PREDICTIONS": raw}, cwd=tmp_path).log_predictions == expected


@pytest.mark.parametrize("raw", ["1.5", "-0.1", "nan", "half"], ids=str)
def test_a_prediction_log_rate_outside_0_to_1_is_refused(tmp_path: Path, raw: str) -> None:
    """A rate outside 0..1 (or not a number) is a ConfigError naming the value and the range."""
    with pytest.raises(ConfigError, match=r"MLFACTOR_LOG_PREDICTIONS.*a share from 0 to 1") as caught:
        load_settings({"MLFACTOR_LOG_PREDICTIONS": raw}, cwd=tmp_path)
    assert raw in str(caught.value)


def test_declared_configuration_leaves_out_this_machine_s_defaults(tmp_path: Path) -> None:
    """declared() keeps set values and portable defaults, never a default computed from the project folder."""
    settings = load_settings(
        {"MLFACTOR_MODEL_NAME": "m", "MLFLOW_TRACKING_URI": "http://mlflow:5000"}, cwd=tmp_path
    )
    declared = settings.declared()
    assert declared["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and declared["MLFACTOR_MODEL_NAME"] == "m"
    assert declared["MLFACTOR_MAX_ROWS"] == 10_000
    assert not {"MLFLOW_REGISTRY_URI", "MLFACTOR_ARTIFACT_ROOT", "MLFACTOR_PROJECT_DIR"} & set(declared)
