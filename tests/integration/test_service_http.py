"""The service over real HTTP: one `bentoml serve` process for the module, the registered iris champion.

The last test stops the server with SIGTERM while 32 requests are in flight.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
from service_harness import FEATURES, IRIS_ROW, Server, start_service

VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}

pytestmark = pytest.mark.slow

LIMITS = {
    "MLFACTOR_MAX_REQUEST_BYTES": "1000000",
    "MLFACTOR_MAX_ROWS": "5000",
    "MLFACTOR_RELEASE": "r-test-1",
}


@pytest.fixture(scope="module")
def server(registered_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One service for the module, on the session's registered model."""
    started = start_service(registered_model.env, tmp_path_factory.mktemp("service-http"), extra=LIMITS)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def iris_rows() -> list[dict[str, float]]:
    """Return the 150 iris rows with the model's feature names."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.drop(columns=["target"])
    frame.columns = FEATURES
    return frame.to_dict(orient="records")


def test_predict_answers_predictions_with_model_and_version(server: Server, registered_model: Any) -> None:
    """POST /predict returns predictions plus the registered model's name, version and variant."""
    answer = server.post_json("/predict", {"records": [IRIS_ROW, VIRGINICA]})
    assert answer.status == 200
    body = answer.json()
    assert body["predictions"] == [0, 2]
    assert body["model"] == {"name": "iris-classifier", "version": registered_model.version}
    assert body["variant"] == "champion"
    assert answer.headers["x-mlfactor-model-version"] == registered_model.version


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
    server: Server, registered_model: Any, iris_rows: list[dict[str, float]], make_payload: Any
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
    answer = server.post_json("/invocations", make_payload(iris_rows))
    assert answer.status == 200, answer.body
    assert answer.json() == {"predictions": expected}


def test_request_id_is_taken_from_the_header_and_returned(server: Server) -> None:
    """X-Request-ID is echoed in the header, the body and the access line."""
    answer = server.post_json("/predict", {"records": [IRIS_ROW]}, headers={"X-Request-ID": "req-abc-123"})
    assert answer.headers["x-request-id"] == "req-abc-123"
    assert answer.json()["request_id"] == "req-abc-123"
    time.sleep(0.2)
    lines = [e for e in server.events("request") if e.get("request_id") == "req-abc-123"]
    assert len(lines) == 1
    assert {k: lines[0][k] for k in ("method", "path", "status", "model_name", "variant")} == {
        "method": "POST",
        "path": "/predict",
        "status": 200,
        "model_name": "iris-classifier",
        "variant": "champion",
    }
    assert lines[0]["latency_ms"] > 0


def test_a_request_id_is_generated_when_absent(server: Server) -> None:
    """Without X-Request-ID each response gets a fresh id."""
    first = server.post_json("/predict", {"records": [IRIS_ROW]}).headers["x-request-id"]
    second = server.post_json("/predict", {"records": [IRIS_ROW]}).headers["x-request-id"]
    assert first and second and first != second


def _post_raw(server: Server, body: bytes, content_type: str = "application/json") -> Any:
    return server.request("POST", "/predict", body, {"Content-Type": content_type})


@pytest.mark.parametrize(
    ("send", "status", "fragments"),
    [
        pytest.param(
            lambda s: s.post_json("/predict", {"records": [{**IRIS_ROW, "sepal_length": "wide"}]}),
            400,
            ["field 'sepal_length': expected a number (double), got string \"wide\""],
            id="wrong-type",
        ),
        pytest.param(
            lambda s: s.post_json("/predict", {"records": [{"sepal_length": 1.0}]}),
            400,
            [
                "field 'sepal_width' is missing",
                "field 'petal_length' is missing",
                "field 'petal_width' is missing",
            ],
            id="missing-fields",
        ),
        pytest.param(
            lambda s: s.post_json("/predict", {"records": [{**IRIS_ROW, "colour": "blue"}]}),
            400,
            ["unexpected field 'colour'"],
            id="extra-field",
        ),
        pytest.param(lambda s: _post_raw(s, b""), 400, ["empty request body"], id="empty-body"),
        pytest.param(
            lambda s: _post_raw(s, b'{"records": [{"sepal_length": 1,'),
            400,
            ["malformed JSON"],
            id="malformed-json",
        ),
        pytest.param(
            lambda s: _post_raw(s, b'{"records": [' + b'{"a": 1},' * 150_000 + b"{}]}"),
            413,
            ["request body too large", "limit is 1000000 bytes"],
            id="huge-body",
        ),
        pytest.param(
            lambda s: s.post_json("/predict", {"records": [IRIS_ROW] * 5001}),
            413,
            ["got 5001 rows; the limit is 5000"],
            id="too-many-rows",
        ),
        pytest.param(
            lambda s: _post_raw(s, b"sepal_length=1", "application/x-www-form-urlencoded"),
            415,
            ["expected 'application/json'"],
            id="form-content-type",
        ),
        pytest.param(
            lambda s: s.post_json("/invocations", {"records": [IRIS_ROW]}),
            400,
            ["expected exactly one of dataframe_split, dataframe_records, instances, inputs"],
            id="invocations-unknown-format",
        ),
    ],
)
def test_bad_inputs_get_their_documented_status(
    server: Server, send: Any, status: int, fragments: list[str]
) -> None:
    """Each kind of bad input gets its status and a JSON message naming the problem, never a traceback."""
    answer = send(server)
    assert answer.status == status
    body = answer.json()
    for fragment in fragments:
        assert fragment in body["message"]
    assert "Traceback" not in answer.body.decode()
    assert body["request_id"] == answer.headers["x-request-id"]
    assert body["model"]["name"] == "iris-classifier"


