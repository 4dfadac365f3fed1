"""Runtime feature flags: an OpenFeature provider backed by a JSON or YAML file.

``MLFACTOR_FLAGS_FILE`` names a file holding one mapping of flag names to
values, for example::

    shadow: true                       # score the shadow variant
    log_predictions: false             # emit `prediction` events
    variant_weights: champion=50,challenger=50

The service evaluates flags through the OpenFeature SDK (``openfeature-sdk``)
on every request; :class:`FileFlagProvider` re-reads the file when its
modification time or size changes (checked at most every ``poll_interval``
seconds), so editing it changes behaviour without a restart. A file that does
not parse keeps the last good flags and logs one ``flags_file_invalid`` error.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider import AbstractProvider, Metadata

from mlfactor.log import event, get_logger

logger = get_logger(__name__)

FLAG_SHADOW = "shadow"
FLAG_LOG_PREDICTIONS = "log_predictions"
FLAG_VARIANT_WEIGHTS = "variant_weights"
KNOWN_FLAGS = (FLAG_SHADOW, FLAG_LOG_PREDICTIONS, FLAG_VARIANT_WEIGHTS)
DOMAIN = "mlfactor"


def read_flags_file(path: Path) -> dict[str, Any]:
    """Parse the flags file (JSON, or YAML for .yaml/.yml); ValueError when it is not a mapping."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"expected a mapping of flag names to values, got {type(data).__name__}")
    return {str(k): v for k, v in data.items()}


class FileFlagProvider(AbstractProvider):
    """OpenFeature provider serving flags from a file, reloaded when the file changes."""

    def __init__(self, path: Path, *, poll_interval: float = 0.5) -> None:
        super().__init__()
        self.path = path
        self.poll_interval = poll_interval
        self._flags: dict[str, Any] = {}
        self._stamp: tuple[float, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self.refresh(force=True)

    def watch(self) -> None:
        """Re-read the file in a background thread, so changes (and errors) show without traffic."""
        if self._watcher is not None:
            return

        def loop() -> None:
            while True:
                time.sleep(self.poll_interval)
                self.refresh()

        self._watcher = threading.Thread(target=loop, name="mlfactor-flags", daemon=True)
        self._watcher.start()

    def get_metadata(self) -> Metadata:
        """Return the provider name shown by the SDK."""
        return Metadata(name=f"mlfactor file provider ({self.path.name})")

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the file when it changed; keep the last good flags when it is broken."""
        now = time.monotonic()
        if not force and now - self._checked < self.poll_interval:
            return
        with self._lock:
            self._checked = now
            try:
                stat = self.path.stat()
            except OSError as exc:
                if self._stamp is not None or force:
                    event(
                        logger,
                        "flags_file_invalid",
                        level=logging.ERROR,
                        path=str(self.path),
                        error=f"cannot read: {exc.strerror}",
                        kept=sorted(self._flags),
                    )
                self._stamp = None
                return
            stamp = (stat.st_mtime, stat.st_size)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                flags = read_flags_file(self.path)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                event(
                    logger,
                    "flags_file_invalid",
                    level=logging.ERROR,
                    path=str(self.path),
                    error=str(exc),
                    kept=sorted(self._flags),
                )
                return
            unknown = sorted(set(flags) - set(KNOWN_FLAGS))
            self._flags = flags
            event(logger, "flags_loaded", path=str(self.path), flags=flags, unknown=unknown)

    def _resolve(self, key: str, default: Any, kind: type | tuple[type, ...]) -> FlagResolutionDetails[Any]:
        if self._watcher is None:
            self.refresh()
        if key not in self._flags:
            return FlagResolutionDetails(
                value=default, reason=Reason.DEFAULT, error_code=ErrorCode.FLAG_NOT_FOUND
            )
        value = self._flags[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            return FlagResolutionDetails(
                value=default,
                reason=Reason.ERROR,
                error_code=ErrorCode.TYPE_MISMATCH,
                error_message=f"flag {key!r} is {type(value).__name__}",
            )
        return FlagResolutionDetails(value=value, reason=Reason.STATIC)

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        """Resolve a boolean flag."""
        return self._resolve(flag_key, default_value, bool)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        """Resolve a string flag."""
        return self._resolve(flag_key, default_value, str)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        """Resolve an integer flag."""
        return self._resolve(flag_key, default_value, int)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        """Resolve a number flag."""
        return self._resolve(flag_key, default_value, (int, float))

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Any,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Any]:
        """Resolve an object (mapping or list) flag."""
        return self._resolve(flag_key, default_value, (dict, list))


class Flags:
    """The service's runtime switches: from the flags file when configured, else from settings."""

    def __init__(
        self, path: Path | None, *, shadow: bool, log_predictions: bool, variant_weights: str
    ) -> None:
        self.defaults = {
            FLAG_SHADOW: shadow,
            FLAG_LOG_PREDICTIONS: log_predictions,
            FLAG_VARIANT_WEIGHTS: variant_weights,
        }
        self.provider = FileFlagProvider(path) if path is not None else None
        self._client = None
        if self.provider is not None:
            api.set_provider(self.provider, domain=DOMAIN)
            self._client = api.get_client(domain=DOMAIN)

    def watch(self) -> None:
        """Watch the flags file in the background (the service calls this once per worker)."""
        if self.provider is not None:
            self.provider.watch()

    def shadow(self) -> bool:
        """Whether the shadow variant scores requests."""
        if self._client is None:
            return bool(self.defaults[FLAG_SHADOW])
        return self._client.get_boolean_value(FLAG_SHADOW, bool(self.defaults[FLAG_SHADOW]))

    def log_predictions(self) -> bool:
        """Whether requests' inputs and outputs are logged as `prediction` events."""
        if self._client is None:
            return bool(self.defaults[FLAG_LOG_PREDICTIONS])
        return self._client.get_boolean_value(FLAG_LOG_PREDICTIONS, bool(self.defaults[FLAG_LOG_PREDICTIONS]))

    def variant_weights(self) -> str:
        """Return the traffic split as ``NAME=WEIGHT,...`` (empty string: the configured split)."""
        if self._client is None:
            return str(self.defaults[FLAG_VARIANT_WEIGHTS])
        return self._client.get_string_value(FLAG_VARIANT_WEIGHTS, str(self.defaults[FLAG_VARIANT_WEIGHTS]))
