"""Backing services failing: what the pipeline runner and the service do, and what the user reads.

The tracking server here is a real ``mlflow server`` the tests SIGKILL and start
again (:class:`backends.KillableServer`). A service that cannot reach the
registry for ``MLFACTOR_REGISTRY_WAIT`` seconds and then exits 69 is proven in
tests/integration/test_service_startup.py.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import (
    BIN,
    PROJECT_DIR,
    KillableServer,
    client_environment,
    explain,
    json_lines,
    killable_server_module,
    require_postgres,
    run_mlfactor,
)
from conftest import register_demo_model, store_environment
from service_harness import IRIS_ROW, free_port, start_service

pytestmark = pytest.mark.slow

WAITS = "tests/fixtures/backing/waits-then-logs.yaml"
REGISTERS = "tests/fixtures/backing/registers-and-promotes.yaml"
FAST_RETRIES = {"MLFACTOR_BACKING_RETRIES": "3", "MLFACTOR_BACKING_BACKOFF": "0.2"}


@pytest.fixture(scope="module")
def killable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillableServer]:
    """Yield an mlflow server these tests kill and restart; stopped at the end of the module."""
    yield from killable_server_module(tmp_path_factory)


def test_store_down_at_start_retries_then_exits_69_naming_the_uri(tmp_path: Path) -> None:
    """No tracking server: bounded retries with doubling back-off, exit 69, URI named, password masked."""
    port = free_port()
    env = {
        **client_environment(store_environment(tmp_path), f"http://mlfactor:s3cret-pass@127.0.0.1:{port}"),
        **FAST_RETRIES,
    }
    started = time.monotonic()
    done = run_mlfactor(env, "run", REGISTERS)
    elapsed = time.monotonic() - started
    assert done.returncode == 69, explain(done)
    assert f"http://mlfactor:***@127.0.0.1:{port}" in done.stderr
    assert "is unavailable after 3 attempts" in done.stderr
    assert "s3cret-pass" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    events = json_lines(done.stdout)
    retries = [e for e in events if e["event"] == "backing_service_retry"]
    assert [e["delay_s"] for e in retries] == [0.2, 0.4]
    assert not [e for e in events if e["event"] == "step_started"]  # no kernel was started
    assert elapsed < 120  # MLflow alone would retry each attempt for about four minutes


WRONG_DATABASE = "postgresql://postgres:pw-123456@127.0.0.1:5432/mlfactor_no_such_db"
WRONG_USER = "postgresql://no_such_role_xyz:pw-123456@127.0.0.1:5432/postgres"


@pytest.mark.parametrize(
    ("command", "uri", "says"),
    [
        ("run", WRONG_DATABASE, 'database "mlfactor_no_such_db" does not exist'),
        ("run", WRONG_USER, 'role "no_such_role_xyz" does not exist'),
        # `make services` creates a missing database (the tracking_server fixture relies on it); a wrong
        # user it cannot fix.
        ("services", WRONG_USER, 'role "no_such_role_xyz" does not exist'),
    ],
    ids=["run-wrong-database", "run-wrong-user", "services-wrong-user"],
)
@pytest.mark.postgres
def test_wrong_database_or_user_is_a_clear_error(tmp_path: Path, command: str, uri: str, says: str) -> None:
    """A PostgreSQL URI naming a missing database or role: exit 78, the server's reason, no traceback."""
    require_postgres()
    env = {**store_environment(tmp_path), "MLFLOW_TRACKING_URI": uri, **FAST_RETRIES}
    if command == "run":
        done = run_mlfactor(env, "run", REGISTERS)
    else:
        state = str(tmp_path / "services")
        port = str(free_port())
        done = run_mlfactor(
            env, "services", "up", "--port", port, "--database-uri", uri, "--state-dir", state
        )
    assert done.returncode == 78, explain(done)
    assert says in done.stderr
    assert "pw-123456" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_server_killed_mid_pipeline_fails_the_step_with_69_and_a_rerun_succeeds(
    killable_server: KillableServer, tmp_path: Path
) -> None:
    """Tracking server SIGKILLed during a step: exit 69 in bounded time; after a restart a re-run passes."""
    killable_server.ensure_running()
    env = {**client_environment(store_environment(tmp_path), killable_server.url), **FAST_RETRIES}
    ready, go = tmp_path / "ready", tmp_path / "go"
    argv = [
        str(BIN / "mlfactor"),
        "run",
        WAITS,
        "-p",
        f"wait.ready_file={ready}",
        "-p",
        f"wait.go_file={go}",
        "--output-dir",
        str(tmp_path / "runs"),
    ]
    with (tmp_path / "first.out").open("wb") as out, (tmp_path / "first.err").open("wb") as err:
        process = subprocess.Popen(argv, cwd=PROJECT_DIR, env=env, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 180
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), (tmp_path / "first.err").read_text()[-3000:]
        killable_server.kill()
        go.write_text("go")
        code = process.wait(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stdout, stderr = (tmp_path / "first.out").read_text(), (tmp_path / "first.err").read_text()
    assert code == 69, f"exit {code}\n{stdout[-3000:]}\n{stderr[-3000:]}"
    assert f"127.0.0.1:{killable_server.port}" in stderr
    assert "Traceback" not in stderr
    assert all(isinstance(line, dict) for line in json_lines(stdout))

    killable_server.start()
    again = run_mlfactor(env, *argv[1:])
    assert again.returncode == 0, explain(again)


def test_service_waits_for_the_registry_then_keeps_answering_without_it(
    killable_server: KillableServer, tmp_path: Path
) -> None:
    """Registry down at start: /readyz 503 while retrying, 200 once it is back; answers on after it dies."""
    killable_server.ensure_running()
    env = client_environment(store_environment(tmp_path), killable_server.url)
    register_demo_model(env)
    killable_server.kill()
    service = start_service(
        env,
        tmp_path / "service",
        command="mlfactor",
        wait=False,
        extra={"MLFACTOR_REGISTRY_WAIT": "240", **FAST_RETRIES},
    )
    try:
        statuses = poll_readyz(service, answers=10, seconds=120)
        assert len(statuses) == 10 and set(statuses) == {503}, statuses
        assert service.process.poll() is None
        killable_server.start()
        service.wait_ready(timeout=240)
        assert service.post_json("/predict", {"records": [IRIS_ROW]}).status == 200

        killable_server.kill()
        for _ in range(3):
            answer = service.post_json("/predict", {"records": [IRIS_ROW]})
            assert answer.status == 200, answer.body
            assert answer.json()["model"]["name"] == "iris-classifier"
        assert service.request("GET", "/readyz").status == 200
    finally:
        service.stop()


def poll_readyz(service: Any, answers: int, seconds: float) -> list[int]:
    """Collect ``answers`` statuses of /readyz within ``seconds``, skipping refusals while it boots."""
    statuses: list[int] = []
    deadline = time.monotonic() + seconds
    while len(statuses) < answers and time.monotonic() < deadline and service.process.poll() is None:
        with contextlib.suppress(OSError):
            statuses.append(service.request("GET", "/readyz", timeout=2).status)
        time.sleep(0.3)
    return statuses
