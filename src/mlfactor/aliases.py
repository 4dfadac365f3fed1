"""Move registry aliases with a recorded history, and roll them back.

MLflow keeps no history of alias moves (mlflow #2169, #6180). mlfactor records
every move **in the registry itself**, as one registered-model tag per move, so
every process and machine that reaches the registry sees the same history.

Each record's key is unique by construction
(``mlfactor.alias_move.<ns since epoch>.<random hex>``) and its value is a
JSON object (alias, from, to, when, who, reason, pipeline run, kind). Tag
writes are upserts, so a read-increment-write sequence number would let two
concurrent promotions overwrite each other; unique keys cannot collide, so no
move is ever lost. The history is ordered by the recorded time (then key) and
numbered 1..n when read.

Rollback is a stack: a promotion pushes, a rollback pops. ``rollback`` moves
the alias to the ``from_version`` of the newest promotion not yet rolled back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import re
import secrets
import socket
import time
from dataclasses import dataclass, replace
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlfactor.errors import NotFoundError, ValidationError
from mlfactor.log import event, get_logger
from mlfactor.names import did_you_mean
from mlfactor.registry import alias_version, require_model, set_alias
from mlfactor.registry_lock import alias_lock
from mlfactor.tags import ALIAS_MOVE_TAG_PREFIX

logger = get_logger(__name__)

CONVENTIONAL_ALIASES = ("champion", "challenger")
_ALIAS = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)
_REASON_LIMIT = 1000  # the tag value column holds 5000 characters on PostgreSQL


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias, as recorded in the registry (``changed=False``: nothing was recorded)."""

    model: str
    alias: str
    from_version: str | None
    to_version: str
    when: str
    who: str
    reason: str | None
    pipeline_run_id: str | None
    kind: str = "promote"
    move_id: str = ""
    seq: int = 0
    changed: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready mapping of every field."""
        return {
            "seq": self.seq,
            "model": self.model,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "kind": self.kind,
            "when": self.when,
            "who": self.who,
            "reason": self.reason,
            "pipeline_run_id": self.pipeline_run_id,
            "move_id": self.move_id,
            "changed": self.changed,
        }


def current_user() -> str:
    """Return ``user@host`` of this process, without reading the environment."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def validate_alias(alias: str) -> None:
    """Raise ValidationError unless ``alias`` is a name MLflow accepts and is not reserved."""
    problems: list[str] = []
    if not _ALIAS.match(alias):
        problems.append(
            f"alias {alias!r} is not valid; expected 1-128 letters, digits, '_' or '-', e.g. 'champion'"
        )
    elif _RESERVED_ALIAS.match(alias):
        problems.append(f"alias {alias!r} is reserved by MLflow ('latest' and 'v<N>'); choose another name")
    if problems:
        raise ValidationError("alias", problems)


def _require_ready_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    """Return the model version; NotFoundError/ValidationError naming what exists and what to do."""
    text = str(version).strip()
    if not text.isdigit():
        raise ValidationError("model version", [f"got {version!r}; expected a version number such as 3"])
    try:
        mv = client.get_model_version(name, text)
    except MlflowException as exc:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        raise NotFoundError(
            f"model {name!r} has no version {text}; it has versions {versions or 'none'}. "
            f"Pick one of them (`mlfactor history {name}` shows past moves)."
        ) from exc
    status = str(mv.status)
    if status != "READY":
        raise ValidationError(
            "model version",
            [
                f"version {text} of {name!r} is {status}, not READY; wait for registration to finish or pick "
                "another version"
            ],
        )
    return mv


def _check_alias_spelling(client: MlflowClient, name: str, alias: str) -> None:
    """Refuse a new alias that looks like a typo of an existing or conventional one."""
    existing = set(client.get_registered_model(name).aliases or {})
    known = existing | set(CONVENTIONAL_ALIASES) | {m.alias for m in _read_moves(client, name)}
    if alias in known:
        return
    hint = did_you_mean(alias, sorted(known))
    if hint:
        raise ValidationError(
            "alias",
            [
                f"model {name!r} has no alias {alias!r} yet and it looks like a typo.{hint} "
                f"Its aliases: {', '.join(sorted(existing)) or 'none'}. To create it anyway pass "
                "--new-alias (allow_new_alias=True)"
            ],
        )


