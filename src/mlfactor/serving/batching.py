"""Micro-batching of a pyfunc model: concurrent predict calls answered by one call of the model.

mlfactor's routes do not pass through BentoML's router, so BentoML's adaptive
batching (which needs a ``batchable`` API) cannot apply, and MLflow's pyfunc
wrapper has none (bentoml #4340). :class:`BatchingPredictor` wraps a loaded
pyfunc with the same ``predict(frame, params=None)`` and ``metadata``:

* a model opts in through its MLmodel metadata, ``mlfactor.batching:
  {max_batch_size, max_latency_ms, workers}``, which says its rows are
  answered independently (true of a search model, not of a model that
  normalises per call); other models are called directly, one call per request;
* callers queue their frame and wait; a worker thread takes every pending call
  (up to ``max_batch_size`` rows), concatenates them, calls the model once and
  hands each caller its slice. ``workers`` (2) batches run at once, so one
  batch's Python work overlaps another's model run. After a batch of one call
  a worker does not wait (no added latency at concurrency 1); after a batch of
  several it waits up to ``max_latency_ms`` for the next to fill. A worker ends
  after :data:`IDLE_SECONDS` without calls, so a swapped-out model holds no thread;
* a batch that fails is retried call by call, so one caller's bad rows never
  fail another's request;
* rows whose optional columns are null are scored apart from rows that give
  them (:mod:`mlfactor.serving.null_groups`); calls with different ``params``
  are never mixed.

The service scores such models in threads (:func:`scores_in_thread`) so that
calls can overlap at all; the event loop never waits on a batch.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlfactor.serving.null_groups import SignatureColumns, split_by_nulls

SCORING_PATHS = frozenset({"/predict", "/invocations"})
IDLE_SECONDS = 30.0  # a batcher thread without calls for this long ends (the next call starts one)


@dataclass(frozen=True)
class BatchPolicy:
    """How a model may be batched: most rows per call, longest wait for a batch to fill, batches at once.

    Two batches at once (``workers``) let one batch's Python work (tokenising, ranking, answers)
    overlap the other's model run.
    """

    max_batch_size: int = 64
    max_latency_ms: float = 5.0
    workers: int = 2

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> BatchPolicy | None:
        """The policy ``metadata.mlfactor.batching`` declares, or None when the model does not opt in."""
        section = (metadata or {}).get("mlfactor")
        declared = section.get("batching") if isinstance(section, Mapping) else None
        if not isinstance(declared, Mapping):
            return None
        size = declared.get("max_batch_size", cls.max_batch_size)
        wait = declared.get("max_latency_ms", cls.max_latency_ms)
        workers = declared.get("workers", cls.workers)
        if not isinstance(size, int) or size < 1 or not isinstance(wait, int | float) or wait < 0:
            return None
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            return None
        return cls(size, float(wait), workers)


@dataclass
class _Part:
    """Rows of one call that share their null optional columns, and where they sit in the call."""

    call: _Call
    frame: Any  # pandas DataFrame without the columns that are null in these rows
    positions: list[int]


@dataclass
class _Call:
    """One caller's frame, its parts and, once scored, its result or error."""

    frame: Any
    params: dict[str, Any] | None
    parts: list[_Part] = field(default_factory=list)
    answers: dict[int, Any] = field(default_factory=dict)  # part index -> model output for that part
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def rows(self) -> int:
        """Rows in this call."""
        return len(self.frame)


@dataclass
class BatchStats:
    """Counters of the model calls made (what the benchmark and tests read)."""

    calls: int = 0  # predict calls received
    batches: int = 0  # model calls made
    largest: int = 0  # most callers answered by one model call


def _rows_of(output: Any) -> list[Any]:
    """A model output as one item per row (DataFrame rows as dicts)."""
    if hasattr(output, "to_dict") and hasattr(output, "columns"):
        return list(output.to_dict(orient="records"))
    tolist = getattr(output, "tolist", None)
    return list(tolist()) if tolist is not None else list(output)


