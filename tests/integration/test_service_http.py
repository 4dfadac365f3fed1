"""The service's HTTP behaviour in process: the real core and ASGI app over the registered iris champion.

No server process: requests go through ``httpx`` to :class:`mlfactor.serving.asgi.ServingApp`
(see ``inprocess.py``). What needs a process (signals, ports, BentoML's supervisor) is in
test_service_process.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from inprocess import InProcessService, start_in_process
from service_harness import FEATURES, IRIS_ROW

from mlfactor.serving.messages import HttpRequest

VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}
LIMITS = {
    "MLFACTOR_MAX_REQUEST_BYTES": "1000000",
    "MLFACTOR_MAX_ROWS": "5000",
    "MLFACTOR_RELEASE": "r-test-1",
}


@pytest.fixture(scope="module")
def service(registered_model: Any) -> InProcessService:
    """One loaded service for the module, on the session's registered model."""
    return start_in_process(registered_model.env, LIMITS)


@pytest.fixture
def client(service: InProcessService) -> Iterator[httpx.Client]:
    """A synchronous client over the app."""
    with service.client() as opened:
        yield opened


@pytest.fixture(scope="module")
def iris_rows() -> list[dict[str, float]]:
    """Return the 150 iris rows with the model's feature names."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.drop(columns=["target"])
    frame.columns = FEATURES
    return list(frame.to_dict(orient="records"))


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if r.name == "mlfactor.access"]  # type: ignore[attr-defined]


def test_predict_answers_predictions_with_model_and_version(
    client: httpx.Client, registered_model: Any
) -> None:
    """POST /predict returns predictions plus the registered model's name, version and variant."""
    answer = client.post("/predict", json={"records": [IRIS_ROW, VIRGINICA]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["predictions"] == [0, 2]
    assert body["model"] == {"name": "iris-classifier", "version": registered_model.version}
    assert body["variant"] == "champion"
    assert answer.headers["x-mlfactor-model"] == "iris-classifier"
    assert answer.headers["x-mlfactor-model-version"] == registered_model.version
    assert answer.headers["x-mlfactor-variant"] == "champion"


@pytest.mark.parametrize(
    "make_payload",
    [
        pytest.param(
            lambda rows: {
                "dataframe_split": {"columns": FEATURES, "data": [[r[f] for f in FEATURES] for r in rows]}
            },
            id="dataframe_split",
        ),
        pytest.param(lambda rows: {"dataframe_records": rows}, id="dataframe_records"),
        pytest.param(lambda rows: {"instances": rows}, id="instances"),
        pytest.param(lambda rows: {"inputs": {f: [r[f] for r in rows] for f in FEATURES}}, id="inputs"),
    ],
)
def test_invocations_match_mlflow_pyfunc(
    client: httpx.Client, registered_model: Any, iris_rows: list[dict[str, float]], make_payload: Any
) -> None:
    """/invocations answers {"predictions": [...]} equal to mlflow's pyfunc on all 150 iris rows."""
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_tracking_uri(registered_model.settings.tracking_uri)
    expected = (
        mlflow.pyfunc.load_model(f"models:/iris-classifier/{registered_model.version}")
        .predict(pd.DataFrame(iris_rows))
        .tolist()
    )
    answer = client.post("/invocations", json=make_payload(iris_rows))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": expected}


def test_request_id_is_taken_from_the_header_and_logged_once(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """X-Request-ID is echoed in the header and the body, and names the one access line of the request."""
    with caplog.at_level(logging.INFO, logger="mlfactor.access"):
        answer = client.post(
            "/predict", json={"records": [IRIS_ROW]}, headers={"X-Request-ID": "req-abc-123"}
        )
    assert answer.headers["x-request-id"] == "req-abc-123"
    assert answer.json()["request_id"] == "req-abc-123"
    lines = [line for line in _access_lines(caplog) if line["request_id"] == "req-abc-123"]
    assert len(lines) == 1
    assert {k: lines[0][k] for k in ("method", "path", "status", "model_name", "variant", "rows")} == {
        "method": "POST",
        "path": "/predict",
        "status": 200,
        "model_name": "iris-classifier",
        "variant": "champion",
        "rows": 1,
    }
    assert lines[0]["latency_ms"] > 0


@pytest.mark.parametrize("given", ["", "has spaces", "x" * 129], ids=["absent", "unsafe", "too-long"])
def test_a_request_id_is_generated_when_absent_or_unsafe(client: httpx.Client, given: str) -> None:
    """Without a safe X-Request-ID each response gets a fresh id of its own."""
    headers = {"X-Request-ID": given} if given else {}
    first = client.post("/predict", json={"records": [IRIS_ROW]}, headers=headers).headers["x-request-id"]
    second = client.post("/predict", json={"records": [IRIS_ROW]}, headers=headers).headers["x-request-id"]
    assert first != second
    assert given not in {first, second}


def _post_raw(client: httpx.Client, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return client.post("/predict", content=body, headers={"Content-Type": content_type})


@pytest.mark.parametrize(
    ("send", "status", "fragments"),
    [
        pytest.param(
            lambda c: c.post("/predict", json={"records": [{**IRIS_ROW, "sepal_length": "wide"}]}),
            400,
            ["sepal_length"],
            id="wrong-type",
        ),
        pytest.param(
            lambda c: c.post("/predict", json={"records": [{"sepal_length": 1.0}]}),
            400,
            ["sepal_width", "petal_length", "petal_width"],
            id="missing-fields",
        ),
        pytest.param(
            lambda c: c.post("/predict", json={"records": [{**IRIS_ROW, "colour": "blue"}]}),
            400,
            ["colour"],
            id="extra-field",
        ),
        pytest.param(lambda c: _post_raw(c, b""), 400, ["empty"], id="empty-body"),
        pytest.param(
            lambda c: _post_raw(c, b'{"records": [{"sepal_length": 1,'), 400, [], id="malformed-json"
        ),
        pytest.param(
            lambda c: _post_raw(c, b'{"records": [' + b'{"a": 1},' * 150_000 + b"{}]}"),
            413,
            ["request body too large", "limit is 1000000 bytes", "MLFACTOR_MAX_REQUEST_BYTES"],
            id="huge-body",
        ),
        pytest.param(
            lambda c: c.post("/predict", json={"records": [IRIS_ROW] * 5001}),
            413,
            ["5000", "MLFACTOR_MAX_ROWS"],
            id="too-many-rows",
        ),
        pytest.param(
            lambda c: _post_raw(c, b"sepal_length=1", "application/x-www-form-urlencoded"),
            415,
            [],
            id="form-content-type",
        ),
        pytest.param(
            lambda c: c.post("/invocations", json={"records": [IRIS_ROW]}), 400, [], id="no-format-key"
        ),
    ],
)
def test_bad_inputs_get_their_status_and_a_json_error(
    client: httpx.Client, send: Any, status: int, fragments: list[str]
) -> None:
    """Each bad input gets its 4xx and a JSON error naming the problem, the request id and the model."""
    answer = send(client)
    assert answer.status_code == status
    body = answer.json()
    text = json.dumps(body)
    for fragment in fragments:
        assert fragment in text
    assert body["error_code"] and body["message"]
    assert "Traceback" not in answer.text
    assert body["request_id"] == answer.headers["x-request-id"]
    assert body["model"]["name"] == "iris-classifier"


def test_unknown_paths_and_methods_get_json_404_and_405(client: httpx.Client) -> None:
    """An unknown path is a JSON 404; a known path with the wrong method a 405 naming the method to use."""
    missing = client.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "NOT_FOUND"
    wrong = client.get("/predict")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"


def test_metadata_names_model_version_run_and_release(client: httpx.Client, registered_model: Any) -> None:
    """/metadata reports the model name, version, run id, input schema, variants and MLFACTOR_RELEASE."""
    body = client.get("/metadata").json()
    assert body["model"]["name"] == "iris-classifier"
    assert body["model"]["version"] == registered_model.version
    assert body["model"]["run_id"] == registered_model.run_id
    assert body["model"]["predict_path"] == "native-matrix"
    assert [f["name"] for f in body["model"]["inputs"]] == FEATURES
    assert body["variants"]["champion"]["weight"] == 1
    assert body["release"] == "r-test-1"
    assert (body["ready"], body["draining"]) == (True, False)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/livez", b"\n", id="livez"),
        pytest.param("/healthz", b"\n", id="healthz"),
        pytest.param("/readyz", b"\n", id="readyz"),
        pytest.param("/ping", b"\n", id="ping"),
        pytest.param("/health", b"\n", id="health"),
    ],
)
def test_probes_answer_200_when_loaded(client: httpx.Client, path: str, body: bytes) -> None:
    """Liveness, readiness and MLflow's /ping and /health answer 200 with a newline once loaded."""
    answer = client.get(path)
    assert (answer.status_code, answer.content) == (200, body)


def test_version_is_the_mlflow_version(client: httpx.Client) -> None:
    """/version answers the installed MLflow version, as mlflow models serve does."""
    from importlib.metadata import version

    assert client.get("/version").text == version("mlflow")


def test_metrics_count_requests_per_model_version_and_variant(
    service: InProcessService, registered_model: Any
) -> None:
    """/metrics counts requests labelled with path, status, model, version and variant, plus rows."""
    fresh = service.reconfigured({})
    with fresh.client() as client:
        client.post("/predict", json={"records": [IRIS_ROW, VIRGINICA]})
        text = client.get("/metrics").text
    labels = (
        f'model="iris-classifier",path="/predict",status="200",variant="champion",'
        f'version="{registered_model.version}"'
    )
    assert f"mlfactor_requests_total{{{labels}}} 1.0" in text
    assert "mlfactor_request_duration_seconds_bucket{" in text
    assert (
        f'mlfactor_predicted_rows_total{{model="iris-classifier",variant="champion",'
        f'version="{registered_model.version}"}} 2.0'
    ) in text


def test_random_paths_share_one_label_and_keep_metrics_small(service: InProcessService) -> None:
    """10 000 requests to random paths count under one `other` label; /metrics stays under 300 KB."""
    fresh = service.reconfigured({})
    for _ in range(10_000):
        request = HttpRequest("GET", f"/{uuid.uuid4().hex}")
        ctx = fresh.core.context(request.headers)
        fresh.core.finish(request, ctx, fresh.core.handle(request, ctx).status, 0.001)
    with fresh.client() as client:
        text = client.get("/metrics").content
    assert len(text) < 300_000, len(text)
    assert 'path="other",status="404"' in text.decode()
    assert b"mlfactor_requests_total" in text


def test_the_request_timeout_covers_reading_the_body(service: InProcessService) -> None:
    """A body that stops arriving is answered 504 within MLFACTOR_REQUEST_TIMEOUT, with the request id."""
    slow = service.reconfigured({"MLFACTOR_REQUEST_TIMEOUT": "0.2"})

    async def run() -> httpx.Response:
        never = asyncio.Event()

        async def stalled_body() -> Any:
            yield b'{"records": ['
            await never.wait()  # the rest never comes

        async with slow.async_client() as client:
            return await client.post(
                "/predict",
                content=stalled_body(),
                headers={"Content-Type": "application/json", "X-Request-ID": "late-1"},
            )

    answer = asyncio.run(run())
    assert answer.status_code == 504
    assert answer.json()["error_code"] == "TIMEOUT"
    assert "MLFACTOR_REQUEST_TIMEOUT" in answer.json()["message"]
    assert answer.headers["x-request-id"] == "late-1"


def test_over_the_concurrency_limit_answers_429_while_probes_stay_200(service: InProcessService) -> None:
    """MLFACTOR_MAX_CONCURRENCY=1 with one request in flight: the next gets 429, probes still 200."""
    limited = service.reconfigured({"MLFACTOR_MAX_CONCURRENCY": "1"})

    async def run() -> tuple[int, int, list[int], int]:
        release = asyncio.Event()

        async def held_body() -> Any:
            yield b'{"records": ['
            await release.wait()
            yield json.dumps(IRIS_ROW).encode() + b"]}"

        async with limited.async_client() as client:
            held = asyncio.create_task(
                client.post("/predict", content=held_body(), headers={"Content-Type": "application/json"})
            )
            while limited.app.in_flight == 0:  # until the held request holds its slot
                await asyncio.sleep(0)
            refused = await client.post("/predict", json={"records": [IRIS_ROW]})
            probes = [(await client.get(p)).status_code for p in ("/livez", "/readyz", "/metrics", "/ping")]
            release.set()
            first = await held
            after = await client.post("/predict", json={"records": [IRIS_ROW]})
            return refused.status_code, first.status_code, probes, after.status_code

    refused, held, probes, after = asyncio.run(run())
    assert (refused, held, after) == (429, 200, 200)
    assert probes == [200, 200, 200, 200]


BIG_ROW = {**IRIS_ROW, **{f"extra_{i}": i * 1.5 for i in range(40)}}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            lambda: json.dumps({"dataframe_records": [BIG_ROW] * 4000}).encode(), id="2.7MB-records"
        ),
        pytest.param(
            lambda: json.dumps({"dataframe_records": [{f"unknown_{i}": 1 for i in range(200_000)}]}).encode(),
            id="200000-unknown-fields",
        ),
    ],
)
def test_livez_answers_while_a_large_body_is_processed(service: InProcessService, body: Any) -> None:
    """Large bodies are parsed and validated off the event loop: /livez is answered before they are."""
    payload = body()
    assert len(payload) > 2_000_000
    roomy = service.reconfigured({"MLFACTOR_MAX_REQUEST_BYTES": "10485760", "MLFACTOR_MAX_ROWS": "10000"})
    answered: list[str] = []  # paths in the order their answers started

    async def observed(scope: Any, receive: Any, send: Any) -> None:
        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start":
                answered.append(scope["path"])
            await send(message)

        await roomy.app(scope, receive, watch)

    async def run() -> int:
        delivered = asyncio.Event()

        async def chunks() -> Any:
            yield payload
            delivered.set()  # the app asked for more: it holds the whole body and starts parsing

        transport = httpx.ASGITransport(app=observed)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            big = asyncio.create_task(
                client.post("/invocations", content=chunks(), headers={"Content-Type": "application/json"})
            )
            await delivered.wait()  # parsing on the event loop would have answered before we wake
            while "/invocations" not in answered:
                assert (await client.get("/livez")).status_code == 200
                await asyncio.sleep(0)
            return (await big).status_code

    status = asyncio.run(run())
    assert status < 500
    assert answered[0] == "/livez", answered[:3]


