"""Experiments between model versions, in process: variants, shadow, a flags file edited at runtime.

The module registers two versions (champion v1, challenger v2, with different
regularisation so some predictions differ) in its own store and loads one
service splitting traffic 50/50, with the challenger as shadow and a flags
file. A worker killed and replaced by BentoML's supervisor is in test_service_process.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from conftest import register_demo_model, store_environment
from inprocess import EventLog, InProcessService, captured_events, start_in_process
from service_harness import IRIS_ROW, PROJECT_DIR

from mlfactor.log import JsonFormatter

ROWS = [
    IRIS_ROW,
    {"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 5.1, "petal_width": 1.6},
    {"sepal_length": 6.3, "sepal_width": 2.5, "petal_length": 4.9, "petal_width": 1.5},
]


@dataclass
class Experiment:
    """The loaded service, its flags file, store folder and the versions behind each alias."""

    service: InProcessService
    flags: Path
    folder: Path
    versions: dict[str, str]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Experiment:
    """A store with champion (v1) and challenger (v2) and a service splitting between them."""
    folder = tmp_path_factory.mktemp("service-experiments")
    env = store_environment(folder)
    champion = register_demo_model(env, alias="champion", C=1.0)
    challenger = register_demo_model(env, alias="challenger", C=0.01)
    flags = folder / "flags.json"
    flags.write_text(json.dumps({"shadow": True, "log_predictions": False}), encoding="utf-8")
    service = start_in_process(
        env,
        {
            "MLFACTOR_VARIANTS": "champion=50,challenger=50",
            "MLFACTOR_SHADOW": "challenger",
            "MLFACTOR_FLAGS_FILE": str(flags),
        },
    )
    versions = {"champion": champion.version, "challenger": challenger.version}
    return Experiment(service, flags, folder, versions)


@pytest.fixture
def client(experiment: Experiment) -> Iterator[httpx.Client]:
    """A synchronous client over the experiment's app."""
    with experiment.service.client() as opened:
        yield opened


def _set_flags(path: Path, data: Any, events: EventLog, expect: str = "flags_loaded") -> None:
    """Replace the flags file atomically and wait until the service has read it."""
    before = len(events.named(expect))
    text = data if isinstance(data, str) else json.dumps(data)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    events.wait_for(expect, where=lambda _: len(events.named(expect)) > before)


def test_each_key_sticks_to_one_variant_named_in_response(
    experiment: Experiment, client: httpx.Client
) -> None:
    """The same X-MLFACTOR-Key always gets the same variant; both variants serve; versions match variants."""
    seen: dict[str, str] = {}
    for i in range(30):
        for _ in range(2):
            answer = client.post(
                "/predict", json={"records": [IRIS_ROW]}, headers={"X-MLFACTOR-Key": f"user-{i}"}
            )
            body = answer.json()
            assert answer.status_code == 200, body
            assert seen.setdefault(f"user-{i}", body["variant"]) == body["variant"]
            assert answer.headers["x-mlfactor-variant"] == body["variant"]
            assert body["model"]["version"] == experiment.versions[body["variant"]]
    assert set(seen.values()) == {"champion", "challenger"}


def test_metadata_lists_every_variant_with_its_weight(client: httpx.Client, experiment: Experiment) -> None:
    """/metadata shows champion and challenger at 50 each, and the shadow at weight 0."""
    variants = client.get("/metadata").json()["variants"]
    assert {name: v["weight"] for name, v in variants.items()} == {
        "champion": 50,
        "challenger": 50,
        "shadow": 0,
    }
    assert variants["shadow"]["version"] == experiment.versions["challenger"]


def test_shadow_predictions_are_logged_never_returned(experiment: Experiment, client: httpx.Client) -> None:
    """The shadow scores each request after the answer; its predictions are logged, never returned."""
    with captured_events() as events:
        answer = client.post(
            "/invocations",
            json={"dataframe_records": ROWS},
            headers={"X-Request-ID": "shadow-check-1", "X-MLFACTOR-Key": "user-1"},
        )
        logged = events.wait_for("shadow_prediction", where=lambda e: e["request_id"] == "shadow-check-1")
    assert set(answer.json()) == {"predictions"}
    assert logged["served_outputs"] == answer.json()["predictions"]
    assert logged["shadow"] is True
    assert logged["shadow_version"] == experiment.versions["challenger"]
    assert len(logged["outputs"]) == len(ROWS)


def test_editing_the_flags_file_changes_behaviour_without_restart(
    experiment: Experiment, client: httpx.Client
) -> None:
    """Flag edits apply once read (logging, weights, shadow); a broken file keeps the last good flags."""
    runtime = experiment.service.state.runtime
    with captured_events() as events:
        _set_flags(experiment.flags, {"shadow": True, "log_predictions": True}, events)
        client.post("/predict", json={"records": [IRIS_ROW]}, headers={"X-Request-ID": "flag-1"})
        logged = events.wait_for("prediction", where=lambda e: e["request_id"] == "flag-1")
        assert (logged["inputs"], logged["outputs"]) == ([IRIS_ROW], [0])

        moved = {"shadow": False, "log_predictions": False, "variant_weights": "champion=0,challenger=100"}
        _set_flags(experiment.flags, moved, events)
        variants = {
            client.post("/predict", json={"records": [IRIS_ROW]}, headers={"X-MLFACTOR-Key": f"k{i}"}).json()[
                "variant"
            ]
            for i in range(10)
        }
        assert variants == {"challenger"}
        assert client.get("/metadata").json()["variants"]["champion"]["weight"] == 0

        _set_flags(experiment.flags, "{broken", events, expect="flags_file_invalid")
        again = client.post("/predict", json={"records": [IRIS_ROW]}, headers={"X-MLFACTOR-Key": "k1"})
        assert again.json()["variant"] == "challenger"  # the last good flags stay in force
        _set_flags(experiment.flags, {"shadow": True, "log_predictions": False}, events)
    assert experiment.service.state.runtime is runtime  # nothing was reloaded


