"""docker-compose.yml: the same stack as `make services` (schema: integration/test_compose_schema.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """Parse docker-compose.yml once for the module."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


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
