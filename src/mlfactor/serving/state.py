"""What the HTTP layer of one worker reads: the loaded runtime, readiness and limits.

The service (:mod:`mlfactor.serving.service`) creates one :class:`ServiceState`
per worker at import and fills it in as the model loads and when shutdown
starts; it holds no data about requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ServiceState:
    """What the HTTP layer reads: the runtime once loaded, readiness and limits. Set by the service."""

    runtime: Any = None  # ServingRuntime once loaded
    metrics: Any = None  # ServiceMetrics
    settings: Any = None
    workers: int = 1
    release: str | None = None
    loaded: bool = False
    draining: bool = False
    failed: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Ready to take traffic: every model loaded and no shutdown under way."""
        return self.loaded and not self.draining and self.failed is None
