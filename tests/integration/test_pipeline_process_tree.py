"""No process left behind: a step's setsid grandchild is ended on timeout, failure and SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import store_environment
from pipeline_harness import Finished, Running, fixture, write_pipeline
from waiting import wait_until

pytestmark = pytest.mark.slow

SCENARIOS = {
    "timeout": {"outcome": "sleep", "timeout": "20s"},
    "failure": {"outcome": "fail"},
    "sigterm": {"outcome": "sleep"},
}


@dataclass
class Ended:
    """A finished run and the PID its notebook's grandchild had."""

    result: Finished
    pid: int


def _wait_for(path: Path, running: Running, timeout: float = 180) -> int:
    """The PID written to ``path`` by the notebook (the runner must still be running meanwhile)."""
    wait_until(
        path.is_file,
        timeout=timeout,
        what="the notebook never started its grandchild",
        alive=lambda: None if running.proc.poll() is None else running.err_path.read_text(),
    )
    return int(path.read_text())


def _gone(pid: int) -> bool:
    """True when no live process has ``pid`` (a zombie waiting for init counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def ended(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Ended]]:
    """Run the three scenarios at once; SIGTERM the third once its grandchild runs."""
    started: dict[str, tuple[Running, Path]] = {}
    for name, options in SCENARIOS.items():
        folder = tmp_path_factory.mktemp(name)
        pid_file = folder / "grandchild.pid"
        step: dict[str, object] = {
            "name": "spawn",
            "notebook": fixture("starts-setsid-grandchild.ipynb"),
            "parameters": {"pid_file": str(pid_file), "outcome": options["outcome"]},
        }
        if "timeout" in options:
            step["timeout"] = options["timeout"]
        path = write_pipeline(folder, name, [step])
        args = ["run", str(path), "--output-dir", str(folder / "out")]
        started[name] = (Running(args, store_environment(folder), folder / "proc"), pid_file)
    pids = {name: _wait_for(pid_file, running) for name, (running, pid_file) in started.items()}
    assert not _gone(pids["timeout"]) and not _gone(pids["sigterm"]), "the sleeping steps' grandchildren run"
    started["sigterm"][0].proc.send_signal(signal.SIGTERM)
    yield {name: Ended(running.wait(timeout=240), pids[name]) for name, (running, _) in started.items()}


@pytest.mark.parametrize(("name", "code"), [("timeout", 3), ("failure", 1), ("sigterm", 143)])
def test_the_grandchild_is_gone_when_the_run_ends(ended: dict[str, Ended], name: str, code: int) -> None:
    """The run exits with its code and the grandchild, in its own session, no longer runs."""
    run = ended[name]
    assert run.result.returncode == code, run.result.stderr
    assert _gone(run.pid), f"grandchild {run.pid} still runs after the {name}"
