"""Micro-batching: concurrent calls answered by one model call, each caller its own rows and errors.

The model behind the batcher is a small recording model with real MLflow metadata (signature and
MLmodel metadata); the batcher itself is the real one. A gate holds the model's first call so the
test knows, without timing, which calls are waiting when the next batch is taken.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from waiting import wait_until

from mlfactor.serving import batching
from mlfactor.serving.batching import BatchingPredictor, BatchPolicy, batch_predictions, scores_in_thread


class RecordingModel:
    """Answers each row with its query upper-cased; records every frame; the first call waits on a gate."""

    def __init__(self, batching: dict[str, Any] | None) -> None:
        signature = ModelSignature(
            inputs=Schema([ColSpec(DataType.string, "query"), ColSpec(DataType.long, "k", required=False)])
        )
        self.metadata = Model(
            signature=signature, metadata={"mlfactor": {"batching": batching}} if batching else None
        )
        self.frames: list[pd.DataFrame] = []
        self.gate = threading.Event()
        self.entered = threading.Event()

    def predict(self, frame: pd.DataFrame, params: dict[str, Any] | None = None) -> list[str]:
        """Upper-case queries (with k when given); 'boom' anywhere fails the whole call."""
        self.frames.append(frame)
        if len(self.frames) == 1:
            self.entered.set()
            self.gate.wait(timeout=30)
        if (frame["query"] == "boom").any():
            raise ValueError("boom")
        if "k" in frame:
            ks = [k if pd.isna(k) else int(k) for k in frame["k"]]
            return [f"{q.upper()}:{k}" for q, k in zip(frame["query"], ks, strict=True)]
        return [q.upper() for q in frame["query"]]


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads standing in for the service's scoring threads."""
    with ThreadPoolExecutor(max_workers=8) as executor:
        yield executor


def held_then_released(
    predictor: BatchingPredictor, model: RecordingModel, pool: ThreadPoolExecutor, frames: list[pd.DataFrame]
) -> list[Future[Any]]:
    """Start one call that holds the model, queue ``frames`` behind it, then open the gate."""
    first = pool.submit(predictor.predict, pd.DataFrame({"query": ["first"]}))
    assert model.entered.wait(timeout=30)
    waiting = [pool.submit(predictor.predict, frame) for frame in frames]
    wait_until(lambda: predictor.pending == len(frames), timeout=30, what="the calls did not queue")
    model.gate.set()
    assert first.result(timeout=30) == ["FIRST"]
    return waiting


def test_waiting_calls_share_one_model_call(pool: ThreadPoolExecutor) -> None:
    """Five calls queued behind a running one are answered by one model call, each with its own rows."""
    model = RecordingModel({"max_batch_size": 64, "max_latency_ms": 5, "workers": 1})
    predictor = batch_predictions(model)
    frames = [pd.DataFrame({"query": [f"q{i}", f"r{i}"]}) for i in range(5)]
    waiting = held_then_released(predictor, model, pool, frames)
    assert [f.result(timeout=30) for f in waiting] == [[f"Q{i}", f"R{i}"] for i in range(5)]
    assert [len(frame) for frame in model.frames] == [1, 10]
    assert predictor.stats.calls == 6 and predictor.stats.batches == 2 and predictor.stats.largest == 5


def test_a_second_worker_scores_while_the_first_batch_runs(pool: ThreadPoolExecutor) -> None:
    """With two workers, calls arriving while a batch is held in the model are answered meanwhile."""
    model = RecordingModel({"max_batch_size": 64, "max_latency_ms": 0, "workers": 2})
    predictor = batch_predictions(model)
    first = pool.submit(predictor.predict, pd.DataFrame({"query": ["first"]}))
    assert model.entered.wait(timeout=30)
    assert predictor.predict(pd.DataFrame({"query": ["second"]})) == ["SECOND"]
    assert not first.done()
    model.gate.set()
    assert first.result(timeout=30) == ["FIRST"]


