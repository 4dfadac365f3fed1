"""Pure rules of alias moves: alias names, the rollback stack, reading records."""

from __future__ import annotations

import json

import pytest

from mlfactor.aliases import AliasMove, _parse, rollback_target, validate_alias
from mlfactor.errors import ValidationError
from mlfactor.tags import ALIAS_MOVE_TAG_PREFIX


def _move(seq: int, alias: str, frm: str | None, to: str, kind: str = "promote") -> AliasMove:
    return AliasMove(
        "m", alias, frm, to, f"t{seq}", "me", None, None, kind=kind, move_id=f"{seq:020d}", seq=seq
    )


@pytest.mark.parametrize("alias", ["champion", "challenger", "blue-green_2", "a"])
def test_valid_aliases_pass(alias: str) -> None:
    """Names MLflow accepts as aliases pass validation."""
    validate_alias(alias)


@pytest.mark.parametrize(
    ("alias", "words"),
    [
        pytest.param("has space", "not valid", id="space"),
        pytest.param("", "not valid", id="empty"),
        pytest.param("a/b", "not valid", id="slash"),
        pytest.param("latest", "reserved", id="latest"),
        pytest.param("v3", "reserved", id="version-like"),
        pytest.param("x" * 129, "not valid", id="too-long"),
    ],
)
def test_invalid_aliases_are_refused_with_reason(alias: str, words: str) -> None:
    """Invalid or reserved alias names raise ValidationError naming the alias and why."""
    with pytest.raises(ValidationError) as info:
        validate_alias(alias)
    assert words in str(info.value)
    assert repr(alias) in str(info.value)


def test_rollback_target_is_the_newest_promotion() -> None:
    """With promotions 1->2->3, the target is the move that set 3 (back to 2)."""
    moves = [_move(1, "champion", None, "1"), _move(2, "champion", "1", "2"), _move(3, "champion", "2", "3")]
    target = rollback_target(moves, "champion")
    assert target is not None
    assert (target.from_version, target.to_version) == ("2", "3")


def test_rollbacks_pop_promotions_like_a_stack() -> None:
    """Each recorded rollback undoes one promotion, so the next rollback goes one further back."""
    moves = [
        _move(1, "champion", None, "1"),
        _move(2, "champion", "1", "2"),
        _move(3, "champion", "2", "3"),
        _move(4, "champion", "3", "2", kind="rollback"),
    ]
    target = rollback_target(moves, "champion")
    assert target is not None
    assert target.seq == 2
    moves.append(_move(5, "champion", "2", "1", kind="rollback"))
    first = rollback_target(moves, "champion")
    assert first is not None
    assert first.from_version is None  # back at the first promotion: nothing before it


def test_rollback_target_ignores_other_aliases() -> None:
    """Moves of another alias never become the rollback target."""
    moves = [_move(1, "champion", None, "1"), _move(2, "challenger", "1", "2")]
    target = rollback_target(moves, "champion")
    assert target is not None
    assert target.seq == 1
    assert rollback_target(moves, "shadow") is None


def test_record_round_trips_through_the_tag_value() -> None:
    """A tag value written for a move parses back into the same fields."""
    value = json.dumps(
        {
            "alias": "champion",
            "from_version": "1",
            "to_version": "2",
            "when": "w",
            "who": "u@h",
            "reason": "better f1",
            "pipeline_run_id": "abc",
            "kind": "promote",
        }
    )
    move = _parse("iris", ALIAS_MOVE_TAG_PREFIX + "0001.ff", value)
    assert move is not None
    assert (
        move.model,
        move.from_version,
        move.to_version,
        move.reason,
        move.pipeline_run_id,
        move.move_id,
    ) == ("iris", "1", "2", "better f1", "abc", "0001.ff")


@pytest.mark.parametrize("value", ["not json", "{}", "[1, 2]"], ids=["text", "missing-fields", "list"])
def test_unreadable_records_are_skipped(value: str) -> None:
    """A tag that is not a move record is skipped instead of breaking the history."""
    assert _parse("iris", ALIAS_MOVE_TAG_PREFIX + "x", value) is None
