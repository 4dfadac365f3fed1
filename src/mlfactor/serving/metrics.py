"""Prometheus metrics of one service, per model version and variant, in a directory of its own.

Each :class:`ServiceMetrics` registers its counters in its own registry, so
two in one process (tests) never collide. Under ``bentoml serve`` every worker
writes to the multiprocess directory the supervisor handed it, and
:meth:`ServiceMetrics.render` merges that directory's files. The supervisor
gives each service a fresh directory of its own (:func:`use_own_multiprocess_dir`),
removed when it exits, so two services on one host never see (or wipe) each
other's counters. Label values are bounded by the caller: paths are route
names, unknown paths share one label.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServiceMetrics:
    """Request counter, latency histogram, row counter and served-version gauge of one service."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("path", "status", "model", "version", "variant")
        self.requests = Counter(
            "mlfactor_requests", "HTTP requests answered.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "mlfactor_request_duration_seconds",
            "Time from request to complete response.",
            ("path", "model", "version", "variant"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "mlfactor_predicted_rows",
            "Rows predicted.",
            ("model", "version", "variant"),
            registry=self.registry,
        )
        # One series per worker under `bentoml serve` (a pid label): during a swap they may differ.
        self.served_version = Gauge(
            "mlfactor_served_model_version",
            "Registry version each variant answers with (the newest one swapped in).",
            ("model", "variant"),
            registry=self.registry,
            multiprocess_mode="liveall",
        )

    def serving(self, model: str, variant: str, version: str) -> None:
        """Record the version ``variant`` now answers with (non-numeric versions are not recorded)."""
        if version.isdigit():
            self.served_version.labels(model, variant).set(int(version))

    def observe(
        self, *, path: str, status: int, model: str, version: str, variant: str, seconds: float, rows: int
    ) -> None:
        """Record one answered request (``path`` is a bounded route label)."""
        self.requests.labels(path, str(status), model, version, variant).inc()
        self.latency.labels(path, model, version, variant).observe(seconds)
        if rows:
            self.rows.labels(model, version, variant).inc(rows)

    def render(self) -> bytes:
        """Return the Prometheus text exposition: every worker's files, or this registry alone."""
        directory = os.environ.get(MULTIPROC_ENV)
        if directory and Path(directory).is_dir() and _multiprocess_values():
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]  # untyped upstream
            return generate_latest(merged)
        return generate_latest(self.registry)


def shared_service_dir() -> Path | None:
    """The directory every worker of this service shares (its multiprocess directory); None in-process."""
    directory = os.environ.get(MULTIPROC_ENV)
    return Path(directory) if directory and Path(directory).is_dir() else None


def _multiprocess_values() -> bool:
    """True when prometheus_client keeps values in files (the worker started with the directory set)."""
    return bool(getattr(prometheus_values.ValueClass, "_multiprocess", False))


def use_own_multiprocess_dir() -> Path:
    """Give the service started by this process a fresh multiprocess directory, removed at exit.

    Called in the ``bentoml serve`` supervisor before it starts workers: BentoML
    would otherwise use ``$BENTOML_HOME/prometheus_multiproc_dir`` for every
    service on the host and wipe it at each start.
    """
    from bentoml._internal.configuration.containers import BentoMLContainer

    path = Path(tempfile.mkdtemp(prefix=f"mlfactor-metrics-{os.getpid()}-"))
    BentoMLContainer.prometheus_multiproc_dir.set(str(path))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
