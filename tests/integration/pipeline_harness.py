"""Helpers for the pipeline tests: write pipeline files, run `mlfactor run` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml
from waiting import wait_until

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_DIR / "tests" / "fixtures" / "notebooks"
MLFACTOR = [sys.executable, "-c", "from mlfactor.cli import main; main()"]


def fixture(name: str) -> str:
    """Absolute path of a fixture notebook."""
    return str(FIXTURES / name)


def write_pipeline(folder: Path, name: str, steps: list[dict[str, Any]], **top: Any) -> Path:
    """Write ``folder/name.yaml`` with ``steps`` and any top-level keys."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump({"name": name, "experiment": "tests", **top, "steps": steps}, sort_keys=False)
    )
    return path


@dataclass
class Finished:
    """A finished `mlfactor` process."""

    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as JSON (fails the test when one is not JSON)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def summary(self) -> dict[str, Any]:
        """The final JSON line."""
        return self.events[-1]

    def named(self, name: str) -> list[dict[str, Any]]:
        """Log events called ``name``."""
        return [e for e in self.events if e.get("event") == name]


class Running:
    """A `mlfactor` process started in its own session, output captured to files."""

    def __init__(self, args: list[str], env: dict[str, str], folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = folder / "stdout", folder / "stderr"
        self.started = time.monotonic()
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.proc = subprocess.Popen(
                [*MLFACTOR, *args], stdout=out, stderr=err, env=env, cwd=PROJECT_DIR, start_new_session=True
            )

    def wait(self, timeout: float = 240) -> Finished:
        """Wait for exit (killing the process group on timeout) and return its output."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise
        return Finished(
            self.proc.returncode,
            self.out_path.read_text(),
            self.err_path.read_text(),
            time.monotonic() - self.started,
        )

    def descendants(self) -> list[psutil.Process]:
        """Every process below the runner (kernels and what they started)."""
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def wait_for_descendant(self, predicate: Any, timeout: float = 120) -> list[psutil.Process]:
        """Wait until a descendant matching ``predicate(cmdline)`` runs; return all descendants then."""

        def matching() -> list[psutil.Process] | None:
            found = self.descendants()
            for proc in found:
                try:
                    if predicate(proc.cmdline()):
                        return found
                except psutil.Error:
                    continue
            return None

        def died() -> str | None:
            if self.proc.poll() is None:
                return None
            return f"runner exited {self.proc.returncode}: {self.err_path.read_text()}"

        return wait_until(matching, timeout=timeout, what="no matching process appeared", alive=died)


def run_mlfactor(args: list[str], env: dict[str, str], folder: Path, timeout: float = 240) -> Finished:
    """Run `mlfactor ARGS` to completion."""
    return Running(args, env, folder).wait(timeout)


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Return the given processes that still run (zombies and reused pids excluded)."""
    left = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
        except psutil.Error:
            continue
    return left
