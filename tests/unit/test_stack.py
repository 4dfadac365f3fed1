"""The local stack's pieces: server command line, JSON log lines, pid-file stop, database URIs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mlfactor.database import parse_postgres_uri
from mlfactor.errors import ConfigError
from mlfactor.log import configure_logging, get_logger
from mlfactor.stack import PID_FILE, StackConfig, _forward_line, server_command, stop_stack


def test_server_command_proxies_artifacts_and_allows_its_own_host(tmp_path: Path) -> None:
    """The mlflow server gets the PostgreSQL store, artifact proxying to the state folder, its host names."""
    config = StackConfig(database_uri="postgresql://postgres@127.0.0.1:5432/x", port=5123, state_dir=tmp_path)
    command = server_command(config)
    assert command[1] == "server"
    assert command[command.index("--backend-store-uri") + 1] == "postgresql://postgres@127.0.0.1:5432/x"
    assert "--serve-artifacts" in command
    assert command[command.index("--artifacts-destination") + 1] == str((tmp_path / "artifacts").resolve())
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "5123"
    hosts = command[command.index("--allowed-hosts") + 1].split(",")
    assert {"127.0.0.1", "localhost", "127.0.0.1:5123", "localhost:5123"} <= set(hosts)
    assert config.tracking_uri == "http://127.0.0.1:5123"


@pytest.mark.parametrize(
    ("line", "level", "source", "message"),
    [
        (
            "2026/11/26 12:49:59 WARNING mlflow.store.db.utils: retrying",
            "warning",
            "mlflow.store.db.utils",
            "retrying",
        ),
        (
            "2026/11/26 12:55:33 INFO:     Uvicorn running on http://127.0.0.1:5077",
            "info",
            "uvicorn",
            "Uvicorn running on http://127.0.0.1:5077",
        ),
        (
            "/x/fastapi_app.py:23: StarletteDeprecationWarning: old",
            "warning",
            "mlflow.server",
            "/x/fastapi_app.py:23: StarletteDeprecationWarning: old",
        ),
        ("something else", "info", "mlflow.server", "something else"),
    ],
    ids=["mlflow-logger", "uvicorn", "python-warning", "plain-text"],
)
def test_server_lines_become_json_events(
    capsys: pytest.CaptureFixture[str], line: str, level: str, source: str, message: str
) -> None:
    """Each line the server prints is re-emitted as one JSON event with its level and source."""
    configure_logging("INFO", "json", stream=sys.stdout)
    try:
        _forward_line(line + "\n", get_logger("test.stack"))
        out = capsys.readouterr().out.strip().splitlines()
    finally:
        logging.getLogger().handlers.clear()
    assert len(out) == 1
    data = json.loads(out[0])
    assert (data["event"], data["level"], data["source"], data["message"]) == (
        "mlflow_server_output",
        level,
        source,
        message,
    )


def test_json_lines_pass_through_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    """A line that already is JSON (mlfactor's own children) is written as it is."""
    _forward_line('{"event": "db_upgraded", "level": "info"}\n', get_logger("test.stack"))
    assert capsys.readouterr().out == '{"event": "db_upgraded", "level": "info"}\n'


def write_record(state: Path, pid: int, created: float) -> None:
    """Write a pid file as `mlfactor services up` does."""
    state.mkdir(parents=True, exist_ok=True)
    (state / PID_FILE).write_text(
        json.dumps({"pid": pid, "created": created, "server_pid": 0, "tracking_uri": "http://127.0.0.1:1"})
    )


def test_stop_without_a_record_changes_nothing(tmp_path: Path) -> None:
    """`services down` with no pid file reports there is nothing to stop."""
    result = stop_stack(StackConfig(state_dir=tmp_path))
    assert result["stopped"] is False and "no running stack" in result["reason"]


def test_stop_stops_only_the_recorded_process(tmp_path: Path) -> None:
    """The recorded process is stopped; a record whose pid now belongs to another process is only removed."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        created = psutil.Process(child.pid).create_time()
        write_record(tmp_path, child.pid, created - 100)  # same pid, different process: a reused pid
        result = stop_stack(StackConfig(state_dir=tmp_path))
        assert result["stopped"] is False and "stale" in result["reason"]
        assert child.poll() is None
        assert not (tmp_path / PID_FILE).exists()

        write_record(tmp_path, child.pid, created)
        result = stop_stack(StackConfig(state_dir=tmp_path))
        assert result == {"stopped": True, "pid": child.pid, "tracking_uri": "http://127.0.0.1:1"}
        deadline = time.monotonic() + 10
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.returncode == -15
        assert not (tmp_path / PID_FILE).exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_postgres_uri_parts_and_bad_uris() -> None:
    """PostgreSQL URIs split into their parts; anything else is a ConfigError with the password masked."""
    target = parse_postgres_uri("postgresql+psycopg2://bob:s%40cret@db.local:6543/mlflow")
    assert (target.host, target.port, target.user, target.password, target.database) == (
        "db.local",
        6543,
        "bob",
        "s@cret",
        "mlflow",
    )
    with pytest.raises(ConfigError) as raised:
        parse_postgres_uri("mysql://bob:hunter22@db/mlflow")
    assert "hunter22" not in str(raised.value) and "postgresql://" in str(raised.value)
