"""The mlfactor command as a user runs it: config, exit codes, lab."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import store_environment

MLFACTOR = str(Path(sys.executable).with_name("mlfactor"))


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MLFACTOR, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_config_prints_masked_json(tmp_path: Path) -> None:
    """`mlfactor config --json` shows every variable, with the URI password masked."""
    env = store_environment(tmp_path)
    env["MLFLOW_TRACKING_URI"] = "postgresql://ml:pw-canary-42@127.0.0.1:5432/mlflow"
    done = _run(["config", "--json"], env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["MLFLOW_TRACKING_URI"]["value"] == "postgresql://ml:***@127.0.0.1:5432/mlflow"
    assert data["MLFACTOR_MODEL_ALIAS"] == {"value": "champion", "source": "default"}
    assert "pw-canary-42" not in done.stdout + done.stderr


def test_invalid_configuration_exits_78_listing_every_problem(tmp_path: Path) -> None:
    """Two bad variables give exit 78, one message naming both, a JSON error event and no traceback."""
    env = store_environment(tmp_path)
    env.update({"MLFACTOR_LOG_FORMAT": "xml", "MLFACTOR_WORKERS": "zero", "DB_PASSWORD": "x"})
    done = _run(["config"], env)
    assert done.returncode == 78
    assert "MLFACTOR_LOG_FORMAT" in done.stderr
    assert "MLFACTOR_WORKERS" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["event"] == "error"
    assert events[-1]["exit_code"] == 78


def test_misspelt_command_suggests_the_right_one(tmp_path: Path) -> None:
    """A typo in a command name is a usage error (exit 2) with a suggestion."""
    done = _run(["confg"], store_environment(tmp_path))
    assert done.returncode == 2
    assert "Did you mean 'config'?" in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_lab_serves_jupyterlab_with_the_pipeline_environment(tmp_path: Path) -> None:
    """`mlfactor lab` starts JupyterLab on 127.0.0.1 whose kernels see the configured tracking store."""
    env = store_environment(tmp_path)
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    port = _free_port()
    token = "test-token-123"
    proc = subprocess.Popen(
        [MLFACTOR, "lab", "--no-browser", "--port", str(port), f"--IdentityProvider.token={token}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/kernelspecs?token={token}", timeout=2
                ) as response:
                    body = json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, "JupyterLab did not answer within 60 s"
        assert "python3" in body["kernelspecs"]
        status = psutil_environment(proc.pid)
        assert status.get("MLFLOW_TRACKING_URI") == env["MLFLOW_TRACKING_URI"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def psutil_environment(pid: int) -> dict[str, str]:
    """The environment of process ``pid`` (JupyterLab hands it to every kernel it starts)."""
    import psutil

    return dict(psutil.Process(pid).environ())
