"""Backing services for the integration tests: a real `mlflow server` on PostgreSQL, and one to kill.

``tracking_server`` (session) runs ``mlfactor services up`` — the code behind
``make services`` — on a free port with a fresh PostgreSQL database, and stops
it with ``mlfactor services down``. Without PostgreSQL on 127.0.0.1:5432 it
skips, saying how to enable it; with ``TEST_REQUIRE_POSTGRES=1`` (set by
``.ci/run``) that skip becomes a failure.

:class:`KillableServer` is an ``mlflow server`` on an sqlite file that the
fault tests kill (SIGKILL, like a crashed host) and start again on the same
port and store.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
from conftest import store_environment
from service_harness import free_port

from mlfactor.database import drop_database
from mlfactor.stack import StackConfig, server_command

PROJECT_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
REQUIRE_POSTGRES = "TEST_REQUIRE_POSTGRES"
START_TIMEOUT_S = 240.0


def postgres_problem() -> str | None:
    """Why PostgreSQL on 127.0.0.1:5432 cannot be used, or None when it answers."""
    try:
        psycopg2.connect(
            host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", dbname="postgres", connect_timeout=3
        ).close()
    except psycopg2.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def require_postgres() -> None:
    """Skip (or fail, when TEST_REQUIRE_POSTGRES=1) unless PostgreSQL answers on 127.0.0.1:5432."""
    problem = postgres_problem()
    if problem is None:
        return
    message = (
        f"no PostgreSQL on {POSTGRES_HOST}:{POSTGRES_PORT} ({problem}). To run the PostgreSQL half, start "
        "one with trust auth for user postgres (Debian: `pg_ctlcluster --skip-systemctl-redirect "
        "$(ls /etc/postgresql) main start`; Docker: `docker run -d -p 127.0.0.1:5432:5432 "
        "-e POSTGRES_HOST_AUTH_METHOD=trust postgres:17`)."
    )
    if os.environ.get(REQUIRE_POSTGRES) == "1":
        pytest.fail(f"{REQUIRE_POSTGRES}=1 but {message}", pytrace=False)
    pytest.skip(message)


def client_environment(base: dict[str, str], tracking_uri: str) -> dict[str, str]:
    """Point ``base`` at an MLflow server: only MLFLOW_TRACKING_URI changes.

    The sqlite environment also names a local artifact folder so tests stay out
    of the project; against a server that is dropped, as a user never sets it:
    the server proxies artifacts (``mlflow-artifacts:/``).
    """
    env = {k: v for k, v in base.items() if k != "MLFACTOR_ARTIFACT_ROOT"}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


@dataclass
class StackProcess:
    """`mlfactor services up` running in the background, with its JSON log in a file."""

    process: subprocess.Popen[bytes]
    config: StackConfig
    log: Path

    @property
    def url(self) -> str:
        """The tracking URI clients use."""
        return self.config.tracking_uri

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Log lines of the stack parsed as JSON (every line must parse)."""
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        parsed = [json.loads(line) for line in lines if line.strip()]
        return [e for e in parsed if name is None or e.get("event") == name]

    def wait_ready(self) -> None:
        """Wait for the ``services_ready`` event; fail with the log tail when it exits or hangs."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"services up exited {self.process.returncode}:\n{self.tail()}")
            if '"services_ready"' in self.log.read_text(encoding="utf-8", errors="replace"):
                return
            time.sleep(0.3)
        raise AssertionError(f"services not ready after {START_TIMEOUT_S} s:\n{self.tail()}")

    def tail(self) -> str:
        """Return the last lines of the log, for failure messages."""
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])


def start_stack(folder: Path, database_uri: str, env: dict[str, str]) -> StackProcess:
    """Run ``mlfactor services up`` on a free port with its state in ``folder``."""
    config = StackConfig(
        database_uri=database_uri, port=free_port(), state_dir=folder / "services", workers=2
    )
    log = folder / "services.log"
    argv = [
        str(BIN / "mlfactor"),
        "services",
        "up",
        "--port",
        str(config.port),
        "--database-uri",
        database_uri,
        "--state-dir",
        str(config.state_dir),
        "--workers",
        str(config.workers),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=PROJECT_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return StackProcess(process, config, log)


def stop_stack(stack: StackProcess, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``mlfactor services down`` for ``stack``; kill its group if it is still alive after."""
    done = subprocess.run(
        [str(BIN / "mlfactor"), "services", "down", "--state-dir", str(stack.config.state_dir)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        stack.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill_group(stack.process)
    return done


def kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group the test started, and reap the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def tracking_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    """Body of the session fixture ``tracking_server`` (declared in tests/conftest.py, so it starts once)."""
    require_postgres()
    folder = tmp_path_factory.mktemp("tracking-server")
    env = store_environment(folder)
    name = f"mlfactor_test_{os.getpid()}_{secrets.token_hex(3)}"
    database_uri = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    stack = start_stack(folder, database_uri, env)
    try:
        stack.wait_ready()
        yield stack
    finally:
        stop_stack(stack, env)
        drop_database(database_uri)


@dataclass
class KillableServer:
    """An `mlflow server` on an sqlite store that a test may kill and start again (same port, same store)."""

    folder: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        """The tracking URI clients use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> StackConfig:
        """The same server configuration as `make services`, on an sqlite file."""
        return StackConfig(
            database_uri=f"sqlite:///{self.folder / 'server.db'}",
            port=self.port,
            state_dir=self.folder / "state",
            workers=1,
        )

    def start(self) -> None:
        """Start the server and wait until /health answers."""
        self.starts += 1
        self.config.artifacts_dir.mkdir(parents=True, exist_ok=True)
        log = self.folder / f"server-{self.starts}.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                server_command(self.config),
                env={**self.env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # as `make services`
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"mlflow server exited {self.process.returncode}: {log.read_text()[-3000:]}"
                )
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        raise AssertionError(
            f"mlflow server not healthy after {START_TIMEOUT_S} s: {log.read_text()[-3000:]}"
        )

    def ensure_running(self) -> None:
        """Start the server unless it runs."""
        if self.process is None or self.process.poll() is not None:
            self.start()

    def kill(self) -> None:
        """SIGKILL the whole server (parent and workers), as a crashed machine would."""
        if self.process is not None and self.process.poll() is None:
            kill_group(self.process)


def killable_server_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillableServer]:
    """Yield an mlflow server a module's tests may kill; always stopped at the end."""
    folder = tmp_path_factory.mktemp("killable-server")
    server = KillableServer(folder, free_port(), store_environment(folder))
    try:
        yield server
    finally:
        server.kill()


def run_mlfactor(
    env: dict[str, str], *args: str, timeout: float = 300, cwd: Path = PROJECT_DIR
) -> subprocess.CompletedProcess[str]:
    """Run the ``mlfactor`` command line with ``env``, capturing its output."""
    return subprocess.run(
        [str(BIN / "mlfactor"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` parsed as JSON (a line that does not parse fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def explain(done: subprocess.CompletedProcess[str]) -> str:
    """Exit code and output tails of a finished command, for assertion messages."""
    out, err = done.stdout[-4000:], done.stderr[-3000:]
    return f"exit {done.returncode}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
