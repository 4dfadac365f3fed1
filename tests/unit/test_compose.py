"""docker-compose.yml: valid against the Compose specification and the same stack as `make services`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """Validate ``path`` with check-jsonschema's vendored Compose specification schema."""
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """Parse docker-compose.yml once for the module."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def test_compose_file_follows_the_compose_specification() -> None:
    """check-jsonschema accepts docker-compose.yml against the vendored compose-spec schema."""
    done = validate(COMPOSE_FILE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("original", "broken"),
    [
        ("    restart: unless-stopped\n", "    restart: unless-stopped\n    restat: always\n"),
        ("        condition: service_healthy\n", "        condition: when-it-feels-like-it\n"),
    ],
    ids=["misspelt-key", "bad-depends-on-condition"],
)
def test_a_broken_compose_file_is_rejected(tmp_path: Path, original: str, broken: str) -> None:
    """The same validation fails on a copy with one mistake, so the check above can fail."""
    text = COMPOSE_FILE.read_text()
    assert original in text
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(text.replace(original, broken, 1))
    done = validate(copy)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "validation error" in (done.stdout + done.stderr).lower()


def test_compose_runs_postgres_minio_and_an_artifact_proxying_mlflow_server(compose: dict[str, Any]) -> None:
    """The MLflow server uses PostgreSQL, proxies artifacts to MinIO and accepts its service name."""
    services = compose["services"]
    assert {"postgres", "minio", "mlflow", "migrate", "minio-init"} <= set(services)
    command = services["mlflow"]["command"]
    backend = command[command.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql+psycopg2://") and "@postgres:5432/" in backend
    assert "--serve-artifacts" in command
    assert command[command.index("--artifacts-destination") + 1] == "s3://mlflow"
    environment = services["mlflow"]["environment"]
    assert environment["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "mlflow:5000" in environment["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    depends = services["mlflow"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"][:3] == ["mlflow", "db", "upgrade"]


def test_compose_publishes_only_on_localhost_and_holds_no_password(compose: dict[str, Any]) -> None:
    """Ports bind to 127.0.0.1 and every password comes from the environment, required."""
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    text = COMPOSE_FILE.read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "${MINIO_ROOT_PASSWORD:?" in text
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key or "SECRET" in key:
                assert str(value).startswith("${"), f"{key} is hard-coded"
