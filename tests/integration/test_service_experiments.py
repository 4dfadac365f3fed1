"""Experiments between model versions on one real service: variants, shadow, flags file, 429, worker death.

The module registers two versions (champion v1, challenger v2, with different
regularisation so some predictions differ) in its own store and starts one
`bentoml serve` process splitting traffic 50/50 with a shadow and a flags file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import register_demo_model, store_environment
from service_harness import FEATURES, IRIS_ROW, Server, start_service, worker_pids

pytestmark = pytest.mark.slow

ROWS = [
    IRIS_ROW,
    {"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 5.1, "petal_width": 1.6},
    {"sepal_length": 6.3, "sepal_width": 2.5, "petal_length": 4.9, "petal_width": 1.5},
]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, dict[str, str]]]:
    """Return a store with champion (v1) and challenger (v2) and a service splitting between them."""
    folder = tmp_path_factory.mktemp("service-experiments")
    env = store_environment(folder)
    champion = register_demo_model(env, alias="champion", C=1.0)
    challenger = register_demo_model(env, alias="challenger", C=0.01)
    flags = folder / "flags.json"
    flags.write_text(json.dumps({"shadow": True, "log_predictions": False}), encoding="utf-8")
    server = start_service(
        env,
        folder,
        extra={
            "MLFACTOR_VARIANTS": "champion=50,challenger=50",
            "MLFACTOR_SHADOW": "challenger",
            "MLFACTOR_FLAGS_FILE": str(flags),
            "MLFACTOR_MAX_CONCURRENCY": "2",
        },
    )
    versions = {"champion": champion.version, "challenger": challenger.version}
    yield server, flags, versions
    server.stop()


def _set_flags(path: Path, data: Any) -> None:
    text = data if isinstance(data, str) else json.dumps(data)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _wait_for(condition: Any, timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    return condition()


def test_each_key_sticks_to_one_variant_named_in_response(experiment: Any) -> None:
    """The same X-MLFACTOR-Key always gets the same variant; both variants serve; versions match variants."""
    server, _, versions = experiment
    seen: dict[str, str] = {}
    for i in range(30):
        for _ in range(2):
            answer = server.post_json(
                "/predict", {"records": [IRIS_ROW]}, headers={"X-MLFACTOR-Key": f"user-{i}"}
            )
            body = answer.json()
            assert answer.status == 200, body
            assert seen.setdefault(f"user-{i}", body["variant"]) == body["variant"]
            assert answer.headers["x-mlfactor-variant"] == body["variant"]
            assert body["model"]["version"] == versions[body["variant"]]
    assert set(seen.values()) == {"champion", "challenger"}


def test_shadow_predictions_are_logged_never_returned(experiment: Any) -> None:
    """The shadow scores each request after the answer; its predictions are logged, never returned."""
    server, _, versions = experiment
    answer = server.post_json(
        "/invocations",
        {"dataframe_records": ROWS},
        headers={"X-Request-ID": "shadow-check-1", "X-MLFACTOR-Key": "user-1"},
    )
    assert set(answer.json()) == {"predictions"}
    logged = _wait_for(
        lambda: [e for e in server.events("shadow_prediction") if e["request_id"] == "shadow-check-1"]
    )
    assert len(logged) == 1
    assert logged[0]["served"] == answer.json()["predictions"]
    assert logged[0]["shadow_version"] == versions["challenger"]
    assert len(logged[0]["shadow"]) == len(ROWS)


def test_editing_the_flags_file_changes_behaviour_without_restart(experiment: Any) -> None:
    """Flag edits apply within seconds (logging on, weights moved, shadow off); a broken file is ignored."""
    server, flags, _ = experiment
    pid_before = worker_pids(server)
    _set_flags(flags, {"shadow": True, "log_predictions": True})

    def logged_prediction() -> bool:
        rid = f"flag-{time.monotonic_ns()}"
        server.post_json("/predict", {"records": [IRIS_ROW]}, headers={"X-Request-ID": rid})
        time.sleep(0.1)
        return any(e["request_id"] == rid for e in server.events("prediction"))

    assert _wait_for(logged_prediction)
    event = server.events("prediction")[-1]
    assert event["inputs"] == [IRIS_ROW] and event["outputs"] == [0]

    _set_flags(
        flags, {"shadow": False, "log_predictions": False, "variant_weights": "champion=0,challenger=100"}
    )

    def all_challenger() -> bool:
        variants = {
            server.post_json("/predict", {"records": [IRIS_ROW]}, headers={"X-MLFACTOR-Key": f"k{i}"}).json()[
                "variant"
            ]
            for i in range(10)
        }
        return variants == {"challenger"}

    assert _wait_for(all_challenger)

    _set_flags(flags, "{broken")
    assert _wait_for(lambda: server.events("flags_file_invalid"))
    assert all_challenger()  # the last good flags stay in force
    assert worker_pids(server) == pid_before  # no restart
    _set_flags(flags, {"shadow": True, "log_predictions": False})


def test_over_the_concurrency_limit_answers_429_while_health_stays_200(experiment: Any) -> None:
    """MLFACTOR_MAX_CONCURRENCY=2: a burst of big requests gets 429s at once; /livez and /readyz stay 200."""
    server, _, _ = experiment
    payload = json.dumps(
        {"dataframe_split": {"columns": FEATURES, "data": [list(IRIS_ROW.values())] * 8000}}
    ).encode()
    statuses: list[int] = []
    health: list[int] = []
    done = threading.Event()

    def burst() -> None:
        statuses.append(
            server.request("POST", "/invocations", payload, {"Content-Type": "application/json"}).status
        )

    def probe() -> None:
        while not done.is_set():
            health.append(server.request("GET", "/livez").status)
            health.append(server.request("GET", "/readyz").status)
            time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    threads = [threading.Thread(target=burst) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    prober.join()
    assert 429 in statuses and 200 in statuses, statuses
    assert set(statuses) <= {200, 429}
    assert health and set(health) == {200}


def test_a_dead_worker_is_replaced(experiment: Any) -> None:
    """Killing the worker process: the supervisor starts a new one and the service answers again."""
    import signal

    server, _, _ = experiment
    [old] = worker_pids(server)
    os.kill(old, signal.SIGKILL)
    new = _wait_for(lambda: [p for p in worker_pids(server) if p != old], timeout=30)
    assert new
    server.wait_ready(timeout=120)
    assert server.post_json("/predict", {"records": [IRIS_ROW]}).status == 200


def test_the_service_keeps_answering_while_the_registry_is_gone(experiment: Any) -> None:
    """With the registry database moved away, predictions and metadata still answer 200."""
    server, flags, _ = experiment
    database = flags.parent / "mlflow.db"
    hidden = database.with_suffix(".hidden")
    database.rename(hidden)
    try:
        assert server.post_json("/predict", {"records": [IRIS_ROW]}).status == 200
        assert server.post_json("/invocations", {"dataframe_records": ROWS}).status == 200
        assert server.request("GET", "/metadata").status == 200
    finally:
        hidden.rename(database)
