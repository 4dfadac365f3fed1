"""PostgreSQL databases named by tracking-store URIs: create them when missing.

MLflow creates its tables in an existing database but not the database
itself. :func:`ensure_database` connects to the server's maintenance database
with the same credentials and creates the one the URI names, so ``make
services`` works on a fresh PostgreSQL. Errors distinguish "nobody answers"
(exit 69, start PostgreSQL) from "it answered and refused us" (exit 78, fix
the URI); passwords are masked in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import psycopg2
from psycopg2 import sql

from mlfactor.errors import BackingServiceError, ConfigError
from mlfactor.masking import mask_text, mask_uri

MAINTENANCE_DATABASE = "postgres"
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class PostgresTarget:
    """The parts of a ``postgresql://`` URI psycopg2 needs."""

    host: str
    port: int
    user: str
    password: str | None
    database: str

    def connect_kwargs(self, database: str | None = None) -> dict[str, object]:
        """Keyword arguments for :func:`psycopg2.connect` to ``database`` (default: the target)."""
        kwargs: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": database or self.database,
            "connect_timeout": CONNECT_TIMEOUT_S,
        }
        if self.password is not None:
            kwargs["password"] = self.password
        return kwargs


def parse_postgres_uri(uri: str) -> PostgresTarget:
    """Split ``postgresql[+driver]://user[:password]@host[:port]/database``; ConfigError otherwise."""
    parts = urlsplit(uri)
    scheme = parts.scheme.split("+", 1)[0]
    database = parts.path.lstrip("/")
    if scheme not in {"postgresql", "postgres"} or not database or "/" in database:
        raise ConfigError(
            {
                "database URI": f"got {mask_uri(uri)!r}; expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
            },
            hint="For the local stack: make services SERVICES_DATABASE_URI=postgresql://postgres@127.0.0.1:5432/mlfactor",
        )
    return PostgresTarget(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password is not None else None,
        database=unquote(database),
    )


def ensure_database(uri: str) -> bool:
    """Create the database ``uri`` names unless it exists; return True when it was created."""
    target = parse_postgres_uri(uri)
    connection = _connect(uri, target, MAINTENANCE_DATABASE)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,))
            if cursor.fetchone() is not None:
                return False
            try:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
            except psycopg2.errors.DuplicateDatabase:
                return False  # created by a concurrent caller
            return True
    finally:
        connection.close()


def drop_database(uri: str) -> None:
    """Drop the database ``uri`` names, disconnecting its sessions first (tests clean up with it)."""
    target = parse_postgres_uri(uri)
    connection = _connect(uri, target, MAINTENANCE_DATABASE)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target.database))
            )
    finally:
        connection.close()


def _connect(uri: str, target: PostgresTarget, database: str) -> psycopg2.extensions.connection:
    shown = mask_uri(uri)
    try:
        return psycopg2.connect(**target.connect_kwargs(database))
    except psycopg2.OperationalError as exc:
        text = mask_text(str(exc).strip(), [target.password or ""])
        if "FATAL" in text or "authentication" in text:
            reason = text.split("FATAL:", 1)[-1].strip().splitlines()[0]
            raise ConfigError(
                {"database URI": f"PostgreSQL at {target.host}:{target.port} refused {shown!r}: {reason}"},
                hint="Check the user and password in the URI.",
            ) from None
        raise BackingServiceError(
            f"PostgreSQL at {target.host}:{target.port} does not answer ({text.splitlines()[0]}). "
            "Start it (Debian: `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`; "
            "Docker: `docker compose up -d postgres`) and run again.",
            uri=shown,
        ) from None
