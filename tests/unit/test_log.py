"""Logging: one JSON object per line on stdout (factor XI)."""

from __future__ import annotations

import io
import json
import logging

from mlfactor.log import JsonFormatter, bind, configure_logging, event, get_logger, reset_logging


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_events_are_json_lines_with_bound_context() -> None:
    """An event carries timestamp, level, event, logger, bound context and its fields."""
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    with bind(pipeline="train", step="evaluate"):
        event(get_logger("mlfactor.test"), "step_finished", duration_s=1.5)
    (line,) = _lines(stream)
    assert line["event"] == "step_finished"
    assert line["level"] == "info"
    assert line["logger"] == "mlfactor.test"
    assert line["pipeline"] == "train"
    assert line["step"] == "evaluate"
    assert line["duration_s"] == 1.5
    assert str(line["timestamp"]).endswith("+00:00")


def test_third_party_loggers_are_routed_to_json() -> None:
    """bentoml, uvicorn and mlflow records lose their own handlers and come out as JSON."""
    noisy = logging.getLogger("uvicorn.access")
    noisy.addHandler(logging.StreamHandler(io.StringIO()))
    noisy.propagate = False
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("uvicorn.access").info("GET / 200")
    logging.getLogger("mlflow.store").warning("slow")
    lines = _lines(stream)
    assert [line["event"] for line in lines] == ["GET / 200", "slow"]


def test_secrets_are_masked_in_log_lines() -> None:
    """A secret value or a URI password inside an event never reaches the stream."""
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream, secrets=["canary-8d1f"])
    event(get_logger("x"), "connecting", uri="postgresql://u:pw99@h/db", note="value canary-8d1f")
    text = stream.getvalue()
    assert "canary-8d1f" not in text
    assert "pw99" not in text


def test_console_format_is_readable_and_single_line() -> None:
    """The console format prints level, event and key=value pairs."""
    stream = io.StringIO()
    configure_logging("INFO", "console", stream=stream)
    event(get_logger("x"), "served", status=200)
    text = stream.getvalue()
    assert "served" in text
    assert "status=200" in text
    assert not text.lstrip().startswith("{")


def test_auto_format_is_json_when_not_a_terminal() -> None:
    """With format auto, a non-terminal stream gets JSON."""
    stream = io.StringIO()
    configure_logging("INFO", "auto", stream=stream)
    event(get_logger("x"), "hello")
    assert json.loads(stream.getvalue())["event"] == "hello"


def test_level_filters_events() -> None:
    """Events below the configured level are dropped."""
    stream = io.StringIO()
    configure_logging("WARNING", "json", stream=stream)
    event(get_logger("x"), "debugging", level=logging.INFO)
    assert stream.getvalue() == ""


def test_uvicorn_colour_copies_are_dropped() -> None:
    """The `color_message` of uvicorn (ANSI escapes) never reaches the JSON line."""
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("uvicorn.error").info("Started", extra={"color_message": "\x1b[36mStarted\x1b[0m"})
    line = json.loads(stream.getvalue())
    assert line["event"] == "Started"
    assert "color_message" not in line


def test_reset_logging_removes_only_mlfactors_handler_and_forgets_secrets() -> None:
    """reset_logging drops mlfactor's handler, levels and secrets, and leaves other handlers in place."""
    root = logging.getLogger()
    foreign = logging.NullHandler()
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream, secrets=["hunter2-canary"])
    root.addHandler(foreign)
    try:
        reset_logging()
        assert [h for h in root.handlers if h.get_name() == "mlfactor"] == []
        assert foreign in root.handlers
        assert root.level == logging.WARNING
        assert logging.getLogger("uvicorn").level == logging.NOTSET
        record = logging.LogRecord("mlfactor.test", logging.INFO, "", 0, "said hunter2-canary", None, None)
        assert "hunter2-canary" in JsonFormatter().format(record)  # the earlier secrets are forgotten
    finally:
        root.removeHandler(foreign)
