"""Prometheus metrics of the service, per model version and variant.

Created in the worker after BentoML set ``PROMETHEUS_MULTIPROC_DIR``, so every
worker writes to the shared multiprocess files that BentoML's ``/metrics``
endpoint collects (creating them at import time would bypass them).
"""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """Request counter, latency histogram and row counter labelled by model, version, variant."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        labels = ("path", "status", "model", "version", "variant")
        self.requests: Any = Counter("mlfactor_requests", "HTTP requests answered.", labels)
        self.latency: Any = Histogram(
            "mlfactor_request_duration_seconds",
            "Time from request to complete response.",
            ("path", "model", "version", "variant"),
            buckets=LATENCY_BUCKETS,
        )
        self.rows: Any = Counter(
            "mlfactor_predicted_rows", "Rows predicted.", ("model", "version", "variant")
        )

    def observe(
        self, *, path: str, status: int, model: str, version: str, variant: str, seconds: float, rows: int
    ) -> None:
        """Record one answered request."""
        self.requests.labels(path, str(status), model, version, variant).inc()
        self.latency.labels(path, model, version, variant).observe(seconds)
        if rows:
            self.rows.labels(model, version, variant).inc(rows)
