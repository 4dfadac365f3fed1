"""Reading event streams: JSON lines as the service writes them, from files, gzip files or stdin.

Every other line (access lines, plain text, a JSON array) is skipped, so a
whole ``kubectl logs`` dump can be read as it is. Events are yielded one at a
time; nothing here keeps a list of them.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from mlfactor.errors import NotFoundError, ValidationError

SCHEMA_VERSION = 1  # docs/events/*.schema.json; readers accept events without the field (version 0)
PREDICTION = "prediction"
SHADOW_PREDICTION = "shadow_prediction"
FEEDBACK = "feedback"
EVENT_NAMES = (PREDICTION, SHADOW_PREDICTION, FEEDBACK)
STDIN = "-"


@dataclass(frozen=True)
class EventLine:
    """One event read from a stream: where it came from and its decoded JSON object."""

    source: str
    line: int
    data: dict[str, Any]

    @property
    def name(self) -> str:
        """The event's name (``prediction``, ``shadow_prediction``, ``feedback``)."""
        return str(self.data.get("event", ""))

    def where(self) -> str:
        """``FILE:LINE`` for messages."""
        return f"{self.source}:{self.line}"


def _open(source: str) -> IO[bytes]:
    """Open ``source`` for binary reading: ``-`` is stdin; gzip (by its magic bytes) is decompressed."""
    if source == STDIN:
        raw = sys.stdin.buffer
    else:
        path = Path(source)
        if not path.is_file():
            raise NotFoundError(
                f"event file {source!r} does not exist (or is not a file); pass JSON-lines files "
                "written from the service's stdout, or - for stdin."
            )
        raw = path.open("rb")
    head = raw.peek(2)[:2] if isinstance(raw, io.BufferedReader) else b""
    if head == b"\x1f\x8b" or (not head and source.endswith(".gz")):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw))
    return raw


def read_events(sources: Iterable[str], names: Iterable[str] = EVENT_NAMES) -> Iterator[EventLine]:
    """Yield every event named in ``names`` from ``sources`` in order; other lines are skipped.

    Raises NotFoundError for a missing file and ValidationError (naming file
    and line) for a corrupt gzip stream or an event newer than this reader.
    """
    wanted = frozenset(names)
    for source in sources:
        stream = _open(source)
        try:
            yield from _events_in(stream, source, wanted)
        finally:
            if source != STDIN:
                stream.close()


def _events_in(stream: IO[bytes], source: str, wanted: frozenset[str]) -> Iterator[EventLine]:
    number = 0
    try:
        for number, raw in enumerate(stream, start=1):
            if b'"event"' not in raw:
                continue
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(data, dict) or data.get("event") not in wanted:
                continue
            version = data.get("schema_version", 0)
            if not isinstance(version, int) or version > SCHEMA_VERSION:
                raise ValidationError(
                    f"{source}:{number}",
                    [
                        f"schema_version {version!r} is newer than this mlfactor reads (at most "
                        f"{SCHEMA_VERSION}); upgrade mlfactor to read these events"
                    ],
                )
            yield EventLine(source, number, data)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ValidationError(
            f"{source}:{number + 1}",
            [f"cannot read the stream ({exc}); expected JSON lines, plain or gzip-compressed"],
        ) from exc


def event_rows(data: dict[str, Any], key: str) -> list[Any]:
    """The list under ``key`` (``inputs``/``outputs``), a lone value wrapped in a list, [] when absent."""
    value = data.get(key)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
