"""MLflow webhook deliveries: verify the HMAC signature, read the alias event.

MLflow 3 signs each delivery it sends to a webhook created with a secret
(``mlflow/webhooks/delivery.py``): ``X-MLflow-Signature: v1,<base64 HMAC-SHA256>``
over ``"{delivery id}.{timestamp}.{body}"``, with the id and the Unix timestamp
in ``X-MLflow-Delivery-Id`` and ``X-MLflow-Timestamp``. :func:`verify_delivery`
checks all three (a timestamp older than :data:`MAX_AGE_SECONDS` is a replay)
before anything in the body is trusted; :func:`alias_event` reads a
``model_version_alias`` created or deleted event out of a verified delivery;
:func:`answer_delivery` is the whole of ``POST /hooks/mlflow``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlfactor.log import event, get_logger
from mlfactor.serving.messages import HttpRequest, HttpResponse, RequestContext, error_response, json_response
from mlfactor.serving.request_error import RequestError

if TYPE_CHECKING:
    from mlfactor.serving.follow import AliasFollower

logger = get_logger("mlfactor.serving")

SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_HEADER = "x-mlflow-delivery-id"
SIGNATURE_VERSION = "v1"
MAX_AGE_SECONDS = 300  # as MLflow's docs advise receivers: older deliveries are refused as replays
ALIAS_ENTITY = "model_version_alias"


class HookRejectedError(Exception):
    """Raised when a delivery is unsigned or mis-signed (answered 401; nothing changes)."""


@dataclass(frozen=True)
class Delivery:
    """A verified webhook delivery: its id, what happened (entity, action) and the event's data."""

    delivery_id: str
    entity: str
    action: str
    data: Mapping[str, object]


@dataclass(frozen=True)
class AliasEvent:
    """An alias set (``created``) or removed (``deleted``) on a registered model."""

    name: str
    alias: str
    action: str
    version: str | None


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` value MLflow sends for ``body`` signed with ``secret``."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify_delivery(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> Delivery:
    """Check the delivery's signature and age, then read its body.

    Raises HookRejectedError (401) when a header is missing, the timestamp is
    stale or the signature does not match, and RequestError (400) when a
    correctly signed body is not an MLflow webhook payload.
    """
    delivery_id = headers.get(DELIVERY_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    missing = [
        name
        for name, value in (
            ("X-MLflow-Signature", given),
            ("X-MLflow-Delivery-Id", delivery_id),
            ("X-MLflow-Timestamp", timestamp),
        )
        if not value
    ]
    if missing:
        raise HookRejectedError(
            f"unsigned delivery: no {', '.join(missing)} header. Create the MLflow webhook with a secret "
            "(MlflowClient.create_webhook(..., secret=...)) equal to the service's MLFACTOR_WEBHOOK_SECRET."
        )
    if not timestamp.isdigit():
        raise HookRejectedError(f"X-MLflow-Timestamp {timestamp[:40]!r} is not a Unix time in seconds.")
    age = now - int(timestamp)
    if abs(age) > MAX_AGE_SECONDS:
        raise HookRejectedError(
            f"the delivery is {age:.0f} s old, more than {MAX_AGE_SECONDS} s: refused as a replay "
            "(or the clocks of MLflow and this service differ)."
        )
    expected = signature(secret, delivery_id, timestamp, body)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise HookRejectedError(
            "the signature does not match: the webhook's secret differs from MLFACTOR_WEBHOOK_SECRET, or "
            "the body was changed on the way. Expected the v1 HMAC-SHA256 MLflow 3 sends."
        )
    return _read_payload(delivery_id, body)


def _read_payload(delivery_id: str, body: bytes) -> Delivery:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, "webhook delivery", [f"the body is not JSON: {exc}"]) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise RequestError(
            400,
            "webhook delivery",
            ['expected an MLflow webhook payload {"entity": ..., "action": ..., "data": {...}}'],
        )
    return Delivery(
        delivery_id, str(payload.get("entity", "")), str(payload.get("action", "")), payload["data"]
    )


def alias_event(delivery: Delivery) -> AliasEvent | None:
    """The alias event a delivery carries; None for any other entity (or a malformed one)."""
    if delivery.entity != ALIAS_ENTITY:
        return None
    name, alias, version = (delivery.data.get(key) for key in ("name", "alias", "version"))
    if not isinstance(name, str) or not isinstance(alias, str):
        return None
    return AliasEvent(name, alias, delivery.action, None if version is None else str(version))


def answer_delivery(
    secret: str | None, follower: AliasFollower | None, request: HttpRequest, ctx: RequestContext, now: float
) -> HttpResponse:
    """Answer one delivery: 404 when webhooks are off, 401 unless signed, else nudge ``follower``."""
    if not secret:
        message = "webhooks are off: set MLFACTOR_WEBHOOK_SECRET (and MLFACTOR_FOLLOW_INTERVAL)"
        return error_response(404, "NOT_FOUND", message, ctx)
    try:
        delivery = verify_delivery(secret, request.headers, request.body, now)
    except HookRejectedError as exc:
        event(logger, "webhook_rejected", level=logging.WARNING, request_id=ctx.request_id, reason=str(exc))
        return error_response(401, "UNAUTHENTICATED", str(exc), ctx)
    except RequestError as exc:
        return json_response({**exc.body(), **ctx.fields()}, exc.status)
    alias = alias_event(delivery)
    acted = alias is not None and follower is not None and follower.follows(alias.name, alias.alias)
    event(
        logger,
        "webhook_received",
        delivery_id=delivery.delivery_id[:64],
        entity=delivery.entity[:64],
        action=delivery.action[:64],
        model_name=alias.name[:200] if alias else None,
        alias=alias.alias[:200] if alias else None,
        version=alias.version[:20] if alias and alias.version else None,
        checking=acted,
    )
    if acted and follower is not None:
        follower.nudge()
    reason = "checking the registry now" if acted else "not an alias this service follows"
    return json_response(
        {"accepted": True, "checking": acted, "reason": reason, "request_id": ctx.request_id}
    )
