"""The service in the test process: the real core and ASGI app over a loaded model, no server process.

    service = start_in_process(registered_model.env, {"MLFACTOR_MAX_ROWS": "10"})
    with service.client() as client:          # a sync httpx.Client over the ASGI app
        client.post("/predict", json={"records": [IRIS_ROW]})
    async with service.async_client() as client:   # httpx.AsyncClient(transport=ASGITransport(app))
        await client.get("/livez")
    service.reconfigured({"MLFACTOR_REQUEST_TIMEOUT": "0.5"})   # same loaded model, other limits

Loading runs the real resolver child against the environment's registry (a
few seconds), so share one service per module with a module-scoped fixture;
:meth:`InProcessService.reconfigured` gives other limits without loading again
(settings that change what is loaded, such as variants, need their own start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from mlfactor.serving.asgi import ServingApp
from mlfactor.serving.core import ServingCore
from mlfactor.serving.state import WorkerState
from mlfactor.serving.worker import load_runtime
from mlfactor.settings import load_settings

BASE_URL = "http://testserver"


class SyncASGITransport(httpx.BaseTransport):
    """A synchronous httpx transport over an ASGI app: one event loop in a thread of its own."""

    def __init__(self, app: ServingApp) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="asgi-loop", daemon=True)
        self._thread.start()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to the app on the loop thread and return the complete response."""

        async def send() -> httpx.Response:
            inner = httpx.Request(
                request.method, request.url, headers=request.headers, content=request.read()
            )
            answer = await self._inner.handle_async_request(inner)
            body = b"".join([chunk async for chunk in answer.stream])  # type: ignore[union-attr]
            return httpx.Response(answer.status_code, headers=answer.headers, content=body)

        return asyncio.run_coroutine_threadsafe(send(), self._loop).result()

    def close(self) -> None:
        """Let work scheduled after the answers (shadow, prediction logs) finish; stop the loop thread."""

        async def settle() -> None:
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(settle(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


@dataclass
class InProcessService:
    """A loaded worker state with the core and the ASGI app over it."""

    env: dict[str, str]
    state: WorkerState
    core: ServingCore
    app: ServingApp

    def client(self) -> httpx.Client:
        """A synchronous httpx client over the app (use it as a context manager)."""
        return httpx.Client(transport=SyncASGITransport(self.app), base_url=BASE_URL)

    def async_client(self) -> httpx.AsyncClient:
        """An async httpx client over the app through ``httpx.ASGITransport``."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL)

    def reconfigured(self, extra: Mapping[str, str]) -> InProcessService:
        """The same loaded runtime under settings with ``extra`` on top (limits, timeouts, release)."""
        env = {**self.env, **extra}
        state = WorkerState(load_settings(env), runtime=self.state.runtime, loaded=self.state.loaded)
        state.settled.set()
        core = ServingCore(state)
        return InProcessService(env, state, core, ServingApp(core=core))


def start_in_process(env: Mapping[str, str], extra: Mapping[str, str] | None = None) -> InProcessService:
    """Load the model configured by ``env`` (+ ``extra``) and return the service; fail with the load error."""
    full = {**env, **(extra or {})}
    state = WorkerState(load_settings(full))
    exit_code = load_runtime(state)
    if exit_code is not None:
        raise AssertionError(f"the model did not load (exit {exit_code}): {state.failed}")
    core = ServingCore(state)
    return InProcessService(full, state, core, ServingApp(core=core))


class EventLog(logging.Handler):
    """Collects mlfactor's log events (their fields) and lets a test wait for one to arrive."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._arrived = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the event name and its fields."""
        with self._arrived:
            self.events.append((record.getMessage(), dict(getattr(record, "fields", None) or {})))
            self._arrived.notify_all()

    def named(self, name: str) -> list[dict[str, Any]]:
        """The fields of every event called ``name`` so far."""
        with self._arrived:
            return [fields for event, fields in self.events if event == name]

    def wait_for(
        self, name: str, where: Callable[[dict[str, Any]], bool] = lambda _: True, timeout: float = 30
    ) -> dict[str, Any]:
        """Block until an event ``name`` matching ``where`` was logged; return its fields."""

        def found() -> dict[str, Any] | None:
            return next((f for event, f in self.events if event == name and where(f)), None)

        with self._arrived:
            self._arrived.wait_for(lambda: found() is not None, timeout)
            match = found()
        if match is None:
            raise AssertionError(f"no {name!r} event within {timeout} s; got {[e for e, _ in self.events]}")
        return match


@contextlib.contextmanager
def captured_events() -> Iterator[EventLog]:
    """Collect the INFO-and-above events of mlfactor's loggers inside the block."""
    log = EventLog()
    mlfactor = logging.getLogger("mlfactor")
    previous = mlfactor.level
    mlfactor.setLevel(logging.INFO)
    mlfactor.addHandler(log)
    try:
        yield log
    finally:
        mlfactor.removeHandler(log)
        mlfactor.setLevel(previous)
