"""db-upgrade on real databases: migrates once, is a no-op the second time, refuses what it cannot migrate."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from conftest import store_environment

from mlfactor.admin.db_upgrade import schema_revision, upgrade_all
from mlfactor.errors import NotFoundError
from mlfactor.settings import load_settings

MLFACTOR = str(Path(sys.executable).with_name("mlfactor"))
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def test_sqlite_upgrade_runs_once_then_is_a_no_op(tmp_path: Path) -> None:
    """An empty sqlite database is migrated to the newest revision; a second run changes nothing."""
    env = store_environment(tmp_path)
    (tmp_path / "mlflow.db").touch()
    settings = load_settings(env)
    [first] = upgrade_all(settings)
    assert (first.before, first.changed) == (None, True)
    assert first.after == first.latest
    [second] = upgrade_all(settings)
    assert (second.before, second.after, second.changed) == (first.latest, first.latest, False)


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    """A sqlite path that does not exist is reported (exit 66), never created empty."""
    env = store_environment(tmp_path)
    with pytest.raises(NotFoundError, match="does not exist"):
        upgrade_all(load_settings(env))
    assert not (tmp_path / "mlflow.db").exists()


def test_http_tracking_uri_says_where_to_run(tmp_path: Path) -> None:
    """Against an MLflow server the CLI exits 78 and says to run it where the database is."""
    env = {**store_environment(tmp_path), "MLFLOW_TRACKING_URI": "http://127.0.0.1:5999"}
    done = subprocess.run(
        [MLFACTOR, "admin", "db-upgrade"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 78, done.stderr
    assert "where the database is" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """Create a fresh, empty PostgreSQL database and drop it afterwards (skip when no server answers)."""
    admin = sqlalchemy.create_engine(f"{POSTGRES}/test", isolation_level="AUTOCOMMIT")
    name = f"mlfactor_upgrade_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {str(exc).splitlines()[0]}")
    yield f"{POSTGRES}/{name}"
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_upgrade_twice(postgres_database: str, tmp_path: Path) -> None:
    """An empty PostgreSQL database is migrated; `mlfactor admin db-upgrade` run again is a no-op."""
    env = {**store_environment(tmp_path), "MLFLOW_TRACKING_URI": postgres_database}
    [first] = upgrade_all(load_settings(env))
    assert (first.before, first.changed) == (None, True)
    done = subprocess.run(
        [MLFACTOR, "admin", "db-upgrade"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    [again] = json.loads(done.stdout.strip().splitlines()[-1])
    assert (again["before"], again["after"], again["changed"]) == (first.latest, first.latest, False)
    assert schema_revision(postgres_database) == first.latest