def _now() -> tuple[int, str]:
    ns = time.time_ns()
    when = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat(timespec="milliseconds")
    return ns, when


def _record(client: MlflowClient, move: AliasMove) -> AliasMove:
    ns, when = _now()
    move_id = f"{ns:020d}.{secrets.token_hex(4)}"
    recorded = replace(move, when=when, move_id=move_id)
    payload = recorded.to_dict()
    for key in ("seq", "changed", "move_id", "model"):
        payload.pop(key)
    client.set_registered_model_tag(
        move.model, ALIAS_MOVE_TAG_PREFIX + move_id, json.dumps(payload, sort_keys=True)
    )
    return recorded


def _parse(name: str, key: str, value: str) -> AliasMove | None:
    try:
        data = json.loads(value)
        return AliasMove(
            model=name,
            alias=str(data["alias"]),
            from_version=None if data.get("from_version") is None else str(data["from_version"]),
            to_version=str(data["to_version"]),
            when=str(data.get("when", "")),
            who=str(data.get("who", "")),
            reason=data.get("reason"),
            pipeline_run_id=data.get("pipeline_run_id"),
            kind=str(data.get("kind", "promote")),
            move_id=key.removeprefix(ALIAS_MOVE_TAG_PREFIX),
        )
    except (ValueError, KeyError, TypeError):
        event(logger, "alias_move_unreadable", model=name, tag=key)
        return None


def _read_moves(client: MlflowClient, name: str) -> list[AliasMove]:
    """Return every recorded move of every alias, oldest first, numbered from 1."""
    tags = client.get_registered_model(name).tags or {}
    moves = [
        move
        for key, value in tags.items()
        if key.startswith(ALIAS_MOVE_TAG_PREFIX) and (move := _parse(name, key, value)) is not None
    ]
    moves.sort(key=lambda m: m.move_id)
    return [replace(m, seq=i) for i, m in enumerate(moves, start=1)]


def _move(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    *,
    kind: str,
    reason: str | None,
    pipeline_run_id: str | None,
    who: str | None,
) -> AliasMove:
    before = alias_version(client, name, alias)
    move = AliasMove(
        model=name,
        alias=alias,
        from_version=before,
        to_version=version,
        when="",
        who=who or current_user(),
        reason=(reason[:_REASON_LIMIT] if reason else None),
        pipeline_run_id=pipeline_run_id,
        kind=kind,
    )
    set_alias(client, name, alias, version)
    try:
        recorded = _record(client, move)
    except Exception:
        # Never leave a move without its record: put the alias back, then re-raise.
        if before is None:
            client.delete_registered_model_alias(name, alias)
        else:
            set_alias(client, name, alias, before)
        raise
    numbered = [m for m in _read_moves(client, name) if m.move_id == recorded.move_id]
    recorded = numbered[0] if numbered else recorded
    event(
        logger,
        "alias_moved",
        model=name,
        alias=alias,
        from_version=before,
        to_version=version,
        kind=kind,
        who=recorded.who,
        reason=recorded.reason,
        pipeline_run_id=pipeline_run_id,
        move_id=recorded.move_id,
    )
    return recorded


def promote_model(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    alias: str = "champion",
    reason: str | None = None,
    pipeline_run_id: str | None = None,
    who: str | None = None,
    allow_new_alias: bool = False,
) -> AliasMove:
    """Point ``alias`` of model ``name`` at ``version`` and record the move in the registry.

    Validates first: the model exists (did-you-mean otherwise), the version
    exists and is READY, the alias is a valid name and not a likely typo.
    A new alias whose name is close to an existing or conventional one
    (``champoin``) is refused as a likely typo unless ``allow_new_alias``.
    Idempotent: when the alias already points at ``version`` nothing is
    recorded and the returned move has ``changed=False``.
    """
    version = str(version).strip()
    validate_alias(alias)
    require_model(client, name)
    _require_ready_version(client, name, version)
    with alias_lock(client, name, alias):
        return _promote_locked(
            client,
            name,
            alias,
            version,
            reason=reason,
            pipeline_run_id=pipeline_run_id,
            who=who,
            allow_new_alias=allow_new_alias,
        )


