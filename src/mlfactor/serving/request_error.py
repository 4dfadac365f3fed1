"""What a bad prediction request raises: :class:`RequestError`, shaped like MLflow's scoring errors.

Every parser and validator of the serving package raises this one class with
the HTTP status to answer (400, 413 or 415). Its :meth:`RequestError.body` is
what ``mlflow models serve`` answers (``error_code``, ``message``,
``error_class``, ``sqlstate``) plus mlfactor's ``problems`` list, which never
holds more than :data:`MAX_PROBLEMS` lines: a body with 200 000 bad fields
gives the first ones and a count of the rest. Values are described by type
and a short prefix (:func:`describe`), never echoed whole.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mlfactor.errors import ValidationError
from mlfactor.names import MAX_SHOWN_ROWS as MAX_SHOWN_ROWS  # noqa: PLC0414 - re-exported for serving/
from mlfactor.names import rows_text as rows_text  # noqa: PLC0414 - the one row-list formatter, re-exported

Row = dict[str, Any]

MAX_PROBLEMS = 20  # the most problems one error lists; the rest are counted in one last line
_SHORT = 24

# error_code, error_class and sqlstate as mlflow models serve answers them (mlflow.exceptions)
_MALFORMED = {"error_code": "BAD_REQUEST", "error_class": "INVALID_PARAMETER_VALUE", "sqlstate": "KAM00"}
_SCHEMA = {
    "error_code": "INVALID_PARAMETER_VALUE",
    "error_class": "SCHEMA_ENFORCEMENT_FAILED",
    "sqlstate": "KAM01",
}
_OTHER_CODES = {413: "REQUEST_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}


class RequestError(ValidationError):
    """Raised when a prediction request is malformed, too large or does not match the model's schema."""

    def __init__(
        self,
        status: int,
        subject: str,
        problems: Sequence[str],
        *,
        schema: bool = False,
        more: int = 0,
    ) -> None:
        listed = [_utf8(problem) for problem in problems[:MAX_PROBLEMS]]
        hidden = more + max(0, len(problems) - MAX_PROBLEMS)
        if hidden:
            listed.append(f"... and {hidden} more problem{'s' if hidden != 1 else ''} of the same kinds")
        super().__init__(_utf8(subject), listed)
        self.status = status
        self.schema = schema

    def body(self) -> dict[str, Any]:
        """The JSON error body: MLflow's ``error_code``/``message``/``error_class`` plus every problem."""
        if self.status == 400:
            codes: dict[str, str] = _SCHEMA if self.schema else _MALFORMED
        else:
            codes = {"error_code": _OTHER_CODES.get(self.status, "BAD_REQUEST")}
        return {**codes, "message": self.message, "problems": self.problems}


def _utf8(text: str) -> str:
    """``text`` with lone surrogates (from JSON escapes such as ud800) spelled out, so it encodes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def short(text: str, limit: int = _SHORT) -> str:
    """``text`` cut to ``limit`` characters with ``...`` (for names and values in messages)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: Any) -> str:
    """Describe a JSON value for error messages by its type and a short prefix, never the whole value."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else f"boolean {str(value).lower()}"
    if isinstance(value, int) and value.bit_length() > 64:  # nobody reads 400 digits (repr may raise)
        return f"integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, int | float):
        return f"number {short(repr(value))}"
    if isinstance(value, str):
        return f"string {json.dumps(short(value))}"
    if isinstance(value, list | dict):
        noun = "array of {} item" if isinstance(value, list) else "object with {} key"
        return noun.format(len(value)) + ("s" if len(value) != 1 else "")
    return type(value).__name__


def plural(count: int, noun: str) -> str:
    """``1 field``, ``2 fields``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def name_text(name: object) -> str:
    """A column or key name for a message: quoted, cut when long."""
    return "'" + short(str(name), 40) + "'"


def names_text(names: Sequence[str], limit: int = 10) -> str:
    """Up to ``limit`` names, quoted, and how many more."""
    shown = ", ".join(name_text(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "") if names else "none"