def test_while_draining_readiness_is_503_and_answers_close_the_connection(service: InProcessService) -> None:
    """Once shutdown started, /readyz and /ping answer 503 and every answer carries Connection: close."""
    draining = service.reconfigured({})
    assert draining.state.start_draining()
    with draining.client() as client:
        ready = client.get("/readyz")
        ping = client.get("/ping")
        scored = client.post("/predict", json={"records": [IRIS_ROW]})
    assert (ready.status_code, ping.status_code) == (503, 503)
    assert ready.json()["error_code"] == "SHUTTING_DOWN"
    assert scored.status_code == 200  # requests that still arrive are served
    assert {r.headers["connection"] for r in (ready, ping, scored)} == {"close"}


def test_before_the_model_is_loaded_scoring_is_503_and_liveness_200(registered_model: Any) -> None:
    """While loading: /livez 200, /readyz and /ping 503, /predict 503 NOT_READY naming /readyz."""
    from mlfactor.serving.asgi import ServingApp
    from mlfactor.serving.core import ServingCore
    from mlfactor.serving.state import WorkerState
    from mlfactor.settings import load_settings

    app = ServingApp(core=ServingCore(WorkerState(load_settings(registered_model.env))))
    service = InProcessService(registered_model.env, app.core.state, app.core, app)
    with service.client() as client:
        statuses = [client.get(p).status_code for p in ("/livez", "/readyz", "/ping")]
        scored = client.post("/predict", json={"records": [IRIS_ROW]})
    assert statuses == [200, 503, 503]
    assert scored.status_code == 503
    assert "/readyz" in scored.json()["message"]


