"""Following the registry live, in process: a moved alias is swapped in, a broken version never serves.

The module registers three versions in its own store: v1 (champion at start),
v2 (another regularisation) and v3, whose pickled estimator is overwritten
with garbage after registering, so it cannot load. The service follows
``champion`` with a long interval, so the tests drive each check themselves
(:meth:`AliasFollower.check`), except the one that proves the thread alone
picks a move up. Webhook deliveries are signed with MLflow's own signing
function. Served processes under load are in benchmarks/bench_serve.py
(the swap scenario) and test_service_follow_process.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import register_demo_model, store_environment
from inprocess import InProcessService, captured_events, start_in_process
from mlflow.webhooks.delivery import _generate_hmac_signature
from service_harness import IRIS_ROW

from mlfactor.registry import set_alias
from mlfactor.serving.follow import AliasFollower
from mlfactor.tracking import connect

SECRET = "s3cret-webhook-key"


@dataclass
class Followed:
    """The service, its follower, the store's environment and the registered versions."""

    service: InProcessService
    follower: AliasFollower
    env: dict[str, str]
    good: tuple[str, str]
    broken: str

    def move(self, version: str) -> None:
        """Point ``champion`` at ``version`` in the registry."""
        settings = self.service.state.settings
        set_alias(connect(settings), "iris-classifier", "champion", version)

    def served(self) -> str:
        """The version the service answers with now."""
        runtime = self.service.state.runtime
        assert runtime is not None
        return runtime.models["champion"].version


def _break_version(env: dict[str, str], version: str) -> None:
    """Overwrite the pickled estimator of ``version`` in the artifact store with garbage."""
    from mlfactor.settings import load_settings

    client = connect(load_settings(env))
    folder = Path(client.get_model_version_download_uri("iris-classifier", version).removeprefix("file://"))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
    (folder / mlmodel["flavors"]["sklearn"]["pickled_model"]).write_bytes(b"not a model at all")


@pytest.fixture(scope="module")
def followed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Followed]:
    """A store with v1 (champion), v2 and a broken v3, and a service following ``champion``."""
    env = store_environment(tmp_path_factory.mktemp("service-follow"))
    first = register_demo_model(env, alias="champion", C=1.0)
    second = register_demo_model(env, alias="candidate", C=0.01)
    broken = register_demo_model(env, alias="broken", C=0.1)
    _break_version(env, broken.version)
    set_alias(connect(first.settings), "iris-classifier", "champion", first.version)
    service = start_in_process(env, {"MLFACTOR_FOLLOW_INTERVAL": "3600", "MLFACTOR_WEBHOOK_SECRET": SECRET})
    follower = service.state.follower
    assert follower is not None
    yield Followed(service, follower, env, (first.version, second.version), broken.version)
    follower.stop(wait=30)


@pytest.fixture
def client(followed: Followed) -> Iterator[httpx.Client]:
    """A sync client over the following service; ``champion`` back on v1 afterwards."""
    with followed.service.client() as http:
        yield http
    followed.move(followed.good[0])
    followed.follower.check()


def _predict(client: httpx.Client) -> tuple[str, str]:
    answer = client.post("/predict", json={"records": [IRIS_ROW]})
    assert answer.status_code == 200, answer.text
    return answer.json()["model"]["version"], answer.headers["x-mlfactor-model-version"]


def test_a_moved_alias_is_loaded_warmed_and_answers_from_the_next_request(
    followed: Followed, client: httpx.Client
) -> None:
    """After the alias moves, one check swaps the new version in; answers, headers and metrics name it."""
    first, second = followed.good
    assert _predict(client) == (first, first)
    followed.move(second)
    with captured_events() as log:
        [swap] = followed.follower.check()
    assert (swap.swapped, swap.from_version, swap.to_version) == (True, first, second)
    swapped = log.named("model_swapped")[0]
    assert swapped["alias"] == "champion" and swapped["warmed"] is True
    assert (swapped["from_version"], swapped["to_version"]) == (first, second)
    assert _predict(client) == (second, second)
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics").text
    assert (
        f'mlfactor_served_model_version{{model="iris-classifier",variant="champion"}} {second}.0' in metrics
    )
    assert followed.follower.check() == []  # nothing moved since


def test_a_version_that_cannot_load_never_takes_traffic_and_is_retried(
    followed: Followed, client: httpx.Client
) -> None:
    """A broken version logs model_swap_failed at every check; the old version serves; readiness stays 200."""
    first = followed.good[0]
    followed.move(followed.broken)
    with captured_events() as log:
        [failed] = followed.follower.check()
        [again] = followed.follower.check()
    assert not failed.swapped and not again.swapped
    assert failed.to_version == followed.broken and failed.reason == again.reason
    assert failed.reason.startswith(("BadZipFile", "UnpicklingError"))  # skops or pickle, as logged
    events = log.named("model_swap_failed")
    assert len(events) == 2 and events[0]["from_version"] == first and events[0]["retry_in_s"] == 3600
    assert _predict(client) == (first, first)
    assert client.get("/readyz").status_code == 200
    followed.move(first)  # the rollback: back where it serves, nothing to swap
    assert followed.follower.check() == []


