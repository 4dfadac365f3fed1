"""The mlfactor command as a user runs it: config, exit codes, fast help, usage errors, lab, ui."""

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

import pytest
from conftest import PROJECT_DIR, store_environment

from mlfactor.cli.main import COMMANDS
from mlfactor.errors import ExitCode

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


# Each entry is one user command; every one of them must answer without MLflow or BentoML.
FAST_COMMANDS = [
    ["--help"],
    ["config"],
    ["validate", "pipelines/train.yaml"],
    *([name, "--help"] for name in COMMANDS),
    *(["admin", job, "--help"] for job in ("batch-score", "gc", "db-upgrade")),
    ["deploy", "render", "--help"],
    *(["services", sub, "--help"] for sub in ("up", "down")),
]
_PROBE = """
import json, sys
from mlfactor.cli import main
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("mlflow", "bentoml") if m in sys.modules)
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "heavy": heavy}, out)
"""


@pytest.mark.parametrize("args", FAST_COMMANDS, ids=" ".join)
def test_everyday_commands_import_neither_mlflow_nor_bentoml(tmp_path: Path, args: list[str]) -> None:
    """`--help` of every command, `config` and `validate` answer without importing MLflow or BentoML."""
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args],
        env=store_environment(tmp_path),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(report.read_text())
    assert result == {"code": 0, "heavy": []}, done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["admin", "gc", "--older-than", "30 days"],
            "Invalid value for '--older-than': '30 days' is not a duration",
        ),
        (
            ["deploy", "render", "current", "--out", "x", "--memory", "1gb"],
            "Invalid value for '--memory': '1gb' is not a quantity",
        ),
        (
            ["deploy", "render", "current", "--out", "x", "--cpu-target", "150"],
            "Invalid value for '--cpu-target'",
        ),
    ],
    ids=["duration", "quantity", "percentage"],
)
def test_bad_option_values_are_usage_errors(tmp_path: Path, args: list[str], says: str) -> None:
    """A malformed duration or quantity exits 2 naming the option and value, before any store is reached."""
    done = _run(args, store_environment(tmp_path))
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_only_each_command_s_own_exit_codes(tmp_path: Path) -> None:
    """`validate --help` names no step failure or timeout; `run --help` does; the root lists every code."""
    env = store_environment(tmp_path)
    validate_help, run_help, root_help = (
        " ".join(_run([*args, "--help"], env).stdout.split()) for args in (["validate"], ["run"], [])
    )
    assert "65 a file has a problem" in validate_help
    assert "step" not in validate_help.split("Exit codes:")[1]
    assert "1 a step failed" in run_help and "3 a step timed out" in run_help
    assert all(f"{int(code)} " in root_help.split("Exit codes:")[1] for code in ExitCode)


def test_ui_names_the_server_of_an_http_store(tmp_path: Path) -> None:
    """With an http:// tracking server, `mlfactor ui` says where its UI is instead of starting one."""
    env = store_environment(tmp_path)
    env["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:5999"
    done = _run(["ui"], env)
    assert done.returncode == 0, done.stderr
    assert "open http://127.0.0.1:5999" in done.stderr


def test_ui_serves_the_configured_store(tmp_path: Path) -> None:
    """`mlfactor ui` runs the MLflow UI on the sqlite store the pipelines use: its experiments are listed."""
    from mlflow.tracking import MlflowClient

    env = store_environment(tmp_path)
    MlflowClient(env["MLFLOW_TRACKING_URI"]).create_experiment("seen-in-the-ui")
    port = _free_port()
    proc = subprocess.Popen(
        [MLFACTOR, "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"
    try:
        deadline = time.monotonic() + 120
        body = None
        while time.monotonic() < deadline and body is None and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    body = json.loads(response.read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, f"the MLflow UI did not answer (exit code {proc.poll()})"
        assert "seen-in-the-ui" in [e["name"] for e in body["experiments"]]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_make_help_has_no_colour_codes_off_a_terminal() -> None:
    """`make help` piped into a file or program prints plain text, every target with its line."""
    done = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    )
    assert "\x1b[" not in done.stdout
    assert "  ui " in done.stdout and "  bench-cli " in done.stdout


def test_mlflow_s_own_log_lines_join_the_json_stream(tmp_path: Path) -> None:
    """MLflow, imported after logging is configured, logs JSON on stdout too, never plain text on stderr."""
    # `run` imports MLflow only after it configured logging; on a fresh store MLflow logs creating
    # its tables, then the command stops: there is no release to render the sweep for.
    args = ["run", "pipelines/train.yaml", "--sweep", "train.C=1,2", "--render-k8s", str(tmp_path / "k8s")]
    done = subprocess.run(
        [MLFACTOR, *args], env=store_environment(tmp_path), cwd=PROJECT_DIR, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 66, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert any(e.get("logger", "").startswith("mlflow.store") for e in events), done.stdout
    assert "mlflow.store.db.utils" not in done.stderr