def test_the_service_keeps_answering_while_the_registry_is_gone(
    experiment: Experiment, client: httpx.Client
) -> None:
    """With the registry database moved away, predictions and metadata still answer 200."""
    database = experiment.folder / "mlflow.db"
    hidden = database.with_suffix(".hidden")
    database.rename(hidden)
    try:
        assert client.post("/predict", json={"records": [IRIS_ROW]}).status_code == 200
        assert client.post("/invocations", json={"dataframe_records": ROWS}).status_code == 200
        assert client.get("/metadata").status_code == 200
    finally:
        hidden.rename(database)


STREAM_EVENTS = ("prediction", "shadow_prediction", "feedback")  # each has docs/events/NAME.schema.json


class _JsonLines(logging.Handler):
    """The JSON lines the service writes for its prediction stream, formatted as on stdout."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record as the JSON object its stdout line holds."""
        self.lines.append(json.loads(self.format(record)))


def _schema(event_name: str) -> jsonschema.protocols.Validator:
    path = PROJECT_DIR / "docs" / "events" / f"{event_name}.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def test_every_event_of_the_prediction_stream_validates_against_its_schema(
    experiment: Experiment, client: httpx.Client
) -> None:
    """prediction, shadow_prediction and feedback events as written validate against docs/events."""
    stream = logging.getLogger("mlfactor.predictions")
    lines = _JsonLines()
    stream.addHandler(lines)
    try:
        with captured_events() as events:
            _set_flags(experiment.flags, {"shadow": True, "log_predictions": True}, events)
            answer = client.post("/predict", json={"records": ROWS}, headers={"X-Request-ID": "schema-1"})
            assert answer.status_code == 200, answer.text
            events.wait_for("prediction", where=lambda e: e["request_id"] == "schema-1")
            events.wait_for("shadow_prediction", where=lambda e: e["request_id"] == "schema-1")
            posted = client.post(
                "/feedback",
                json=[{"request_id": "schema-1", "label": 0}, {"request_id": "schema-2", "value": 1.5}],
            )
            assert posted.status_code == 202, posted.text
            _set_flags(experiment.flags, {"shadow": True, "log_predictions": False}, events)
    finally:
        stream.removeHandler(lines)
    kinds = {line["event"] for line in lines.lines}
    assert set(STREAM_EVENTS) <= kinds, kinds
    for line in lines.lines:
        if line["event"] in STREAM_EVENTS:
            errors = [e.message for e in _schema(line["event"]).iter_errors(line)]
            assert not errors, (line, errors)
    prediction = next(line for line in lines.lines if line["event"] == "prediction")
    assert prediction["rows"] == len(ROWS) and prediction["latency_ms"] >= 0
    assert [line["request_id"] for line in lines.lines if line["event"] == "feedback"] == [
        "schema-1",
        "schema-2",
    ]


def test_feedback_answers_202_with_the_count_and_rejects_bad_bodies(client: httpx.Client) -> None:
    """POST /feedback answers 202 with the count; a bad body gets a 400 naming every problem."""
    with captured_events() as events:
        good = client.post("/feedback", json={"request_id": "fb-1", "label": "setosa"})
        assert good.status_code == 202 and good.json()["accepted"] == 1, good.text
        assert events.wait_for("feedback", where=lambda e: e["request_id"] == "fb-1")["label"] == "setosa"
    bad = client.post("/feedback", json=[{"request_id": "bad id!", "label": 1}, {"request_id": "x"}])
    assert bad.status_code == 400, bad.text
    message = bad.text
    assert "[0].request_id" in message and "'bad id!'" in message, message
    assert "[1]: expected exactly one of label or value, got neither" in message, message
    assert client.post("/feedback", content=b"{not json").status_code == 400


def test_a_log_rate_samples_requests_by_id_the_same_way_every_time(experiment: Experiment) -> None:
    """MLFACTOR_LOG_PREDICTIONS=0.5 logs about half the requests, the same ones on a repeat, rate recorded."""
    unset = ("MLFACTOR_FLAGS_FILE", "MLFACTOR_VARIANTS", "MLFACTOR_SHADOW")
    store_env = {k: v for k, v in experiment.service.env.items() if k not in unset}
    sampled = start_in_process(store_env, {"MLFACTOR_LOG_PREDICTIONS": "0.5"})
    runtime = sampled.state.runtime
    assert runtime is not None
    ids = [f"rate-{i}" for i in range(200)]
    chosen = {request_id for request_id in ids if runtime.log_rate(request_id)}
    assert 60 <= len(chosen) <= 140, len(chosen)  # ~100 of 200; far outside this, sampling is broken
    with sampled.client() as client, captured_events() as events:
        for _ in range(2):
            for request_id in ids:
                answer = client.post(
                    "/predict", json={"records": [IRIS_ROW]}, headers={"X-Request-ID": request_id}
                )
                assert answer.status_code == 200, answer.text
        events.wait_for("prediction", where=lambda _: len(events.named("prediction")) >= 2 * len(chosen))
    logged = [e["request_id"] for e in events.named("prediction")]
    assert sorted(logged) == sorted([*chosen, *chosen]), logged
    assert {e["sample_rate"] for e in events.named("prediction")} == {0.5}
