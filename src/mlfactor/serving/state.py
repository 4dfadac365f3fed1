"""What one service worker knows about itself: its settings, loaded runtime, metrics, readiness, shutdown.

:class:`WorkerState` is the one mutable object of a worker. The model loader
(:func:`mlfactor.serving.worker.load_runtime`) fills in :attr:`runtime` or
:attr:`failed`; the shutdown handler sets :attr:`draining`; the HTTP core
(:mod:`mlfactor.serving.core`) only reads it. It holds nothing about requests.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlfactor.serving.metrics import ServiceMetrics
from mlfactor.serving.runtime import ServingRuntime
from mlfactor.settings import Settings

if TYPE_CHECKING:
    from mlfactor.serving.follow import AliasFollower


@dataclass
class WorkerState:
    """One worker: settings, the runtime once loaded, its metrics, and where it is in its life."""

    settings: Settings
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    runtime: ServingRuntime | None = None  # attached before loading, so errors can name the model
    follower: AliasFollower | None = None  # with MLFACTOR_FOLLOW_INTERVAL, once loaded
    loaded: bool = False
    failed: str | None = None
    draining: bool = False
    shutdown_started: float | None = None  # time.monotonic() of the first SIGTERM/SIGINT
    settled: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def workers(self) -> int:
        """Worker processes of the service (the 429 limit is split across them)."""
        return self.settings.workers

    @property
    def ready(self) -> bool:
        """Ready to take traffic: every model loaded and no shutdown under way."""
        return self.loaded and not self.draining and self.failed is None

    def mark_loaded(self) -> None:
        """Record that every model of the runtime is loaded; wake whoever waits for the load to end."""
        self.loaded = self.runtime is not None and self.runtime.ready
        self.settled.set()

    def mark_failed(self, message: str) -> None:
        """Record why the model could not be loaded and wake whoever waits for the load to end."""
        self.failed = message
        self.settled.set()

    def start_draining(self) -> bool:
        """Turn readiness off for good and stop following; True the first time (the caller shuts down)."""
        if self.draining:
            return False
        self.draining = True
        if self.follower is not None:
            self.follower.stop()
        self.shutdown_started = time.monotonic()
        return True

    def shutdown_elapsed(self) -> float | None:
        """Seconds since shutdown started, or None before."""
        return None if self.shutdown_started is None else time.monotonic() - self.shutdown_started