def _promote_locked(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    *,
    reason: str | None,
    pipeline_run_id: str | None,
    who: str | None,
    allow_new_alias: bool,
) -> AliasMove:
    current = alias_version(client, name, alias)
    if current == version:
        event(logger, "alias_unchanged", model=name, alias=alias, version=version)
        _, when = _now()
        return AliasMove(
            name,
            alias,
            current,
            version,
            when,
            who or current_user(),
            reason,
            pipeline_run_id,
            kind="promote",
            changed=False,
        )
    if current is None and not allow_new_alias:
        _check_alias_spelling(client, name, alias)
    return _move(
        client, name, alias, version, kind="promote", reason=reason, pipeline_run_id=pipeline_run_id, who=who
    )


def rollback_target(moves: list[AliasMove], alias: str) -> AliasMove | None:
    """Return the newest promotion of ``alias`` not yet undone by a rollback (moves oldest first)."""
    stack: list[AliasMove] = []
    for move in moves:
        if move.alias != alias:
            continue
        if move.kind == "rollback":
            if stack:
                stack.pop()
        else:
            stack.append(move)
    return stack[-1] if stack else None


def rollback_model(
    client: MlflowClient,
    name: str,
    *,
    alias: str = "champion",
    reason: str | None = None,
    who: str | None = None,
) -> AliasMove:
    """Move ``alias`` back to the version it held before its last promotion, and record it.

    Repeated rollbacks walk further back through the promotions. Raises
    NotFoundError when there is nothing to roll back to, saying what to do.
    """
    validate_alias(alias)
    require_model(client, name)
    with alias_lock(client, name, alias):
        return _rollback_locked(client, name, alias, reason, who)


def _rollback_locked(
    client: MlflowClient, name: str, alias: str, reason: str | None, who: str | None
) -> AliasMove:
    moves = _read_moves(client, name)
    _require_known_alias(client, name, alias, moves)
    target = rollback_target(moves, alias)
    if target is None:
        raise NotFoundError(
            f"nothing to roll back: alias {alias!r} of {name!r} has no promotion left to undo "
            "in its history. "
            f"Point it at a version explicitly with `mlfactor promote {name} VERSION --alias {alias}`."
        )
    if target.from_version is None:
        raise NotFoundError(
            f"nothing to roll back to: alias {alias!r} of {name!r} did not exist before version "
            f"{target.to_version} was promoted (move {target.seq}). Promote another version explicitly with "
            f"`mlfactor promote {name} VERSION --alias {alias}`."
        )
    try:
        _require_ready_version(client, name, target.from_version)
    except NotFoundError as exc:
        raise NotFoundError(
            f"cannot roll back {name}@{alias} to version {target.from_version}: {exc}"
        ) from exc
    why = reason or f"rollback of move {target.seq} ({target.from_version} -> {target.to_version})"
    return _move(
        client, name, alias, target.from_version, kind="rollback", reason=why, pipeline_run_id=None, who=who
    )


def _require_known_alias(client: MlflowClient, name: str, alias: str, moves: list[AliasMove]) -> None:
    existing = set(client.get_registered_model(name).aliases or {})
    known = existing | {m.alias for m in moves}
    if alias not in known:
        raise NotFoundError(
            f"model {name!r} has no alias {alias!r}.{did_you_mean(alias, sorted(known))} "
            f"Its aliases: {', '.join(sorted(known)) or 'none'}."
        )


def alias_history(client: MlflowClient, name: str, alias: str | None = None) -> list[AliasMove]:
    """Return every recorded move of ``alias`` (or of every alias) of model ``name``, newest first."""
    require_model(client, name)
    moves = _read_moves(client, name)
    if alias is not None:
        _require_known_alias(client, name, alias, moves)
        moves = [m for m in moves if m.alias == alias]
    return list(reversed(moves))
