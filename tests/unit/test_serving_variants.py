"""Deterministic traffic split: weights respected over many keys, each key sticky, no server state."""

from __future__ import annotations

from collections import Counter

import pytest

from mlfactor.serving.variants import assign_variant, variant_ref_uri
from mlfactor.syntax import parse_weights

WEIGHTS = (("champion", 90), ("challenger", 10))


@pytest.mark.parametrize(
    "weights",
    [
        pytest.param((("champion", 90), ("challenger", 10)), id="90-10"),
        pytest.param((("a", 50), ("b", 50)), id="50-50"),
        pytest.param((("a", 1), ("b", 1), ("c", 2)), id="1-1-2"),
    ],
)
def test_split_over_10000_keys_is_within_2_points(weights: tuple[tuple[str, int], ...]) -> None:
    """Each variant's share over 10 000 keys is within 2 percentage points of its weight."""
    counts = Counter(assign_variant(f"user-{i}", weights) for i in range(10_000))
    total = sum(w for _, w in weights)
    for name, weight in weights:
        assert abs(counts[name] / 100 - 100 * weight / total) <= 2.0, (name, counts)


def test_each_key_always_gets_the_same_variant() -> None:
    """The same key gives the same variant on every call (sticky with no stored state)."""
    first = {f"k{i}": assign_variant(f"k{i}", WEIGHTS) for i in range(2000)}
    again = {f"k{i}": assign_variant(f"k{i}", WEIGHTS) for i in reversed(range(2000))}
    assert first == again
    assert set(first.values()) == {"champion", "challenger"}


def test_zero_weight_variant_gets_nothing() -> None:
    """A variant with weight 0 is never chosen."""
    assert {assign_variant(str(i), (("a", 0), ("b", 5))) for i in range(500)} == {"b"}


def test_weights_flag_must_name_loaded_variants() -> None:
    """A weights string naming an unknown variant is refused with the loaded names."""
    assert parse_weights("champion=50,challenger=50", ["champion", "challenger"]) == (
        ("champion", 50),
        ("challenger", 50),
    )
    with pytest.raises(ValueError, match="not a loaded variant"):
        parse_weights("champion=50,other=50", ["champion", "challenger"])
    with pytest.raises(ValueError, match="add up to 0"):
        parse_weights("champion=0", ["champion"])


def test_variant_refs_are_versions_or_aliases() -> None:
    """A numeric reference is a version, anything else an alias."""
    assert variant_ref_uri("m", "3") == "models:/m/3"
    assert variant_ref_uri("m", "challenger") == "models:/m@challenger"
