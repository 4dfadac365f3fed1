"""What needs a real `bentoml serve` process: clients over TCP, BentoML's supervisor, two workers, SIGTERM.

One service (two workers) serves the module; the shutdown test takes it over
at the end (a later test would get a fresh one). Everything HTTP that needs no
process is tested in process in test_service_http.py.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from service_harness import IRIS_ROW, Server, start_service, worker_pids
from waiting import wait_until

pytestmark = pytest.mark.slow

EXTRA = {"MLFACTOR_WORKERS": "2", "MLFACTOR_RELEASE": "r-process", "MLFACTOR_GRACE_PERIOD": "8"}


@dataclass
class ServerPool:
    """The module's service: started on first use, started again if a test stopped it."""

    env: dict[str, str]
    folder: Path
    current: Server | None = None
    started: list[Server] = field(default_factory=list)

    def get(self) -> Server:
        """The running service (a fresh one when the last was stopped)."""
        if self.current is None or self.current.process.poll() is not None:
            self.current = start_service(self.env, self.folder / f"service-{len(self.started)}", extra=EXTRA)
            self.started.append(self.current)
        return self.current

    def take(self) -> Server:
        """The running service, for a test that stops it."""
        server = self.get()
        self.current = None
        return server


@pytest.fixture(scope="module")
def pool(registered_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """The module's service pool on the session's registered model."""
    servers = ServerPool(registered_model.env, tmp_path_factory.mktemp("service-process"))
    yield servers
    for server in servers.started:
        server.stop()


@pytest.fixture
def server(pool: ServerPool) -> Server:
    """The running module service."""
    return pool.get()


def test_bentoml_clients_call_predict_and_invocations(server: Server, registered_model: Any) -> None:
    """bentoml.SyncHTTPClient and AsyncHTTPClient discover predict and invocations and get predictions."""
    import bentoml

    with bentoml.SyncHTTPClient(server.url) as client:
        predicted = client.predict(records=[IRIS_ROW])
        invoked = client.invocations(dataframe_records=[IRIS_ROW])
    assert predicted["predictions"] == [0]
    assert predicted["model"] == {"name": "iris-classifier", "version": registered_model.version}
    assert invoked == {"predictions": [0]}

    async def call() -> Any:
        async with bentoml.AsyncHTTPClient(server.url) as client:
            return await client.predict(records=[IRIS_ROW])

    assert asyncio.run(call())["predictions"] == [0]


def test_mlflow_scoring_server_client_waits_and_reads_the_version(server: Server) -> None:
    """MLflow's ScoringServerClient sees the server ready (/ping), reads /version and invokes it."""
    from importlib.metadata import version

    import pandas as pd
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    client = ScoringServerClient("127.0.0.1", server.port)
    client.wait_server_ready(timeout=30)
    assert client.get_version() == version("mlflow")
    assert client.invoke(pd.DataFrame([IRIS_ROW])).get_predictions().iloc[:, 0].tolist() == [0]


def test_swagger_page_and_openapi_document_are_served(server: Server) -> None:
    """BentoML's Swagger page answers at / and /docs.json documents every mlfactor route."""
    page = server.request("GET", "/")
    assert page.status == 200
    assert b"swagger" in page.body.lower()
    paths = server.request("GET", "/docs.json").json()["paths"]
    assert {"/predict", "/invocations", "/metadata", "/ping", "/version", "/readyz", "/metrics"} <= set(paths)


def test_metrics_merge_both_workers_in_a_directory_of_the_services_own(
    pool: ServerPool, registered_model: Any, tmp_path: Path
) -> None:
    """Two services on one host (same BENTOML_HOME) count their own requests; starting one wipes nothing."""
    first = pool.get()
    for _ in range(6):
        assert first.post_json("/predict", {"records": [IRIS_ROW]}).status == 200
    home = first.stdout.parent / "bentoml"
    second = start_service(registered_model.env, tmp_path, extra={"BENTOML_HOME": str(home)})
    try:
        assert second.post_json("/predict", {"records": [IRIS_ROW]}).status == 200
        first_metrics = first.request("GET", "/metrics").body.decode()
        second_metrics = second.request("GET", "/metrics").body.decode()
    finally:
        second.stop()

    def predicted(text: str) -> float:
        line = next(
            x for x in text.splitlines() if x.startswith("mlfactor_requests_total{") and '"/predict"' in x
        )
        return float(line.rsplit(" ", 1)[1])

    assert predicted(first_metrics) >= 6  # both workers' counts, untouched by the second start
    assert predicted(second_metrics) == 1


def test_a_dead_worker_is_replaced(server: Server) -> None:
    """Killing a worker process: the supervisor starts a new one and the service answers again."""
    before = worker_pids(server)
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    wait_until(
        lambda: len(now := worker_pids(server)) == 2 and before[0] not in now,
        timeout=60,
        what="the supervisor did not replace the killed worker",
    )
    assert before[0] not in worker_pids(server)
    server.wait_ready(timeout=120)
    assert server.post_json("/predict", {"records": [IRIS_ROW]}).status == 200


@dataclass
class LoopResult:
    """What one looping client saw."""

    statuses: list[int] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)
    ended_by: str = ""
    answered: threading.Event = field(default_factory=threading.Event)  # set at the first answer


RESET_ERRORS = (
    ConnectionResetError,
    BrokenPipeError,
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
)


def _loop_client(port: int, stop: threading.Event, result: LoopResult) -> None:
    """POST /predict over a kept-alive connection until the server refuses new connections."""
    body = json.dumps({"records": [IRIS_ROW]}).encode()
    connection: http.client.HTTPConnection | None = None
    while True:
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
            connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            result.statuses.append(answer.status)
            result.answered.set()
            if answer.getheader("connection", "").lower() == "close":
                connection.close()
                connection = None
        except (ConnectionRefusedError, TimeoutError) as exc:  # the listener is closed (or drops SYNs)
            result.ended_by = type(exc).__name__
            return
        except RESET_ERRORS as exc:
            result.resets.append(type(exc).__name__)
            if connection is not None:
                connection.close()
            connection = None
            if stop.is_set():
                return
        if stop.is_set() and connection is None:
            result.ended_by = "stopped"
            return


def test_sigterm_with_32_looping_clients_resets_nothing(pool: ServerPool) -> None:
    """SIGTERM under 32 looping clients: readiness 503 first, no connection reset, exit 0 within the grace."""
    server = pool.take()
    results = [LoopResult() for _ in range(32)]
    stop = threading.Event()
    clients = [
        threading.Thread(target=_loop_client, args=(server.port, stop, r), daemon=True) for r in results
    ]
    for thread in clients:
        thread.start()
    assert all(r.answered.wait(timeout=60) for r in results)  # every client is looping
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    readiness: list[int] = []
    while not readiness or readiness[-1] == 200:  # until the workers have seen the signal
        readiness.append(server.request("GET", "/readyz", timeout=5).status)
    returncode = server.process.wait(timeout=30)
    elapsed = time.monotonic() - sent
    stop.set()
    for thread in clients:
        thread.join(timeout=30)

    assert readiness[-1] == 503
    assert returncode == 0
    assert elapsed < 8 + 5, f"exited {elapsed:.1f} s after SIGTERM (grace 8 s)"
    assert [r.resets for r in results if r.resets] == []
    assert {s for r in results for s in r.statuses} <= {200, 503}
    events = server.events()  # every stdout line is JSON, from start to exit
    names = [e["event"] for e in events]
    assert names.index("shutdown_started") < names.index("listener_closed") < names.index("shutdown_complete")
