"""Wording every validator's messages share: close-match suggestions and lists of row numbers."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

MAX_SHOWN_ROWS = 5  # row numbers shown per problem before "and N more"


def did_you_mean(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest candidate, or an empty string."""
    pool = list(candidates)
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=cutoff)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if word.lower() in lowered:
            matches = [lowered[word.lower()]]
    return f" Did you mean '{matches[0]}'?" if matches else ""


def rows_text(
    rows: Sequence[int], limit: int = MAX_SHOWN_ROWS, *, total: int | None = None, noun: str = "row"
) -> str:
    """``rows 3, 7 and 12 more``: the first ``limit`` of ``rows`` and how many more (``total``: all of them).

    The one formatter of row lists, for request errors and batch files alike;
    ``noun`` names what is counted (``line`` for a CSV file's lines).
    """
    count = len(rows) if total is None else total
    shown = ", ".join(str(r) for r in rows[:limit])
    word = noun if count == 1 else noun + "s"
    rest = count - min(limit, len(rows))
    return f"{word} {shown}" + (f" and {rest} more" if rest > 0 else "")