def test_metadata_names_model_version_run_and_release(server: Server, registered_model: Any) -> None:
    """/metadata reports the model name, version, run id, input schema and MLFACTOR_RELEASE."""
    body = server.request("GET", "/metadata").json()
    assert body["model"]["name"] == "iris-classifier"
    assert body["model"]["version"] == registered_model.version
    assert body["model"]["run_id"] == registered_model.run_id
    assert body["model"]["predict_path"] == "native-matrix"
    assert [f["name"] for f in body["model"]["inputs"]] == FEATURES
    assert body["release"] == "r-test-1"
    assert body["ready"] is True


def test_metrics_count_requests_per_model_version_and_variant(server: Server, registered_model: Any) -> None:
    """/metrics exposes request counts and latency histograms labelled with version and variant."""
    server.post_json("/predict", {"records": [IRIS_ROW]})
    text = server.request("GET", "/metrics").body.decode()
    labels = (
        f'model="iris-classifier",path="/predict",status="200",variant="champion",'
        f'version="{registered_model.version}"'
    )
    count_lines = [line for line in text.splitlines() if line.startswith("mlfactor_requests_total{")]
    assert any(all(part in line for part in labels.split(",")) for line in count_lines), count_lines
    assert "mlfactor_request_duration_seconds_bucket{" in text


def test_liveness_and_readiness_answer(server: Server) -> None:
    """/livez and /readyz answer 200 once the model is loaded."""
    assert server.request("GET", "/livez").status == 200
    assert server.request("GET", "/readyz").status == 200


def test_sigterm_with_32_requests_in_flight(server: Server) -> None:
    """SIGTERM: readiness 503 first, all 32 in-flight requests complete whole, exit within the grace."""
    rows = [IRIS_ROW] * 5000
    payload = json.dumps(
        {"dataframe_split": {"columns": FEATURES, "data": [list(r.values()) for r in rows]}}
    ).encode()
    results: list[Any] = [None] * 32
    readiness: list[tuple[float, Any]] = []
    stop_polling = threading.Event()

    def call(i: int) -> None:
        try:
            answer = server.request(
                "POST", "/invocations", payload, {"Content-Type": "application/json"}, timeout=30
            )
            results[i] = (answer.status, len(answer.json()["predictions"]))
        except (OSError, urllib.error.URLError, ValueError) as exc:  # ValueError: a body cut short
            results[i] = ("error", type(exc).__name__)

    def poll() -> None:
        while not stop_polling.is_set():
            try:
                status: Any = server.request("GET", "/readyz", timeout=5).status
            except OSError as exc:
                status = type(exc).__name__
            readiness.append((time.monotonic(), status))
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    callers = [threading.Thread(target=call, args=(i,)) for i in range(32)]
    for thread in callers:
        thread.start()
    time.sleep(0.5)
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    returncode = server.process.wait(timeout=30)
    elapsed = time.monotonic() - sent
    for thread in callers:
        thread.join(timeout=30)
    stop_polling.set()
    poller.join()

    assert elapsed < 10.0, f"exited {elapsed:.1f} s after SIGTERM"
    assert returncode == 0
    assert results == [(200, 5000)] * 32, results
    after = [status for at, status in readiness if at >= sent and status != 200]
    assert after and after[0] == 503, readiness[-20:]
    events = server.events()  # every line parses as JSON, from start to exit
    names = [e["event"] for e in events]
    assert names.index("shutdown_started") < names.index("shutdown_complete")
    assert (
        sum(
            1
            for e in events
            if e["event"] == "request" and e["path"] == "/invocations" and e.get("rows") == 5000
        )
        == 32
    )
