"""MLflow's own scoring payloads, side by side: a real `mlflow models serve` and mlfactor's service.

The payloads are data in tests/fixtures/scoring/ (from MLflow's scoring-server tests, its
scoring-server source and docs, and issue 10), each with a readable id and its source. Both
services serve the same registered model (``iris-classifier@champion``): MLflow as a process
on a free 127.0.0.1 port, mlfactor in process over its ASGI app. Every payload gets the same
status class from both, and the same predictions where both answer 200. A payload marked with
a ``difference`` is where mlfactor deliberately answers otherwise; docs/serving.md lists each
difference ("Differences from `mlflow models serve`") with the reason.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from inprocess import InProcessService, start_in_process
from service_harness import BIN, PROJECT_DIR, Answer, Server, free_port

pytestmark = pytest.mark.slow

FIXTURES = PROJECT_DIR / "tests" / "fixtures" / "scoring"
PAYLOADS = [item for path in sorted(FIXTURES.glob("*.json")) for item in json.loads(path.read_text())]
BY_ID = {item["id"]: item for item in PAYLOADS}
DOCS = PROJECT_DIR / "docs" / "serving.md"


def encode(payload: dict[str, Any]) -> bytes:
    """The request body a fixture entry describes (JSON, text, raw parts, base64 or a parquet frame)."""
    encoding = payload.get("encoding", "utf-8")
    if "json" in payload:
        value = payload["json"]
        if "repeat_rows" in payload:
            split = value["dataframe_split"]
            value = {"dataframe_split": {**split, "data": split["data"] * payload["repeat_rows"]}}
        return json.dumps(value).encode(encoding)
    if "text" in payload:
        return str(payload["text"]).encode(encoding)
    if "raw" in payload:
        return str(payload["raw"]).encode()
    if "raw_parts" in payload:
        return "".join(part * count for part, count in payload["raw_parts"]).encode()
    if "base64" in payload:
        return base64.b64decode(payload["base64"])
    import pandas as pd

    spec = payload["parquet"]
    frame = pd.DataFrame(spec["data"], columns=spec["columns"], index=spec.get("index"))
    if "dtype" in spec:
        frame = frame.astype(spec["dtype"])
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    body = buffer.getvalue()
    return body[: payload["truncate"]] if "truncate" in payload else body


def headers(payload: dict[str, Any]) -> dict[str, str]:
    """The Content-Type header of the entry (none when it says null)."""
    return {} if payload["content_type"] is None else {"Content-Type": payload["content_type"]}


def parsed(body: bytes) -> Any:
    """The body as JSON, or None when it is not JSON (MLflow answers 415 and 500 in plain text)."""
    try:
        return json.loads(body)
    except ValueError:
        return None


@pytest.fixture(scope="module")
def mlflow_server(registered_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`mlflow models serve` of the registered champion, with the local environment, on a free port."""
    folder = tmp_path_factory.mktemp("mlflow-serve")
    port = free_port()
    env = {**registered_model.env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    argv = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{registered_model.name}@champion"]
    argv += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    stdout, stderr = folder / "stdout.log", folder / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(argv, cwd=folder, env=env, stdout=out, stderr=err, start_new_session=True)
    server = Server(process, port, stdout, stderr)
    try:
        server.wait_ready(timeout=180, path="/ping")  # mlflow models serve has no /readyz
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mlfactor(registered_model: Any) -> InProcessService:
    """The mlfactor service on the same registered model, in process."""
    return start_in_process(registered_model.env)


def ask_mlflow(server: Server, payload: dict[str, Any]) -> Answer:
    """POST the entry to mlflow models serve."""
    return server.request("POST", "/invocations", encode(payload), headers(payload), timeout=60)


def ask_mlfactor(service: InProcessService, payload: dict[str, Any]) -> Answer:
    """POST the entry to mlfactor through its ASGI app."""
    with service.client() as client:
        answer = client.post("/invocations", content=encode(payload), headers=headers(payload))
    return Answer(answer.status_code, dict(answer.headers), answer.content)


@pytest.mark.parametrize("payload", PAYLOADS, ids=[item["id"] for item in PAYLOADS])
def test_payload_scores_as_on_mlflow_models_serve(
    payload: dict[str, Any], mlflow_server: Server, mlfactor: InProcessService
) -> None:
    """The same status class and predictions as mlflow models serve, or the documented difference."""
    theirs, ours = ask_mlflow(mlflow_server, payload), ask_mlfactor(mlfactor, payload)
    body = parsed(ours.body)
    assert ours.status < 500, ours.body[:500]
    if ours.status >= 400:
        assert {"error_code", "message", "problems"} <= set(body), body
        assert "Traceback" not in ours.body.decode("utf-8", "replace")
    if ours.status == 400:
        assert body["error_class"] in {"INVALID_PARAMETER_VALUE", "SCHEMA_ENFORCEMENT_FAILED"}, body
    if "difference" in payload:
        assert ours.status == payload["mlfactor"], (payload["difference"], body)
        assert theirs.status // 100 != ours.status // 100, (
            payload["difference"],
            theirs.status,
            theirs.body[:300],
        )
        if "same_as" in payload:
            reference = ask_mlflow(mlflow_server, BY_ID[payload["same_as"]])
            assert reference.status == 200, reference.body[:300]
            assert body["predictions"] == parsed(reference.body)["predictions"]
        return
    assert ours.status // 100 == theirs.status // 100, (theirs.status, theirs.body[:300], ours.status, body)
    if ours.status == 200:
        assert body["predictions"] == parsed(theirs.body)["predictions"]
    if "error_code" in payload:
        assert body["error_code"] == parsed(theirs.body)["error_code"] == payload["error_code"]


def test_every_difference_is_documented() -> None:
    """Each difference a payload is marked with is named in docs/serving.md with its reason."""
    text = DOCS.read_text(encoding="utf-8")
    assert "## Differences from `mlflow models serve`" in text
    section = text.split("## Differences from `mlflow models serve`", 1)[1].split("\n## ", 1)[0]
    named = {item["difference"] for item in PAYLOADS if "difference" in item}
    assert named
    missing = sorted(name for name in named if f"`{name}`" not in section)
    assert not missing, f"docs/serving.md does not explain: {missing}"


def test_fixture_ids_are_unique_and_say_where_they_come_from() -> None:
    """Every payload has its own id and names its source, so a failure points at MLflow's test or doc."""
    ids = [item["id"] for item in PAYLOADS]
    assert len(ids) == len(set(ids))
    assert all(item.get("source") for item in PAYLOADS)
    assert all(item["same_as"] in BY_ID for item in PAYLOADS if "same_as" in item)