def test_a_batch_never_exceeds_max_batch_size(pool: ThreadPoolExecutor) -> None:
    """With max_batch_size 4, four queued two-row calls take two model calls after the first."""
    model = RecordingModel({"max_batch_size": 4, "max_latency_ms": 0, "workers": 1})
    predictor = batch_predictions(model)
    frames = [pd.DataFrame({"query": ["a", "b"]}) for _ in range(4)]
    waiting = held_then_released(predictor, model, pool, frames)
    assert all(f.result(timeout=30) == ["A", "B"] for f in waiting)
    assert [len(frame) for frame in model.frames] == [1, 4, 4]


def test_a_failing_call_fails_alone(pool: ThreadPoolExecutor) -> None:
    """A batch that raises is retried call by call: only the caller with the bad row gets the error."""
    model = RecordingModel({"max_batch_size": 64, "max_latency_ms": 0, "workers": 1})
    predictor = batch_predictions(model)
    good, bad = held_then_released(
        predictor, model, pool, [pd.DataFrame({"query": ["fine"]}), pd.DataFrame({"query": ["boom"]})]
    )
    assert good.result(timeout=30) == ["FINE"]
    with pytest.raises(ValueError, match="boom"):
        bad.result(timeout=30)


def test_rows_without_an_optional_column_are_scored_apart() -> None:
    """Rows giving k and rows leaving it null reach the model separately, k as integers, order kept."""
    model = RecordingModel(None)
    model.entered.set()
    model.gate.set()
    predictor = batch_predictions(model)
    frame = pd.DataFrame.from_records([{"query": "a", "k": 2}, {"query": "b"}, {"query": "c", "k": 3}])
    assert predictor.predict(frame) == ["A:2", "B", "C:3"]
    assert [list(f.columns) for f in model.frames] == [["query", "k"], ["query"]]
    assert model.frames[0]["k"].dtype.kind == "i"


def test_nulls_outside_optional_columns_are_left_to_the_model() -> None:
    """A model without a column signature gets its frame whole, nulls included, in one call."""
    model = RecordingModel(None)
    model.entered.set()
    model.gate.set()
    model.metadata = Model()
    predictor = batch_predictions(model)
    frame = pd.DataFrame.from_records([{"query": "a", "k": 2}, {"query": "b"}])
    assert predictor.predict(frame) == ["A:2", "B:nan"]
    assert len(model.frames) == 1 and list(model.frames[0].columns) == ["query", "k"]


def test_models_that_do_not_opt_in_are_called_directly() -> None:
    """No batching metadata: no worker thread, one model call per call, and no thread offload."""
    model = RecordingModel(None)
    model.entered.set()
    model.gate.set()
    predictor = batch_predictions(model)
    assert not predictor.batching and predictor.policy is None
    assert predictor.predict(pd.DataFrame({"query": ["x"]})) == ["X"]
    runtime = SimpleNamespace(models={"champion": SimpleNamespace(pyfunc=predictor)})
    assert not scores_in_thread("/predict", runtime)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        pytest.param(
            {"max_batch_size": 8, "max_latency_ms": 2, "workers": 3}, BatchPolicy(8, 2.0, 3), id="declared"
        ),
        pytest.param({}, BatchPolicy(), id="defaults"),
        pytest.param({"max_batch_size": 0}, None, id="zero-size"),
        pytest.param({"workers": 0}, None, id="no-workers"),
        pytest.param("yes", None, id="not-a-mapping"),
    ],
)
def test_policy_from_metadata(declared: Any, expected: BatchPolicy | None) -> None:
    """The policy is read from metadata.mlfactor.batching; anything malformed means no batching."""
    assert BatchPolicy.from_metadata({"mlfactor": {"batching": declared}}) == expected


def test_an_idle_batcher_thread_ends_and_the_next_call_starts_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without calls the worker ends (a swapped-out model holds no thread); the next call still works."""
    monkeypatch.setattr(batching, "IDLE_SECONDS", 0.05)
    model = RecordingModel({"max_batch_size": 8})
    model.entered.set()
    model.gate.set()
    predictor = batch_predictions(model)
    assert predictor.predict(pd.DataFrame({"query": ["one"]})) == ["ONE"]
    wait_until(lambda: not predictor.running, timeout=30, what="the idle batcher thread did not end")
    assert predictor.predict(pd.DataFrame({"query": ["two"]})) == ["TWO"]
