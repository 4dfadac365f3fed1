"""Logging as an event stream: one JSON object per line on stdout (factor XI).

Only entry points call :func:`configure_logging` (the CLI, the service worker,
the notebook bootstrap). Library code gets a logger with :func:`get_logger` and
emits events with :func:`event`; :func:`bind` adds context (pipeline, step,
run_id, model_version, ...) to every event inside a ``with`` block.

Third-party loggers (bentoml, uvicorn, mlflow, papermill, alembic, ...) lose
their own handlers and propagate to the root, so their lines are JSON too.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType, ModuleType
from typing import IO, Any

from mlfactor.import_hooks import after_import
from mlfactor.masking import mask_text

ROUTED_LOGGERS = (
    "bentoml",
    "bentoml.access",
    "bentoml.serve",
    "bentoml._internal",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "mlflow",
    "papermill",
    "alembic",
    "nbclient",
    "traitlets",
    "httpx",
    "openfeature",
)
# Chatty at INFO about what mlfactor's own events already say once (papermill: every path and kernel).
_QUIET_LOGGERS = dict.fromkeys(("httpx", "alembic", "traitlets", "papermill", "nbclient"), logging.WARNING)

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "mlfactor_log_context", default=_EMPTY
)
_secrets: list[str] = []
_routed_level: list[int] = []  # the level configure_logging set, until reset_logging
_hooked: list[bool] = []  # the after-import hook is registered once per process
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with ANSI colours
}


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every event logged inside the block (thread- and task-local)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bound_context() -> dict[str, Any]:
    """The fields currently bound with :func:`bind`."""
    return dict(_context.get())


def get_logger(name: str) -> logging.Logger:
    """A stdlib logger; its events become JSON lines once an entry point configured logging."""
    return logging.getLogger(name)


def event(logger: logging.Logger, name: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event ``name`` with ``fields``."""
    logger.log(level, name, extra={"fields": fields})


def _event_dict(record: logging.LogRecord) -> dict[str, Any]:
    data: dict[str, Any] = {
        "timestamp": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "event": record.getMessage(),
        "logger": record.name,
    }
    data.update(getattr(record, "context", None) or _context.get())
    data.update(getattr(record, "fields", None) or {})
    for key, value in record.__dict__.items():
        if key not in _RESERVED and key not in {"fields", "context"} and not key.startswith("_"):
            data.setdefault(key, value)
    if record.exc_info and record.exc_info[0] is not None:
        data["exception"] = logging.Formatter().formatException(record.exc_info)
    return data


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object: timestamp, level, event, logger, context, fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one JSON line, secrets masked."""
        text = json.dumps(_event_dict(record), default=str, ensure_ascii=False)
        return mask_text(text, _secrets)


class ConsoleFormatter(logging.Formatter):
    """Render a record for a person at a terminal: time, level, event, then key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one readable line, secrets masked."""
        data = _event_dict(record)
        head = f"{data.pop('timestamp')[11:23]} {data.pop('level'):<7} {data.pop('event')}"
        data.pop("logger", None)
        exception = data.pop("exception", None)
        tail = " ".join(f"{k}={v}" for k, v in data.items())
        text = f"{head}  {tail}" if tail else head
        if exception:
            text += "\n" + exception
        return mask_text(text, _secrets)


class _ContextFilter(logging.Filter):
    """Capture bound context at emit time, so records handed across threads keep it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "context"):
            record.context = _context.get()
        return True


def resolve_format(log_format: str, stream: IO[str]) -> str:
    """Turn ``auto`` into ``console`` on a terminal and ``json`` otherwise."""
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def configure_logging(
    level: int | str = logging.INFO,
    log_format: str = "auto",
    *,
    stream: IO[str] | None = None,
    secrets: list[str] | None = None,
) -> logging.Handler:
    """Send every logger's records to ``stream`` (stdout) as JSON or console lines; idempotent.

    ``level`` is a ``logging`` constant (``Settings.log_level``) or its name.
    """
    numeric = level if isinstance(level, int) else logging.getLevelNamesMapping()[level.upper()]
    target = stream if stream is not None else sys.stdout
    handler = logging.StreamHandler(target)
    chosen = resolve_format(log_format, target)
    handler.setFormatter(JsonFormatter() if chosen == "json" else ConsoleFormatter())
    handler.addFilter(_ContextFilter())
    handler.set_name("mlfactor")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    _routed_level[:] = [numeric]
    _route_libraries(numeric)
    # MLflow installs its own stderr handler when it is first imported, which commands now do
    # after this call: route its logger again right then.
    if not _hooked and "mlflow" not in sys.modules:
        after_import("mlflow", _route_again)
        _hooked.append(True)
    logging.captureWarnings(True)
    _secrets[:] = list(secrets or [])
    return handler


def _route_libraries(level: int) -> None:
    """Drop the libraries' own handlers so their records reach the root handler, at ``level`` or quieter."""
    for name in ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        for old in list(routed.handlers):
            routed.removeHandler(old)
        routed.propagate = True
        routed.setLevel(max(level, _QUIET_LOGGERS.get(name, logging.NOTSET)))


def _route_again(module: ModuleType) -> None:
    """After a library's first import (which may configure its loggers): route them as configured."""
    if _routed_level:
        _route_libraries(_routed_level[0])


def log_error(logger: logging.Logger, exc: BaseException, exit_code: int) -> None:
    """How an entry point reports a failure: one JSON ``error`` event on stdout, the message on stderr."""
    event(
        logger, "error", level=logging.ERROR, error=type(exc).__name__, message=str(exc), exit_code=exit_code
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.write(f"Error: {exc}\n")
    sys.stderr.flush()


def reset_logging() -> None:
    """Undo :func:`configure_logging` (and the service's access-log silencing), as at interpreter start.

    Removes only the handlers mlfactor installed, so a test framework's own
    capture handlers stay; tests call it between tests so none inherits another's configuration.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "mlfactor"]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.WARNING)
    for name in ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.setLevel(logging.NOTSET)
        routed.propagate = True
        routed.disabled = False
    logging.captureWarnings(False)
    _secrets.clear()
    _routed_level.clear()
    _hooked.clear()