def test_docs_json_documents_every_route_with_the_model_signature(client: httpx.Client) -> None:
    """/docs.json lists every route; its row schema is the signature's columns, types and required ones."""
    from mlfactor.serving.core import ROUTES

    document = client.get("/docs.json").json()
    assert set(ROUTES) <= set(document["paths"])
    row = document["components"]["schemas"]["Row"]
    assert row["properties"] == {name: {"type": "number"} for name in FEATURES}
    assert row["required"] == FEATURES
    predict = document["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "429", "503", "504"} <= set(predict["responses"])
    assert {"application/json", "text/csv"} <= set(
        document["paths"]["/invocations"]["post"]["requestBody"]["content"]
    )


def test_bentoml_async_client_predicts_in_process(service: InProcessService) -> None:
    """BentoML's async client over the app finds predict and invocations in /schema.json and calls them."""
    # bentoml.AsyncHTTPClient is this class with its `app` argument (the in-process transport) hidden
    from _bentoml_impl.client.http import AsyncHTTPClient

    async def run() -> tuple[Any, Any]:
        async with AsyncHTTPClient("http://testserver", app=service.app, server_ready_timeout=0) as client:
            return await client.predict(records=[VIRGINICA]), await client.invocations(instances=[IRIS_ROW])

    predicted, invoked = asyncio.run(run())
    assert predicted["predictions"] == [2]
    assert predicted["variant"] == "champion"
    assert invoked == {"predictions": [0]}
