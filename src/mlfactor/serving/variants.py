"""Deterministic traffic split between model variants, with no server state.

A request's key (header ``X-MLFACTOR-Key``, or a random key when absent) is
hashed into one of ``sum(weights)`` buckets; the buckets are laid out in the
order the variants are configured. The same key always lands on the same
variant for the same weights, in every worker and every replica.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

KEY_HEADER = "x-mlfactor-key"


def variant_ref_uri(model_name: str, ref: str) -> str:
    """Return the model URI of a variant reference: a version number or an alias."""
    return f"models:/{model_name}/{ref}" if ref.isdigit() else f"models:/{model_name}@{ref}"


def bucket(key: str, total: int) -> int:
    """Return the bucket in ``range(total)`` that ``key`` hashes to (SHA-256, stable across processes)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % total


def assign_variant(key: str, weights: Sequence[tuple[str, int]]) -> str:
    """Pick the variant for ``key`` from ``(name, weight)`` pairs; weights need not add up to 100."""
    live = [(name, weight) for name, weight in weights if weight > 0]
    if not live:
        raise ValueError("no variant has a positive weight")
    if len(live) == 1:
        return live[0][0]
    point = bucket(key, sum(weight for _, weight in live))
    for name, weight in live:
        if point < weight:
            return name
        point -= weight
    return live[-1][0]  # unreachable: point < total


def new_key() -> str:
    """Return a random request key, for requests that carry none."""
    return secrets.token_hex(8)
