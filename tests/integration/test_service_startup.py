"""How the service starts and fails to: an unreachable or refusing registry, a taken port, a built Bento.

Loading is tested in process (the real resolver child, no server); the exit
codes of `mlfactor serve` and plain `bentoml serve` of a built Bento need processes.
"""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT_DIR, register_demo_model, store_environment
from inprocess import InProcessService, captured_events
from service_harness import IRIS_ROW, Server, free_port

from mlfactor.serving.asgi import ServingApp
from mlfactor.serving.core import ServingCore
from mlfactor.serving.state import WorkerState
from mlfactor.serving.worker import load_runtime
from mlfactor.settings import load_settings

MLFACTOR = str(Path(sys.executable).with_name("mlfactor"))
BENTOML = str(Path(sys.executable).with_name("bentoml"))


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every request 401, like a tracking server given a wrong password."""

    def _refuse(self) -> None:
        self.send_response(401)
        self.send_header("Content-Length", "12")
        self.end_headers()
        self.wfile.write(b"unauthorized")

    do_GET = do_POST = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


@pytest.fixture
def refusing_registry() -> Iterator[str]:
    """The URI of a tracking server that refuses every request with 401."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://user:wrong-password@127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _loading_service(env: dict[str, str]) -> tuple[InProcessService, threading.Thread, list[int | None]]:
    state = WorkerState(load_settings(env))
    core = ServingCore(state)
    outcome: list[int | None] = []
    loader = threading.Thread(target=lambda: outcome.append(load_runtime(state)), daemon=True)
    return InProcessService(env, state, core, ServingApp(core=core)), loader, outcome


def test_unreachable_registry_keeps_readyz_503_while_retrying_then_fails_69(
    store_env: dict[str, str],
) -> None:
    """No registry: /livez 200 and /readyz 503 while retrying for MLFACTOR_REGISTRY_WAIT, then code 69."""
    dead = free_port()
    env = {
        **store_env,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{dead}",
        "MLFACTOR_REGISTRY_WAIT": "6",  # loading lasts at least this long
        "MLFACTOR_BACKING_RETRIES": "1",
    }
    service, loader, outcome = _loading_service(env)
    with captured_events() as events, service.client() as client:
        loader.start()
        statuses = (client.get("/livez").status_code, client.get("/readyz").status_code)
        while_loading = not service.state.settled.is_set()
        loader.join(timeout=120)
    assert while_loading
    assert statuses == (200, 503)
    assert outcome == [69]
    failed = events.wait_for("model_load_failed")
    assert f"127.0.0.1:{dead}" in failed["message"]
    assert "attempts in 6 s" in failed["message"]


def test_refused_credentials_fail_at_once_with_78(store_env: dict[str, str], refusing_registry: str) -> None:
    """A registry refusing our credentials (401) is a configuration error: 78, no retry, no password."""
    env = {**store_env, "MLFLOW_TRACKING_URI": refusing_registry, "MLFACTOR_REGISTRY_WAIT": "60"}
    service, loader, outcome = _loading_service(env)
    with captured_events() as events:
        loader.start()
        loader.join(timeout=120)
    assert outcome == [78]
    assert events.named("model_load_retry") == []
    assert "refused" in (service.state.failed or "")
    assert "wrong-password" not in json.dumps(events.named("model_load_failed"))


def _run(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]  # every line must parse


def test_mlfactor_serve_stops_at_once_when_credentials_are_refused(
    store_env: dict[str, str], refusing_registry: str, tmp_path: Path
) -> None:
    """`mlfactor serve` against a registry refusing us stops by itself: exit 69, the cause's 78 logged."""
    env = {
        **store_env,
        "MLFLOW_TRACKING_URI": refusing_registry,
        "BENTOML_PORT": str(free_port()),
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "MLFACTOR_LOG_FORMAT": "json",
    }
    done = _run([MLFACTOR, "serve"], env, PROJECT_DIR)
    assert done.returncode == 69, done.stderr[-2000:]
    events = _json_lines(done.stdout)
    failed = [e for e in events if e["event"] == "model_load_failed"]
    assert failed and failed[0]["exit_code"] == 78
    assert "wrong-password" not in done.stdout


@pytest.mark.parametrize(
    ("argv", "variable"),
    [
        pytest.param([MLFACTOR, "serve"], "PORT", id="mlfactor-serve"),
        pytest.param(
            [BENTOML, "serve", "service:MlfactorService", "--working-dir", str(PROJECT_DIR)],
            "BENTOML_PORT",
            id="bentoml-serve",
        ),
    ],
)
def test_a_taken_port_exits_69_with_one_json_line_and_a_hint(
    store_env: dict[str, str], argv: list[str], variable: str
) -> None:
    """A port in use: exit 69, one JSON line naming the port and PORT= to use instead, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**store_env, variable: str(port), "MLFACTOR_LOG_FORMAT": "json"}
        done = _run(argv, env, PROJECT_DIR)
    assert done.returncode == 69
    [line] = _json_lines(done.stdout)
    assert line["event"] == "error" and line["exit_code"] == 69
    assert f"port {port}" in line["message"] and "PORT=" in line["message"]
    assert "Traceback" not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def built_bento(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str, str]:
    """A registered champion and the Bento `mlfactor build` makes of it (from a snapshot of the project)."""
    from mlfactor.release import build_bento

    folder = tmp_path_factory.mktemp("bento")
    project = folder / "project"
    shutil.copytree(
        PROJECT_DIR / "src" / "mlfactor",
        project / "src" / "mlfactor",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("bentofile.yaml", "service.py", "pyproject.toml", "requirements/runtime.txt"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_DIR / name, project / name)
    env = {**store_environment(folder), "MLFACTOR_PROJECT_DIR": str(project)}
    model = register_demo_model(env)
    result = build_bento(load_settings(model.env))
    return model.env, result.bento_tag, model.version


def test_plain_bentoml_serve_of_a_built_bento_serves_its_packed_model(
    built_bento: tuple[dict[str, str], str, str], tmp_path: Path
) -> None:
    """`bentoml serve TAG` with no mlfactor variable serves the packed version, never asking the registry."""
    env, tag, version = built_bento
    plain = {k: v for k, v in env.items() if not k.startswith("MLFACTOR_")}
    plain["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    port = free_port()
    plain["BENTOML_PORT"] = str(port)
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [BENTOML, "serve", tag], cwd=tmp_path, env=plain, stdout=out, stderr=err, start_new_session=True
        )
    server = Server(process, port, stdout, stderr)
    try:
        server.wait_ready(timeout=120)
        answer = server.post_json("/predict", {"records": [IRIS_ROW]})
        metadata = server.request("GET", "/metadata").json()
    finally:
        server.stop()
    assert answer.status == 200
    assert answer.json()["model"] == {"name": "iris-classifier", "version": version}
    assert metadata["model"]["source"] == "bento"
    assert not server.events("model_resolved")  # no registry resolution happened
