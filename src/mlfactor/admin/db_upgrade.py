"""``mlfactor admin db-upgrade``: migrate the tracking database schema with ``mlflow db upgrade``.

Safe to run twice: a database already at MLflow's newest revision is left
alone and reported as such. It needs the database itself (``sqlite:///``,
``postgresql://``, ``mysql://``); with an ``http://`` tracking server it says
to run it where the database is, with ``MLFLOW_TRACKING_URI`` set to the
database URI. A missing sqlite file is an error rather than a fresh database:
a typo in the path must not create an empty store.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from mlflow.store.db.utils import _get_latest_schema_revision

from mlfactor.errors import BackingServiceError, ConfigError, NotFoundError
from mlfactor.log import event, get_logger
from mlfactor.masking import mask_uri
from mlfactor.settings import Settings

logger = get_logger(__name__)

DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


@dataclass(frozen=True)
class UpgradeResult:
    """Schema revision of one database before and after the upgrade."""

    uri: str
    before: str | None
    after: str | None
    latest: str
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping of every field."""
        return dict(self.__dict__)


def _check_uri(uri: str, variable: str) -> None:
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    shown = mask_uri(uri)
    if scheme in {"http", "https"}:
        raise ConfigError(
            {variable: f"{shown} is an MLflow server, not a database."},
            hint="Run `mlfactor admin db-upgrade` where the database is (the server's host or a job "
            "next to it), with MLFLOW_TRACKING_URI set to the database URI (postgresql://... or sqlite:///...).",
        )
    if scheme not in DATABASE_SCHEMES:
        raise ConfigError(
            {variable: f"{shown} is not a database URI; expected one of {', '.join(DATABASE_SCHEMES)}."}
        )
    if scheme == "sqlite":
        path = uri.split(":///", 1)[-1]
        if path and path != ":memory:" and not Path(path).is_file():
            raise NotFoundError(
                f"sqlite database {path} does not exist: nothing to upgrade (mlfactor creates it on "
                "first use). Check MLFLOW_TRACKING_URI."
            )


def schema_revision(uri: str) -> str | None:
    """Return the alembic revision of the database (None for an empty database)."""
    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table("alembic_version"):
                return None
            row = connection.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).first()
            return str(row[0]) if row else None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise BackingServiceError(
            f"cannot read the schema of {mask_uri(uri)}: {mask_uri(str(exc).splitlines()[0])}",
            uri=mask_uri(uri),
        ) from exc
    finally:
        engine.dispose()


def upgrade_database(settings: Settings, uri: str | None = None) -> UpgradeResult:
    """Migrate the tracking database (default: ``MLFLOW_TRACKING_URI``) to MLflow's newest schema."""
    target = uri or settings.tracking_uri
    _check_uri(target, "MLFLOW_TRACKING_URI")
    shown = mask_uri(target)
    latest = str(_get_latest_schema_revision())  # type: ignore[no-untyped-call]
    before = schema_revision(target)
    if before == latest:
        event(logger, "db_upgrade_not_needed", uri=shown, revision=before)
        return UpgradeResult(shown, before, before, latest, changed=False)
    event(logger, "db_upgrade_started", uri=shown, before=before, latest=latest)
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "db", "upgrade", target],
        env=settings.child_environment(),
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise BackingServiceError(
            f"`mlflow db upgrade` failed on {shown} (exit {done.returncode}): "
            f"{mask_uri(lines[-1] if lines else '')}. "
            "Restore the backup you took before migrating, fix the cause and run it again.",
            uri=shown,
        )
    after = schema_revision(target)
    event(logger, "db_upgraded", uri=shown, before=before, after=after)
    return UpgradeResult(shown, before, after, latest, changed=before != after)


def upgrade_all(settings: Settings) -> list[UpgradeResult]:
    """Upgrade the tracking database, and the registry database when it is a different one."""
    results = [upgrade_database(settings)]
    if settings.registry_uri != settings.tracking_uri:
        _check_uri(settings.registry_uri, "MLFLOW_REGISTRY_URI")
        results.append(upgrade_database(settings, settings.registry_uri))
    return results
