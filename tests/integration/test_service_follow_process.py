"""Following a real `mlflow server`: its own webhook delivery moves traffic; its outage stops nothing.

One module-scoped `mlflow server` (sqlite) with webhooks allowed to reach
127.0.0.1, a webhook on ``model_version_alias.created`` pointing at the
service with a secret, and ``bentoml serve`` following ``champion`` with a
long polling interval (600 s), so only the push can explain a swap within
seconds. The outage is the server SIGKILLed; a signed delivery the test sends
itself (MLflow's own signing function) makes the follower check at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends import KillableServer, client_environment
from conftest import register_demo_model, store_environment
from mlflow.webhooks.delivery import _generate_hmac_signature
from service_harness import IRIS_ROW, Server, free_port, start_service
from waiting import wait_until

from mlfactor.registry import set_alias
from mlfactor.settings import load_settings
from mlfactor.tracking import connect

pytestmark = pytest.mark.slow

SECRET = "follow-process-secret"
# MLflow caches each event's webhook list for MLFLOW_WEBHOOK_CACHE_TTL (60 s): the alias set before the
# webhook exists would hide it for a minute.
WEBHOOK_ENV = {
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_CACHE_TTL": "1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillableServer]:
    """An mlflow server whose webhooks may call 127.0.0.1 over http."""
    folder = tmp_path_factory.mktemp("follow-server")
    killable = KillableServer(folder, free_port(), {**store_environment(folder), **WEBHOOK_ENV})
    try:
        yield killable
    finally:
        killable.kill()


def _version(service: Server) -> str:
    answer = service.post_json("/predict", {"records": [IRIS_ROW]})
    assert answer.status == 200, answer.body
    return str(answer.json()["model"]["version"])


def _nudge(service: Server) -> int:
    """Send a signed alias delivery, as MLflow would, so the follower checks at once."""
    body = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "data": {"name": "iris-classifier", "alias": "champion"},
        }
    )
    delivery_id, stamp = "test-nudge", str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "x-mlflow-delivery-id": delivery_id,
        "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": _generate_hmac_signature(SECRET, delivery_id, stamp, body),
    }
    return service.request("POST", "/hooks/mlflow", body.encode(), headers=headers).status


def test_mlflow_s_own_webhook_moves_traffic_and_an_outage_stops_nothing(
    server: KillableServer, tmp_path: Path
) -> None:
    """A promotion reaches both workers through one webhook delivery; with the server gone they serve on."""
    from mlflow.entities.webhook import WebhookEvent

    server.ensure_running()
    env = client_environment(store_environment(tmp_path), server.url)
    first = register_demo_model(env, alias="champion", C=1.0)
    second = register_demo_model(env, alias="candidate", C=0.01)
    client = connect(load_settings(env))
    set_alias(client, "iris-classifier", "champion", first.version)
    service = start_service(
        env,
        tmp_path / "service",
        extra={"MLFACTOR_FOLLOW_INTERVAL": "600", "MLFACTOR_WEBHOOK_SECRET": SECRET, "MLFACTOR_WORKERS": "2"},
    )
    try:
        client.create_webhook(
            name="mlfactor-follow",
            url=f"{service.url}/hooks/mlflow",
            events=[WebhookEvent("model_version_alias", "created")],
            secret=SECRET,
        )
        wait_until(  # /readyz answered for one worker; the other may still be loading
            lambda: len(service.events("follow_started")) == 2,
            timeout=120,
            what="both workers did not start following",
        )
        # the supervisor resolved the alias at launch; neither worker started a resolver of its own
        assert [e["resolved_at_launch"] for e in service.events("model_resolved")] == [True, True]
        assert _version(service) == first.version
        set_alias(client, "iris-classifier", "champion", second.version)
        wait_until(
            lambda: _version(service) == second.version,
            timeout=60,
            what="the webhook's alias move was not served",
            alive=lambda: None if service.process.poll() is None else "the service died",
        )
        hooks = [e for e in service.events("webhook_received") if e.get("delivery_id") != "test-nudge"]
        assert hooks and hooks[0]["checking"] is True and hooks[0]["version"] == second.version
        # the delivery reached one worker; the other followed through the service's shared folder
        swaps = wait_until(
            lambda: len(service.events("model_swapped")) == 2 and service.events("model_swapped"),
            timeout=60,
            what="both workers did not swap",
        )
        assert {e["to_version"] for e in swaps} == {second.version} and len({e["pid"] for e in swaps}) == 2

        server.kill()
        assert _nudge(service) == 200
        wait_until(
            lambda: service.events("follow_check_failed"),
            timeout=60,
            what="no follow_check_failed after the registry went away",
        )
        assert _version(service) == second.version
        assert service.request("GET", "/readyz").status == 200

        server.start()
        assert _nudge(service) == 200
        wait_until(
            lambda: service.events("follow_check_recovered"),
            timeout=60,
            what="no follow_check_recovered after the registry came back",
        )
        failed = [e["pid"] for e in service.events("follow_check_failed")]
        assert len(failed) == len(set(failed))  # one line per outage and worker, not one per check
    finally:
        service.stop()
