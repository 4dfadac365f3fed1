"""JSON request bodies decoded strictly and cheaply: every malformed body is a 400 naming the problem.

:func:`decode_json` accepts what ``mlflow models serve`` accepts (UTF-8 with or
without a byte-order mark, UTF-16/32 as :func:`json.loads` detects them) and
refuses, with a 400, what Python's parser would turn into a 500 or a silent
surprise: ``NaN``/``Infinity`` literals (not JSON), integers longer than
Python's 4300-digit limit, nesting deeper than its recursion limit, invalid
UTF-8 and repeated keys in one object (MLflow keeps the last one silently).

Repeated keys are found without slowing the common case: every ``:`` outside a
string separates one member, so when the body's ``:`` bytes are as many as the
members counted in the parsed value, no key was repeated (a ``:`` inside a
string, or a member not counted, only makes the two differ). Only bodies where
they differ are parsed a second time with a duplicate-checking hook.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from mlfactor.serving.request_error import RequestError, name_text

EXAMPLE = '{"dataframe_split": {"columns": [...], "data": [[...]]}}'


class _Constant(ValueError):
    """Raised by the parser hook on a NaN, Infinity or -Infinity literal."""


class _Duplicate(ValueError):
    """Raised by the slow-path hook on a key repeated in one object."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_constant(literal: str) -> Any:
    raise _Constant(literal)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return result


def _bad(problem: str) -> RequestError:
    return RequestError(400, "malformed JSON", [problem])


_STRICT = json.JSONDecoder(parse_constant=_refuse_constant)
_STRICT_UNIQUE = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_pairs)


def _parse(body: bytes, decoder: json.JSONDecoder) -> Any:
    try:  # what json.loads does with bytes: UTF-8 (BOM or not), UTF-16 and UTF-32 detected
        return decoder.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except UnicodeDecodeError as exc:
        raise _bad(
            f"byte 0x{body[exc.start]:02x} at position {exc.start} is not valid UTF-8; "
            "encode the body as UTF-8"
        ) from None
    except json.JSONDecodeError as exc:
        found = repr(exc.doc[exc.pos]) if exc.pos < len(exc.doc) else "the end of the body"
        raise _bad(
            f"{exc.msg} at line {exc.lineno} column {exc.colno} (found {found}); "
            f"expected a JSON object such as {EXAMPLE}"
        ) from None
    except _Constant as exc:
        raise _bad(
            f"{exc.args[0]} is not valid JSON; send a finite number, or null for a missing value"
        ) from None
    except _Duplicate as exc:
        raise _bad(
            f"key {name_text(exc.key)} appears more than once in one object; send each key once"
        ) from None
    except RecursionError:
        raise _bad(
            "the body is nested too deeply for the parser (about 1000 levels); "
            f"scoring bodies are a few levels deep: {EXAMPLE}"
        ) from None
    except ValueError:  # an integer literal past Python's int() digit limit (4300 by default)
        raise _bad(
            f"an integer literal has more than {sys.get_int_max_str_digits()} digits; "
            "send numbers a double can hold (at most 17 significant digits, exponent up to 308)"
        ) from None


def count_members(value: Any, depth: int = 4) -> int:
    """Members of the objects near the top of ``value``: the body, its format value, its rows.

    Objects deeper down are not counted (cheap: a row's values are never
    scanned); an uncounted member only makes :func:`decode_json` take its slow,
    exact path, never miss a repeated key.
    """
    count = 0
    level = [value]
    for _ in range(depth):
        below: list[Any] = []
        for item in level:
            if type(item) is dict:
                count += len(item)
                below.extend(v for v in item.values() if type(v) is dict or type(v) is list)
            elif type(item) is list and item and type(item[0]) is dict and set(map(type, item)) == {dict}:
                count += sum(map(len, item))  # records: counted, their values not looked into
        level = below
    return count


def decode_json(body: bytes) -> Any:
    """Parse a request body as strict JSON; RequestError 400 naming what is wrong and how to fix it."""
    if not body or body.isspace():
        raise RequestError(400, "empty request body", [f"expected a JSON object such as {EXAMPLE}"])
    payload = _parse(body, _STRICT)
    if body.count(b":") != count_members(payload):  # a ':' in a string, a deep object or a repeated key
        _parse(body, _STRICT_UNIQUE)
    return payload
