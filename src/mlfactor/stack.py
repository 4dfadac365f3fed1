"""The local production-like stack: an ``mlflow server`` backed by PostgreSQL (factor X).

``make services`` runs :func:`run_stack` in the foreground: it creates the
database if it is missing, migrates its schema with ``mlfactor admin
db-upgrade``, then starts ``mlflow server`` on 127.0.0.1 with the PostgreSQL
backend store, artifacts proxied by the server (``--serve-artifacts``) into a
local folder and the allowed Host headers set. Every line the server prints is
re-emitted as one JSON event. A pid file in ``.services/`` lets
``make services-stop`` (:func:`stop_stack`) stop exactly the process it started.

Users then point mlfactor at it by changing one variable:
``MLFLOW_TRACKING_URI=http://127.0.0.1:5000``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from mlfactor.errors import BackingServiceError, ValidationError
from mlfactor.log import event, get_logger
from mlfactor.masking import mask_uri
from mlfactor.settings import Settings
from mlfactor.signals import StopRequest, handle_stop_signals

logger = get_logger("mlfactor.stack")
server_logger = get_logger("mlfactor.stack.mlflow_server")

DEFAULT_DATABASE_URI = "postgresql://postgres@127.0.0.1:5432/mlfactor"
PID_FILE = "mlflow-server.json"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0

# "2026/11/26 12:49:59 INFO mlflow.store.db.utils: text" and uvicorn's "INFO:     text"
_MLFLOW_LINE = re.compile(
    r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<msg>.*)$"
)
_UVICORN_LINE = re.compile(
    r"^(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL):\s+(?P<msg>.*)$"
)
_WARNING_LINE = re.compile(r"^\S+\.py:\d+: \w*Warning: ")


@dataclass(frozen=True)
class StackConfig:
    """Where the local stack keeps its state and how its server listens."""

    database_uri: str = DEFAULT_DATABASE_URI
    host: str = "127.0.0.1"
    port: int = 5000
    state_dir: Path = Path(".services")
    workers: int = 2

    @property
    def artifacts_dir(self) -> Path:
        """Folder the server stores proxied artifacts in."""
        return self.state_dir / "artifacts"

    @property
    def pid_file(self) -> Path:
        """The record of the running supervisor and server processes."""
        return self.state_dir / PID_FILE

    @property
    def tracking_uri(self) -> str:
        """The one value a user sets (``MLFLOW_TRACKING_URI``) to use this stack."""
        return f"http://{self.host}:{self.port}"

    @property
    def allowed_hosts(self) -> str:
        """Host headers the server accepts: its own address and localhost, on its port."""
        names = dict.fromkeys([self.host, "127.0.0.1", "localhost"])
        return ",".join([*names, *(f"{name}:{self.port}" for name in names)])


def server_command(config: StackConfig) -> list[str]:
    """Return the ``mlflow server`` command line of the stack."""
    return [
        _sibling_executable("mlflow"),
        "server",
        "--backend-store-uri",
        config.database_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        str(config.artifacts_dir.resolve()),
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--workers",
        str(config.workers),
        "--allowed-hosts",
        config.allowed_hosts,
    ]


def _sibling_executable(name: str) -> str:
    """Find the console script ``name`` installed beside this Python (the project's .venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def upgrade_schema(config: StackConfig, settings: Settings) -> None:
    """Migrate the database schema with ``mlfactor admin db-upgrade``; raise when it fails."""
    env = settings.child_environment(
        {"MLFLOW_TRACKING_URI": config.database_uri, "MLFLOW_REGISTRY_URI": config.database_uri}
    )
    command = [_sibling_executable("mlfactor"), "admin", "db-upgrade"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        _forward_line(line, logger)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackingServiceError(
            f"migrating the schema of {mask_uri(config.database_uri)} failed: `mlfactor admin db-upgrade` "
            f"exited {done.returncode}: {detail}",
            uri=mask_uri(config.database_uri),
        )
    event(logger, "database_migrated", database=mask_uri(config.database_uri))


def _forward_line(line: str, target: Any) -> None:
    """Re-emit one line of a child's output: JSON lines as they are, text as a JSON event."""
    text = line.rstrip()
    if not text:
        return
    if text.startswith("{"):
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            return
    levels = logging.getLevelNamesMapping()
    level, source, message = logging.INFO, "mlflow.server", text
    if match := _MLFLOW_LINE.match(text):
        level, source, message = levels.get(match["level"], logging.INFO), match["logger"], match["msg"]
    elif match := _UVICORN_LINE.match(text):
        level, source, message = levels.get(match["level"], logging.INFO), "uvicorn", match["msg"]
    elif _WARNING_LINE.match(text):
        level = logging.WARNING
    event(target, "mlflow_server_output", level=level, source=source, message=message)


def _pump(stream: Iterable[str] | None) -> None:
    if stream is None:
        return
    for line in stream:
        _forward_line(line, server_logger)


def read_pid_file(config: StackConfig) -> dict[str, Any] | None:
    """Return the running stack's record, or None when there is none."""
    try:
        data: dict[str, Any] = json.loads(config.pid_file.read_text())
    except (OSError, ValueError):
        return None
    return data


def _write_pid_file(config: StackConfig, record: dict[str, Any]) -> None:
    """Write the record next to its final place, then move it in (never half-written)."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    temporary = config.pid_file.with_suffix(".tmp")
    temporary.write_text(json.dumps(record))
    temporary.replace(config.pid_file)


def _is_our_supervisor(pid: int, record: dict[str, Any]) -> bool:
    """Tell whether ``pid`` is alive and still the process that wrote ``record`` (no reused pid)."""
    try:
        process = psutil.Process(pid)
        return bool(abs(process.create_time() - float(record.get("created", 0))) < 1.0)
    except (psutil.Error, ValueError, TypeError):
        return False


def _check_free(config: StackConfig) -> None:
    record = read_pid_file(config)
    if record is not None and _is_our_supervisor(int(record.get("pid", 0)), record):
        raise ValidationError(
            "make services",
            [
                f"the local stack is already running at {record.get('tracking_uri')} "
                f"(pid {record.get('pid')}); "
                "stop it with `make services-stop` first"
            ],
        )
    import requests  # heavy; `mlfactor services --help` only needs StackConfig

    try:
        answer = requests.get(f"{config.tracking_uri}/health", timeout=2)
    except requests.RequestException:
        return
    raise ValidationError(
        "make services",
        [
            f"something already answers on {config.tracking_uri} (HTTP {answer.status_code}); "
            "pick another port, e.g. `make services SERVICES_PORT=5001`"
        ],
    )


def wait_until_healthy(url: str, process: subprocess.Popen[str], timeout: float = READY_TIMEOUT_S) -> bool:
    """Poll ``url``/health until it answers 200; False when the process died or time ran out."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.25)
    return False


def start_server(config: StackConfig, settings: Settings) -> subprocess.Popen[str]:
    """Start ``mlflow server`` in its own process group, output piped for :func:`_pump`."""
    config.artifacts_dir.mkdir(parents=True, exist_ok=True)
    env = settings.child_environment({"PYTHONUNBUFFERED": "1"})
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)  # the server's stores are its options, not the client's variables
    # MLflow's GenAI job runner (a job process plus seven huey consumers) serves nothing mlfactor
    # uses and slows the start on small machines; set the variable to true to keep it.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return subprocess.Popen(
        server_command(config),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop_process_group(process: subprocess.Popen[str], timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM the process group of ``process``, SIGKILL it after ``timeout``; return the exit code."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            return process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


def run_stack(config: StackConfig, settings: Settings) -> int:
    """Prepare the database and run the server in the foreground until SIGINT/SIGTERM; return 0.

    Raises BackingServiceError (69) when PostgreSQL does not answer or the server
    dies, ConfigError (78) when PostgreSQL refuses the user, ValidationError (65)
    when the stack already runs or the port is taken.
    """
    _check_free(config)
    from mlfactor.database import ensure_database

    created = ensure_database(config.database_uri)
    event(logger, "database_ready", database=mask_uri(config.database_uri), created=created)
    upgrade_schema(config, settings)
    stop = StopRequest()
    with handle_stop_signals(stop):
        process = start_server(config, settings)
        pump = threading.Thread(target=_pump, args=(process.stdout,), daemon=True)
        pump.start()
        me = psutil.Process()
        _write_pid_file(
            config,
            {
                "pid": me.pid,
                "created": me.create_time(),
                "server_pid": process.pid,
                "tracking_uri": config.tracking_uri,
                "database": mask_uri(config.database_uri),
            },
        )
        try:
            return _supervise(config, process, stop)
        finally:
            stop_process_group(process)
            pump.join(timeout=5)
            config.pid_file.unlink(missing_ok=True)
            event(logger, "services_stopped", tracking_uri=config.tracking_uri)


def _supervise(config: StackConfig, process: subprocess.Popen[str], stop: StopRequest) -> int:
    if not wait_until_healthy(config.tracking_uri, process):
        if stop.requested:
            return 0
        raise BackingServiceError(
            f"mlflow server on {config.tracking_uri} did not become healthy (exit code {process.poll()}); "
            "see its log lines above.",
            uri=config.tracking_uri,
        )
    event(
        logger,
        "services_ready",
        tracking_uri=config.tracking_uri,
        server_pid=process.pid,
        artifacts=str(config.artifacts_dir.resolve()),
        hint=f"export MLFLOW_TRACKING_URI={config.tracking_uri}",
    )
    while not stop.received.wait(0.2):
        if process.poll() is not None:
            raise BackingServiceError(
                f"mlflow server on {config.tracking_uri} exited unexpectedly with code {process.returncode}.",
                uri=config.tracking_uri,
            )
    event(logger, "services_stopping", signal=stop.signum)
    return 0


def stop_stack(config: StackConfig) -> dict[str, Any]:
    """Stop the stack recorded in the pid file, and only it; say what was done."""
    record = read_pid_file(config)
    if record is None:
        return {"stopped": False, "reason": f"no running stack recorded in {config.pid_file}"}
    pid = int(record.get("pid", 0))
    if not _is_our_supervisor(pid, record):
        config.pid_file.unlink(missing_ok=True)
        return {"stopped": False, "reason": f"stale record removed: process {pid} is gone"}
    os.kill(pid, signal.SIGTERM)
    for _ in _poll(STOP_TIMEOUT_S + 5):
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
    else:
        _kill_group(int(record.get("server_pid", 0)))
        os.kill(pid, signal.SIGKILL)
    config.pid_file.unlink(missing_ok=True)
    return {"stopped": True, "pid": pid, "tracking_uri": record.get("tracking_uri")}


def _kill_group(pid: int) -> None:
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _poll(seconds: float, interval: float = 0.2) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        yield
        time.sleep(interval)
