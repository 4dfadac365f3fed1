"""Pipeline runs started at once: PostgreSQL behind an mlflow server takes them all; sqlite may refuse some.

Each run is ``mlfactor run tests/fixtures/backing/registers-and-promotes.yaml``: one
small notebook that trains, registers a version and promotes it to ``champion``.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from backends import BIN, PROJECT_DIR, StackProcess, client_environment, json_lines
from conftest import store_environment

from mlfactor.aliases import alias_history
from mlfactor.settings import load_settings
from mlfactor.tracking import connect

pytestmark = pytest.mark.slow

PIPELINE = "tests/fixtures/backing/registers-and-promotes.yaml"
CORES = os.cpu_count() or 1
# Two runs per core (at least four, at most eight) race for the alias lock; more only queue for CPU.
SERVER_RUNS = min(8, max(4, 2 * CORES))
SQLITE_RUNS = 3
# One run alone takes well under a minute; runs beyond the cores wait their turn, so the bound
# follows the number of waves of runs, not a fixed figure that a loaded machine exceeds.
RUN_BOUND_S = 150


def bound_for(runs: int) -> int:
    """Seconds a batch of ``runs`` concurrent pipeline runs may take on this machine."""
    return RUN_BOUND_S * math.ceil(runs / CORES) + 60


def run_at_once(env: dict[str, str], count: int, folder: Path, model: str) -> list[dict[str, Any]]:
    """Start ``count`` pipeline runs together; return exit code, stdout and stderr of each."""
    processes = []
    for index in range(count):
        out = folder / f"run-{index}.out"
        err = folder / f"run-{index}.err"
        argv = [
            str(BIN / "mlfactor"),
            "run",
            PIPELINE,
            "-p",
            f"register.model_name={model}",
            "--output-dir",
            str(folder / f"run-{index}"),
        ]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            processes.append(
                (subprocess.Popen(argv, cwd=PROJECT_DIR, env=env, stdout=stdout, stderr=stderr), out, err)
            )
    results = []
    deadline = time.monotonic() + bound_for(count)
    for process, out, err in processes:
        try:
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        results.append({"code": code, "stdout": out.read_text(), "stderr": err.read_text()})
    return results


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Return the final JSON summary line `mlfactor run` prints."""
    return [line for line in json_lines(result["stdout"]) if "steps" in line and "status" in line][-1]


def champion_moves(client: Any, model: str) -> list[Any]:
    """Return the recorded moves of ``champion``, oldest first."""
    return list(reversed(alias_history(client, model, "champion")))


@pytest.fixture(scope="module")
def server_runs(tracking_server: StackProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """SERVER_RUNS pipeline runs started at once against the PostgreSQL-backed server (once per module)."""
    folder = tmp_path_factory.mktemp("concurrent")
    env = client_environment(store_environment(folder), tracking_server.url)
    model = "concurrent-iris"
    return {"env": env, "model": model, "results": run_at_once(env, SERVER_RUNS, folder, model)}


@pytest.mark.postgres
@pytest.mark.timeout(bound_for(SERVER_RUNS) + 120)  # the module fixture starts the runs
def test_runs_at_once_on_the_postgres_server_all_succeed(
    server_runs: dict[str, Any], record_property: Any
) -> None:
    """Concurrent runs on the PostgreSQL-backed server: all exit 0, versions 1..N, every move recorded."""
    results, model = server_runs["results"], server_runs["model"]
    failures = [r for r in results if r["code"] != 0]
    assert not failures, failures[0]["stderr"][-3000:]

    reported = sorted(int(summary(r)["outputs"]["register"]["model_version"]) for r in results)
    assert reported == list(range(1, SERVER_RUNS + 1))
    client = connect(load_settings(server_runs["env"]))
    registered = client.search_model_versions(f"name='{model}'")
    assert sorted(int(v.version) for v in registered) == reported
    assert {v.status for v in registered} == {"READY"}
    assert len({v.run_id for v in registered}) == SERVER_RUNS
    moves = champion_moves(client, model)
    assert sorted(int(m.to_version) for m in moves) == reported  # one recorded move per run, none lost
    champion = str(client.get_model_version_by_alias(model, "champion").version)
    assert champion in {m.to_version for m in moves}
    record_property("server_runs_succeeded", SERVER_RUNS)


@pytest.mark.postgres
@pytest.mark.timeout(bound_for(SERVER_RUNS) + 120)
def test_concurrent_alias_moves_form_one_chain(server_runs: dict[str, Any]) -> None:
    """Concurrent promotes leave a history where each move starts where the last ended, up to the alias."""
    client = connect(load_settings(server_runs["env"]))
    model = server_runs["model"]
    moves = champion_moves(client, model)
    assert moves[0].from_version is None
    chain = [(m.from_version, m.to_version) for m in moves]
    for before, after in itertools.pairwise(moves):
        assert after.from_version == before.to_version, chain
    assert str(client.get_model_version_by_alias(model, "champion").version) == moves[-1].to_version, chain


@pytest.mark.timeout(bound_for(SQLITE_RUNS) + 60)
def test_runs_at_once_on_sqlite_succeed_or_say_database_is_locked(
    tmp_path: Path, record_property: Any
) -> None:
    """Concurrent runs on one sqlite file each succeed or say "database is locked"; nothing half-written."""
    env = store_environment(tmp_path)
    client = connect(load_settings(env))  # create the store first: the race under test is the runs'
    model = "sqlite-concurrent-iris"
    results = run_at_once(env, SQLITE_RUNS, tmp_path, model)
    locked = 0
    for result in results:
        if result["code"] == 0:
            continue
        locked += 1
        assert "database is locked" in result["stderr"], result["stderr"][-3000:]
        assert "Traceback" not in result["stderr"], result["stderr"][-3000:]
    succeeded = SQLITE_RUNS - locked
    record_property("sqlite_runs_succeeded", succeeded)
    record_property("sqlite_runs_locked", locked)
    assert succeeded >= 1

    # Nothing half-written: no run left RUNNING, every version READY with its model files, aliases valid.
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    assert runs and all(run.info.status in {"FINISHED", "FAILED", "KILLED"} for run in runs)
    registered = client.search_model_versions(f"name='{model}'")
    assert {v.status for v in registered} <= {"READY"}
    for version in registered:
        assert client.get_run(version.run_id).info.status == "FINISHED"
        assert client.download_artifacts(version.run_id, "", str(tmp_path / f"v{version.version}"))
    reported = {str(summary(r)["outputs"]["register"]["model_version"]) for r in results if r["code"] == 0}
    assert reported <= {str(v.version) for v in registered}
    versions = {str(v.version) for v in registered}
    moves = champion_moves(client, model)
    assert {m.to_version for m in moves} <= versions
    if versions:
        assert str(client.get_model_version_by_alias(model, "champion").version) in versions
