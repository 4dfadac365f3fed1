"""Start real `bentoml serve` / `mlfactor serve` processes on free 127.0.0.1 ports for the service tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waiting import wait_until

PROJECT_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
FEATURES = list(IRIS_ROW)


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Answer:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Server:
    """A service process started by a test, with its stdout captured to a file."""

    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Answer:
        """Send one request and return the answer, error statuses included."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())

    def post_json(
        self, path: str, payload: Any, headers: dict[str, str] | None = None, timeout: float = 30
    ) -> Answer:
        """POST ``payload`` as JSON."""
        return self.request(
            "POST",
            path,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
            timeout=timeout,
        )

    def lines(self) -> list[str]:
        """Every stdout line so far."""
        return self.stdout.read_text(encoding="utf-8", errors="replace").splitlines()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Stdout lines parsed as JSON (all must parse), optionally only events called ``name``."""
        parsed = [json.loads(line) for line in self.lines() if line.strip()]
        return [e for e in parsed if name is None or e.get("event") == name]

    def wait_ready(self, timeout: float = 120, path: str = "/readyz") -> None:
        """Wait until ``path`` answers 200; fail with the process output when it dies or times out."""

        def answers() -> bool:
            try:
                return self.request("GET", path, timeout=2).status == 200
            except OSError:
                return False

        def died() -> str | None:
            if self.process.poll() is None:
                return None
            return f"service exited with {self.process.returncode}:\n{self.output()}"

        wait_until(answers, timeout=timeout, what=f"{path} did not answer 200:\n{self.output()}", alive=died)

    def output(self) -> str:
        """Return the tail of stdout and stderr, for failure messages."""
        out = "\n".join(self.lines()[-30:])
        err = "\n".join(self.stderr.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
        return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left (only our own processes)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)


def start_service(
    env: dict[str, str],
    folder: Path,
    *,
    extra: dict[str, str] | None = None,
    command: str = "bentoml",
    wait: bool = True,
) -> Server:
    """Start the service with ``env`` (+ ``extra``) on a free port; logs go to files in ``folder``."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    full = {**env, "BENTOML_PORT": str(port), "MLFACTOR_LOG_FORMAT": "json", **(extra or {})}
    full.setdefault("BENTOML_HOME", str(folder / "bentoml"))
    if command == "bentoml":
        argv = [str(BIN / "bentoml"), "serve", "service:MlfactorService", "--working-dir", str(PROJECT_DIR)]
    else:
        argv = [str(BIN / "mlfactor"), "serve"]
    stdout = folder / f"stdout-{port}.log"
    stderr = folder / f"stderr-{port}.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            argv, cwd=PROJECT_DIR, env=full, stdout=out, stderr=err, start_new_session=True
        )
    server = Server(process, port, stdout, stderr)
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
    return server


def worker_pids(server: Server) -> list[int]:
    """PIDs of the service's live worker processes (children running the BentoML worker module)."""
    import psutil

    pids = []
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "_bentoml_impl.worker.service" in " ".join(
                child.cmdline()
            ):
                pids.append(child.pid)
        except psutil.Error:
            continue
    return pids
