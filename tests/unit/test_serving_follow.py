"""What following may follow, webhook signatures, and the prefetched answer the workers read."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from mlfactor.errors import ConfigError
from mlfactor.release.records import refuse_following
from mlfactor.serving.follow import FollowedAlias, followed_aliases
from mlfactor.serving.hooks import HookRejectedError, alias_event, signature, verify_delivery
from mlfactor.serving.prefetch import read_prefetched
from mlfactor.serving.request_error import RequestError
from mlfactor.serving.resolve import ResolvedFiles, ResolverAnswer
from mlfactor.serving.runtime import plan_variants
from mlfactor.settings import load_settings

BASE = {"MLFLOW_TRACKING_URI": "sqlite:////tmp/none.db", "MLFACTOR_PROJECT_DIR": "/tmp"}


def _followed(**env: str) -> list[FollowedAlias]:
    settings = load_settings({**BASE, **env})
    return followed_aliases(settings, plan_variants(settings)[1])


def test_following_is_off_unless_an_interval_is_set() -> None:
    """Without MLFACTOR_FOLLOW_INTERVAL nothing is followed."""
    assert _followed() == []


def test_every_variant_alias_is_followed_once_fixed_versions_are_not() -> None:
    """Variants and the shadow on aliases are followed (grouped by alias); a pinned version never moves."""
    followed = _followed(
        MLFACTOR_FOLLOW_INTERVAL="2", MLFACTOR_VARIANTS="champion=90,3=10", MLFACTOR_SHADOW="challenger"
    )
    assert followed == [
        FollowedAlias("iris-classifier", "champion", ("champion",)),
        FollowedAlias("iris-classifier", "challenger", ("shadow",)),
    ]


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [
        pytest.param(
            {"MLFACTOR_BENTO_MODEL": "iris:abc"}, "MLFACTOR_FOLLOW_INTERVAL", "immutable", id="bento"
        ),
        pytest.param({"MLFACTOR_RELEASE": "rel-1"}, "MLFACTOR_FOLLOW_INTERVAL", "factor V", id="release"),
        pytest.param(
            {"MLFACTOR_MODEL_URI": "models:/iris/3"},
            "MLFACTOR_FOLLOW_INTERVAL",
            "models:/iris/3",
            id="pinned",
        ),
    ],
)
def test_following_what_cannot_move_is_refused_with_the_reason(
    env: dict[str, str], variable: str, says: str
) -> None:
    """A Bento, a release or a pinned version refuse MLFACTOR_FOLLOW_INTERVAL with a ConfigError (exit 78)."""
    with pytest.raises(ConfigError) as raised:
        _followed(MLFACTOR_FOLLOW_INTERVAL="2", **env)
    assert says in raised.value.problems[variable]


def test_a_webhook_secret_without_polling_is_refused() -> None:
    """Webhooks only speed following up: a secret without an interval says to set one."""
    with pytest.raises(ConfigError) as raised:
        _followed(MLFACTOR_WEBHOOK_SECRET="abc")
    assert "MLFACTOR_FOLLOW_INTERVAL" in raised.value.problems["MLFACTOR_WEBHOOK_SECRET"]
    assert "abc" not in str(raised.value)


def test_a_release_configuration_that_follows_is_refused(tmp_path: Path) -> None:
    """`mlfactor release --env-file` with MLFACTOR_FOLLOW_INTERVAL names the file and factor V."""
    env_file = tmp_path / "prod.env"
    env_file.write_text("MLFACTOR_FOLLOW_INTERVAL=5\n", encoding="utf-8")
    settings = load_settings({**BASE, "MLFACTOR_FOLLOW_INTERVAL": "5"}, env_file=env_file)
    with pytest.raises(ConfigError) as raised:
        refuse_following(settings)
    assert str(env_file) in str(raised.value) and "factor V" in str(raised.value)


def test_our_signature_is_the_one_mlflow_sends() -> None:
    """hooks.signature equals MLflow's own _generate_hmac_signature for the same delivery."""
    body = '{"entity": "model_version_alias", "data": {"name": "m", "alias": "é"}}'
    assert signature("k", "id-1", "1700000000", body.encode()) == _generate_hmac_signature(
        "k", "id-1", "1700000000", body
    )


def _signed(body: bytes, now: float) -> dict[str, str]:
    stamp = str(int(now))
    return {
        "x-mlflow-delivery-id": "d",
        "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": signature("k", "d", stamp, body),
    }


def test_a_verified_alias_delivery_is_read() -> None:
    """A fresh, correctly signed delivery gives its alias event."""
    body = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "data": {"name": "m", "alias": "a", "version": 3},
        }
    ).encode()
    now = time.time()
    event = alias_event(verify_delivery("k", _signed(body, now), body, now))
    assert event is not None and (event.name, event.alias, event.version) == ("m", "a", "3")


def test_a_signed_body_that_is_not_a_payload_is_a_400() -> None:
    """Signed but not MLflow's payload shape: a RequestError (400), not a crash."""
    now = time.time()
    with pytest.raises(RequestError):
        verify_delivery("k", _signed(b"[1, 2]", now), b"[1, 2]", now)


def test_a_bad_timestamp_is_refused_before_the_signature_is_checked() -> None:
    """A timestamp that is not Unix seconds is a 401 naming the header."""
    headers = {"x-mlflow-delivery-id": "d", "x-mlflow-timestamp": "yesterday", "x-mlflow-signature": "v1,x"}
    with pytest.raises(HookRejectedError, match="X-MLflow-Timestamp"):
        verify_delivery("k", headers, b"{}", time.time())


def _answer(uri: str) -> bytes:
    found = ResolvedFiles(uri, "m", "1", None, None, "/tmp/m")
    return ResolverAnswer(models=[found]).to_json().encode()


def test_a_prefetched_answer_covering_the_uris_is_used(tmp_path: Path) -> None:
    """The resolver's file, once there, answers the worker's URIs."""
    path = tmp_path / "resolved.json"
    path.write_bytes(_answer("models:/m@a"))
    answer = read_prefetched(path, ["models:/m@a"], timeout=1)
    assert answer is not None and [m.version for m in answer.models] == ["1"]


def test_a_prefetched_answer_for_other_uris_or_a_stale_variable_is_ignored(tmp_path: Path) -> None:
    """An answer for other URIs, or a folder that is gone, makes the worker resolve itself (None)."""
    path = tmp_path / "resolved.json"
    path.write_bytes(_answer("models:/m@other"))
    assert read_prefetched(path, ["models:/m@a"], timeout=1) is None
    assert read_prefetched(tmp_path / "gone" / "resolved.json", ["models:/m@a"], timeout=30) is None