def _slice(output: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a model output (DataFrame, Series, array or list)."""
    iloc = getattr(output, "iloc", None)
    return iloc[start:stop].reset_index(drop=True) if iloc is not None else output[start:stop]


def _params_key(params: Mapping[str, Any] | None) -> str:
    return json.dumps(params or {}, sort_keys=True, default=str)


class BatchingPredictor:
    """A loaded pyfunc behind micro-batching when its metadata opts in; same ``predict`` and ``metadata``."""

    def __init__(self, pyfunc: Any, policy: BatchPolicy | None) -> None:
        self.pyfunc = pyfunc
        self.policy = policy
        self.stats = BatchStats()
        self._pending: list[_Call] = []
        self._ready = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._last_batch_calls = 1
        self._columns = SignatureColumns.of(pyfunc)

    @property
    def metadata(self) -> Any:
        """The wrapped model's MLflow metadata (signature, MLmodel metadata)."""
        return self.pyfunc.metadata

    @property
    def batching(self) -> bool:
        """True when concurrent calls are coalesced."""
        return self.policy is not None and self.policy.max_batch_size > 1

    @property
    def pending(self) -> int:
        """Calls waiting for the worker."""
        with self._ready:
            return len(self._pending)

    @property
    def running(self) -> bool:
        """True while a batcher thread serves this model."""
        with self._ready:
            return bool(self._workers)

    def unwrap_python_model(self) -> Any:
        """The custom Python model inside the pyfunc (as MLflow's PyFuncModel gives it)."""
        return self.pyfunc.unwrap_python_model()

    def predict(self, frame: Any, params: Mapping[str, Any] | None = None) -> Any:
        """The model's output for ``frame``, from a batch shared with concurrent callers when allowed."""
        call = _Call(frame, dict(params) if params else None)
        groups = split_by_nulls(frame, self._columns)
        call.parts = [_Part(call, rows, positions) for rows, positions in groups]
        with self._ready:
            self.stats.calls += 1
        if not self.batching:
            self._run([call])
        else:
            self._enqueue(call)
            call.done.wait()
        if call.error is not None:
            raise call.error
        if len(call.parts) == 1:
            return call.answers[0]
        rows: list[Any] = [None] * call.rows
        for index, part in enumerate(call.parts):
            for position, item in zip(part.positions, _rows_of(call.answers[index]), strict=True):
                rows[position] = item
        return rows

    def _enqueue(self, call: _Call) -> None:
        with self._ready:
            self._pending.append(call)
            assert self.policy is not None  # noqa: S101 - only batching predictors enqueue
            if len(self._workers) < self.policy.workers:
                worker = threading.Thread(target=self._work, name="mlfactor-batcher", daemon=True)
                self._workers.append(worker)
                worker.start()
            self._ready.notify()

    def _take(self) -> list[_Call]:
        """Wait for calls; return the next batch (whole calls, up to max_batch_size rows).

        An empty list means no call came for IDLE_SECONDS: the worker is then gone (the next
        call starts another), so a predictor the service swapped out holds no thread and is freed.
        """
        assert self.policy is not None  # noqa: S101 - only batching predictors start the worker
        limit = self.policy.max_batch_size
        with self._ready:
            if not self._pending:
                self._ready.wait_for(lambda: bool(self._pending), timeout=IDLE_SECONDS)
            if not self._pending:
                self._workers.remove(threading.current_thread())
                return []
            if self._last_batch_calls > 1:  # under concurrency: let the batch fill a little
                deadline = time.monotonic() + self.policy.max_latency_ms / 1000
                while sum(c.rows for c in self._pending) < limit:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
            batch: list[_Call] = []
            rows = 0
            while self._pending and (not batch or rows + self._pending[0].rows <= limit):
                call = self._pending.pop(0)
                batch.append(call)
                rows += call.rows
            self._last_batch_calls = len(batch)
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                self._run(batch)
            finally:
                for call in batch:
                    call.done.set()

    def _run(self, calls: Sequence[_Call]) -> None:
        """Score every part of ``calls``: one model call per (columns, params) group."""
        groups: dict[tuple[tuple[str, ...], str], list[tuple[_Part, int]]] = {}
        for call in calls:
            for index, part in enumerate(call.parts):
                key = (tuple(str(c) for c in part.frame.columns), _params_key(call.params))
                groups.setdefault(key, []).append((part, index))
        for members in groups.values():
            self._score(members)

    def _score(self, members: list[tuple[_Part, int]]) -> None:
        import pandas as pd

        frames = [part.frame for part, _ in members]
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        params = members[0][0].call.params
        try:
            output = self.pyfunc.predict(frame, params=params) if params else self.pyfunc.predict(frame)
            if len(members) > 1 and len(_rows_of(output)) != len(frame):
                raise ValueError(f"the model answered {len(_rows_of(output))} rows for {len(frame)}")
        except Exception as exc:  # noqa: BLE001 - each caller gets its own error below
            if len(members) == 1:
                members[0][0].call.error = exc
            else:  # score each part alone, so only the part that fails gets the error
                for member in members:
                    self._score([member])
            return
        with self._ready:
            self.stats.batches += 1
            self.stats.largest = max(self.stats.largest, len(members))
        start = 0
        for part, index in members:
            stop = start + len(part.frame)
            part.call.answers[index] = output if len(members) == 1 else _slice(output, start, stop)
            start = stop


def batch_predictions(pyfunc: Any) -> BatchingPredictor:
    """Wrap a loaded pyfunc; batched when its MLmodel metadata declares ``mlfactor.batching``."""
    metadata = getattr(getattr(pyfunc, "metadata", None), "metadata", None)
    return BatchingPredictor(
        pyfunc, BatchPolicy.from_metadata(metadata if isinstance(metadata, Mapping) else None)
    )


def scores_in_thread(path: str, runtime: Any) -> bool:
    """True when a request to ``path`` is scored by a batching model: run it in a thread to overlap."""
    if path not in SCORING_PATHS or runtime is None:
        return False
    models = getattr(runtime, "models", {})
    return any(getattr(getattr(m, "pyfunc", None), "batching", False) for m in models.values())