def test_requests_during_swaps_are_answered_wholly_by_one_version(followed: Followed) -> None:
    """While the alias flips back and forth under 16 clients, no request fails or mixes versions."""
    first, second = followed.good
    stop = asyncio.Event()

    async def load(http: httpx.AsyncClient) -> list[tuple[int, str, str]]:
        seen = []
        while not stop.is_set():
            answer = await http.post("/predict", json={"records": [IRIS_ROW]})
            body = answer.json()
            seen.append(
                (answer.status_code, body["model"]["version"], answer.headers["x-mlfactor-model-version"])
            )
            await asyncio.sleep(0)  # an in-process answer never suspends: let the flipping coroutine run
        return seen

    async def flip() -> None:
        for version in (second, first, second, first):
            followed.move(version)
            await asyncio.to_thread(followed.follower.check)
        stop.set()

    async def scenario() -> list[tuple[int, str, str]]:
        async with followed.service.async_client() as http:
            results = await asyncio.gather(flip(), *(load(http) for _ in range(16)))
        return [answer for answers in results[1:] for answer in answers]

    answers = asyncio.run(scenario())
    assert answers and all(status == 200 for status, _, _ in answers)
    assert all(body == header and body in (first, second) for _, body, header in answers)
    assert {body for _, body, _ in answers} == {first, second}
    assert followed.served() == first


def test_the_follower_thread_picks_a_move_up_by_itself(tmp_path: Path) -> None:
    """With MLFACTOR_FOLLOW_INTERVAL=0.2 and no one calling check(), the thread swaps within a few seconds."""
    env = store_environment(tmp_path)
    first = register_demo_model(env, alias="champion", C=1.0)
    second = register_demo_model(env, alias="candidate", C=0.01)
    set_alias(connect(first.settings), "iris-classifier", "champion", first.version)
    service = start_in_process(env, {"MLFACTOR_FOLLOW_INTERVAL": "0.2"})
    assert service.state.follower is not None
    try:
        with captured_events() as log:
            moved = time.monotonic()
            set_alias(connect(first.settings), "iris-classifier", "champion", second.version)
            swapped = log.wait_for("model_swapped", timeout=60)
        assert swapped["to_version"] == second.version
        assert time.monotonic() - moved < 60
    finally:
        service.state.start_draining()  # stops the follower like SIGTERM does
        service.state.follower.stop(wait=30)


def _delivery(body: bytes, *, secret: str = SECRET, age: int = 0) -> dict[str, str]:
    delivery_id, timestamp = "d-1", str(int(time.time()) - age)
    signature = _generate_hmac_signature(secret, delivery_id, timestamp, body.decode())
    return {
        "content-type": "application/json",
        "x-mlflow-delivery-id": delivery_id,
        "x-mlflow-timestamp": timestamp,
        "x-mlflow-signature": signature,
    }


def _alias_payload(alias: str = "champion", name: str = "iris-classifier") -> bytes:
    data = {"name": name, "alias": alias, "version": "2"}
    payload = {"entity": "model_version_alias", "action": "created", "timestamp": "now", "data": data}
    return json.dumps(payload).encode()


def test_a_signed_alias_delivery_makes_the_follower_check_at_once(
    followed: Followed, client: httpx.Client
) -> None:
    """A delivery signed as MLflow signs it wakes the follower; other aliases' deliveries are ignored."""
    body = _alias_payload()
    with captured_events() as log:
        answer = client.post("/hooks/mlflow", content=body, headers=_delivery(body))
        other = _alias_payload(alias="challenger")
        ignored = client.post("/hooks/mlflow", content=other, headers=_delivery(other))
    assert answer.status_code == 200 and answer.json()["checking"] is True
    assert ignored.status_code == 200 and ignored.json()["checking"] is False
    assert [e["checking"] for e in log.named("webhook_received")] == [True, False]


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("unsigned", lambda body: {"content-type": "application/json"}),
        ("wrong secret", lambda body: _delivery(body, secret="not-the-secret")),
        ("replayed", lambda body: _delivery(body, age=3600)),
        ("body changed", lambda body: _delivery(body.replace(b"champion", b"challenger"))),
    ],
)
def test_unsigned_or_mis_signed_deliveries_get_401_and_change_nothing(
    followed: Followed, client: httpx.Client, case: str, headers: object
) -> None:
    """Deliveries without a valid, fresh signature are refused with 401, never reaching the follower."""
    body = _alias_payload()
    with captured_events() as log:
        answer = client.post("/hooks/mlflow", content=body, headers=headers(body))  # type: ignore[operator]
    assert answer.status_code == 401, case
    assert answer.json()["error_code"] == "UNAUTHENTICATED"
    assert SECRET not in answer.text
    assert log.named("webhook_received") == [] and len(log.named("webhook_rejected")) == 1


def test_webhooks_are_off_without_a_secret(followed: Followed) -> None:
    """Without MLFACTOR_WEBHOOK_SECRET, /hooks/mlflow answers 404 saying how to turn it on."""
    service = followed.service.reconfigured({"MLFACTOR_WEBHOOK_SECRET": ""})
    with service.client() as http:
        body = _alias_payload()
        answer = http.post("/hooks/mlflow", content=body, headers=_delivery(body))
    assert answer.status_code == 404
    assert "MLFACTOR_WEBHOOK_SECRET" in answer.json()["message"]
