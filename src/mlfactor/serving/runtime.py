"""What one service worker serves: its variants, shadow, flags; loaded once, then read-only.

:class:`ServingRuntime` is built from settings, loads every model at start
(:meth:`load`), and answers :meth:`predict` for a request key without any
registry call and without keeping state between requests. HTTP lives in
:mod:`mlfactor.serving.core`; this module is plain Python, tested directly.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlfactor.errors import ConfigError, MlfactorError
from mlfactor.log import event, get_logger
from mlfactor.model_uri import parse_model_uri
from mlfactor.monitoring.events import SCHEMA_VERSION
from mlfactor.serving.flags import Flags
from mlfactor.serving.follow import followed_aliases
from mlfactor.serving.model import (
    ServedModel,
    load_from_bento_store,
    load_from_registry,
    load_with_retry,
    resolver_command,
)
from mlfactor.serving.prefetch import PREFETCH_ENV, start_prefetch
from mlfactor.serving.protocol import Row
from mlfactor.serving.variants import assign_variant, variant_ref_uri
from mlfactor.settings import Settings
from mlfactor.syntax import format_weights, parse_weights

logger = get_logger("mlfactor.serving")
predictions_logger = get_logger("mlfactor.predictions")

BENTO_VARIANT = "packed"


@dataclass(frozen=True)
class Prediction:
    """The answer to one request: which variant and model version produced which predictions."""

    variant: str
    model: ServedModel
    predictions: list[Any]
    latency_ms: float  # the model's own time on these rows (validation included)


def plan_variants(settings: Settings) -> tuple[str, list[tuple[str, str]], tuple[tuple[str, int], ...]]:
    """(model name, [(variant, uri)], weights) from settings; the shadow is appended as ``shadow``."""
    if settings.bento_model:
        if settings.variants or settings.shadow:
            raise ConfigError(
                {
                    "MLFACTOR_VARIANTS": "a Bento serves the one model it carries "
                    "(MLFACTOR_BENTO_MODEL is set); "
                    "unset MLFACTOR_VARIANTS and MLFACTOR_SHADOW, or serve from the registry."
                }
            )
        return settings.bento_model, [(BENTO_VARIANT, settings.bento_model)], ((BENTO_VARIANT, 1),)
    ref = parse_model_uri(settings.resolved_model_uri)
    name = ref.name
    if settings.variants:
        planned = [(variant, variant_ref_uri(name, variant)) for variant, _ in settings.variants]
        weights = settings.variants
    else:
        variant = ref.alias or ref.version or "default"
        planned = [(variant, ref.uri)]
        weights = ((variant, 1),)
    if settings.shadow:
        planned.append(("shadow", variant_ref_uri(name, settings.shadow)))
    return name, planned, weights


def prefetch_served_models(settings: Settings) -> dict[str, str]:
    """Start resolving the served models ahead of the workers; the variables that tell them where.

    {} when there is nothing to prefetch: a Bento's packed model, a prefetch
    already started by whoever launched us, or a configuration the workers
    will refuse with a clear error anyway.
    """
    if settings.bento_model or settings.prefetch_file:
        return {}
    try:
        _, planned, _ = plan_variants(settings)
    except MlfactorError:
        return {}
    uris = list(dict.fromkeys(uri for _, uri in planned))
    command, env = resolver_command(settings)
    return {PREFETCH_ENV: str(start_prefetch(settings, uris, command, env))}


class ServingRuntime:
    """The models of one worker and the per-request decisions (variant, shadow, logging)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_name, self.planned, self.weights = plan_variants(settings)
        self.followed = followed_aliases(settings, self.planned)  # ConfigError before any load
        self.models: dict[str, ServedModel] = {}
        self.flags = Flags(
            settings.flags_file,
            shadow=bool(settings.shadow),
            log_predictions=settings.log_predictions > 0,
            variant_weights="",
        )
        self.flags.watch()
        self._last_bad_weights: str | None = None
        self._shadow_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """True once every planned model is loaded."""
        return len(self.models) == len(self.planned)

    @property
    def primary(self) -> ServedModel | None:
        """The first configured variant's model (what /metadata and errors name)."""
        return self.models.get(self.planned[0][0])

    def load(self, stopping: Callable[[], bool] = lambda: False) -> None:
        """Load every planned model once (each URI once), retrying an unreachable registry."""
        uris = list(dict.fromkeys(uri for _, uri in self.planned))
        if self.settings.bento_model:
            by_uri = {uri: load_from_bento_store(uri, self.settings.environ) for uri in uris}
        else:
            prefetched = [self.settings.prefetch_file] if self.settings.prefetch_file else []
            by_uri = load_with_retry(  # the prefetched answer on the first attempt only
                lambda: load_from_registry(self.settings, uris, prefetched.pop() if prefetched else None),
                what=", ".join(uris),
                wait=self.settings.registry_wait,
                stopping=stopping,
            )
        for variant, uri in self.planned:
            model = by_uri[uri]
            self.models[variant] = model
            event(
                logger,
                "model_loaded",
                variant=variant,
                model_name=model.name,
                model_version=model.version,
                run_id=model.run_id,
                source=model.source,
                flavor=model.flavor,
                predict_path=model.predict_path,
                load_s=model.load_seconds,
            )

    def current_weights(self) -> Sequence[tuple[str, int]]:
        """Return the split in force: the valid ``variant_weights`` flag, else the configured split."""
        raw = self.flags.variant_weights() if self.flags.provider is not None else ""
        if not raw:
            return self.weights
        try:
            return parse_weights(raw, [name for name, _ in self.weights])
        except ValueError as exc:
            if raw != self._last_bad_weights:
                self._last_bad_weights = raw
                event(
                    logger,
                    "flag_invalid",
                    level=logging.ERROR,
                    flag="variant_weights",
                    error=str(exc),
                    using=format_weights(self.weights),
                )
            return self.weights

    def choose(self, key: str) -> str:
        """Return the variant serving request key ``key``."""
        return assign_variant(key, self.current_weights())

    def swap(self, variants: Sequence[str], model: ServedModel) -> None:
        """Serve ``model`` for ``variants`` from the next request on (requests under way keep theirs)."""
        for variant in variants:
            self.models[variant] = model  # one dict store each: atomic for every reader

    def predict(
        self,
        rows: Sequence[Row],
        variant: str,
        model: ServedModel,
        *,
        allow_extra: bool,
        params: Mapping[str, object] | None = None,
    ) -> Prediction:
        """Validate ``rows`` against ``model``'s schema and predict; RequestError when invalid.

        The caller looks ``model`` up once per request, so a request is answered
        wholly by one version even when a swap happens meanwhile.
        """
        started = time.perf_counter()
        model.schema.validate(rows, allow_extra=allow_extra)
        predictions = model.predict(rows, params)
        return Prediction(variant, model, predictions, _elapsed_ms(started))

    def log_rate(self, request_id: str) -> float:
        """The share of requests logged if ``request_id``'s request is logged, else 0.

        The decision hashes the request id, so every replica (and a retry) decides alike.
        With the ``log_predictions`` flag on and no rate configured, every request is logged.
        """
        if not self.flags.log_predictions():
            return 0.0
        rate = self.settings.log_predictions or 1.0
        sampled = zlib.crc32(request_id.encode()) / 2**32 < rate
        return rate if sampled else 0.0

    def shadow_enabled(self) -> bool:
        """Whether a shadow is loaded and its flag is on."""
        return "shadow" in self.models and self.flags.shadow()

    def score_shadow(self, rows: Sequence[Row], served: Prediction, request_id: str) -> None:
        """Score the shadow on ``rows`` and log its predictions beside the served ones (never raises)."""
        shadow = self.models["shadow"]
        try:
            with self._shadow_lock:
                started = time.perf_counter()
                shadow.schema.validate(rows, allow_extra=True)
                predictions = shadow.predict(rows)
                latency_ms = _elapsed_ms(started)
        except Exception as exc:  # noqa: BLE001 - a shadow failure must never reach the client
            event(
                logger,
                "shadow_failed",
                level=logging.WARNING,
                request_id=request_id,
                error=str(exc)[:300],
                model_name=shadow.name,
                model_version=shadow.version,
            )
            return
        event(
            predictions_logger,
            "shadow_prediction",
            schema_version=SCHEMA_VERSION,
            request_id=request_id,
            variant=served.variant,
            model_name=served.model.name,
            model_version=served.model.version,
            shadow=True,
            shadow_model_name=shadow.name,
            shadow_version=shadow.version,
            rows=len(rows),
            outputs=predictions,
            served_outputs=served.predictions,
            agree=sum(a == b for a, b in zip(served.predictions, predictions, strict=False)),
            latency_ms=latency_ms,
        )

    def log_prediction(self, rows: Sequence[Row], served: Prediction, request_id: str, rate: float) -> None:
        """Emit one ``prediction`` event of a sampled request; ``rate`` is the share sampled."""
        event(
            predictions_logger,
            "prediction",
            schema_version=SCHEMA_VERSION,
            request_id=request_id,
            variant=served.variant,
            model_name=served.model.name,
            model_version=served.model.version,
            shadow=False,
            sample_rate=rate,
            rows=len(rows),
            inputs=list(rows),
            outputs=served.predictions,
            latency_ms=served.latency_ms,
        )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
