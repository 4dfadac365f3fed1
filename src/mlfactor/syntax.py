"""The value syntaxes a user types in more than one place: durations, quantities, weight lists.

One parser per syntax, used by every file, variable and option that takes it,
so the user learns each syntax once:

* a **duration** (a step's ``timeout``, ``admin gc --older-than``): a number of
  seconds, or a number with a unit ``s``, ``m``, ``h``, ``d`` or ``w``;
* a **quantity** (``deploy render --cpu``, ``--memory``): a Kubernetes
  resource quantity such as ``500m``, ``1`` or ``1Gi``;
* a **weight list** (``MLFACTOR_VARIANTS``, the ``variant_weights`` flag):
  ``REF=WEIGHT`` pairs separated by commas, whole-number weights.

Each parser raises ValueError whose message says what was expected; callers
add where the value came from. The click parameter types of the CLI are in
:mod:`mlfactor.cli.types`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

DURATION_SYNTAX = "a number of seconds, or a number with a unit s, m, h, d or w (e.g. 90s, 10m, 1.5h, 30d)"
QUANTITY_SYNTAX = "a Kubernetes quantity such as 500m, 1, 2Gi or 512Mi"
WEIGHTS_SYNTAX = "comma-separated REF=WEIGHT pairs with whole-number weights (e.g. champion=90,challenger=10)"

_DURATION = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def parse_duration(value: object) -> float:
    """Return the seconds (>= 0) of ``90``, ``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"``, ``"30d"`` or ``"2w"``.

    Raises ValueError naming the value and the syntax; callers that need more
    than zero (a step timeout) check that themselves.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; expected {DURATION_SYNTAX}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is not a duration; expected {DURATION_SYNTAX}, not negative")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; expected {DURATION_SYNTAX}")
    unit = (match["unit"] or "s").lower()
    return float(match["number"]) * _UNIT_SECONDS[unit]


def parse_quantity(text: str) -> str:
    """Return ``text`` when it is a Kubernetes resource quantity (``500m``, ``1Gi``); ValueError otherwise."""
    if not _QUANTITY.match(text.strip()):
        raise ValueError(f"{text!r} is not a quantity; expected {QUANTITY_SYNTAX}")
    return text.strip()


def parse_weights(raw: str, known: Sequence[str] | None = None) -> tuple[tuple[str, int], ...]:
    """Parse ``champion=90,challenger=10`` into ``(("champion", 90), ("challenger", 10))``.

    An empty string is no split (``()``). With ``known``, every REF must be one
    of them (the variants a service loaded). ValueError names the first problem.
    """
    if not raw.strip():
        return ()
    pairs: list[tuple[str, int]] = []
    for item in raw.split(","):
        ref, sep, weight = item.strip().partition("=")
        ref = ref.strip()
        if not sep or not ref or not weight.strip().isdigit():
            raise ValueError(f"'{item.strip()}' is not REF=WEIGHT with a whole-number weight")
        if known is not None and ref not in known:
            raise ValueError(f"'{ref}' is not a loaded variant (loaded: {', '.join(known)})")
        pairs.append((ref, int(weight)))
    refs = [ref for ref, _ in pairs]
    if len(set(refs)) != len(refs):
        raise ValueError("a variant is named twice")
    if sum(weight for _, weight in pairs) <= 0:
        raise ValueError("the weights add up to 0")
    return tuple(pairs)


def format_weights(pairs: Sequence[tuple[str, int]]) -> str:
    """The inverse of :func:`parse_weights`: ``champion=90,challenger=10``."""
    return ",".join(f"{ref}={weight}" for ref, weight in pairs)
