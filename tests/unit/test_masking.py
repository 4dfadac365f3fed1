"""Masking: secrets never reach output."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlfactor.masking import (
    forget_secrets,
    is_secret_name,
    mask_data,
    mask_key,
    mask_text,
    mask_uri,
    remember_secrets,
    secret_values,
)


@pytest.mark.parametrize(
    "name",
    ["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "api_key", "MY_CREDENTIALS", "passwd"],
)
def test_secret_looking_names_are_recognised(name: str) -> None:
    """Names with token, secret, password, key or credential are secret."""
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["C", "max_iter", "MLFACTOR_MODEL_NAME", "keyword", "monkey"])
def test_ordinary_names_are_not_secret(name: str) -> None:
    """Ordinary parameter and variable names pass."""
    assert not is_secret_name(name)


def test_mask_uri_hides_only_the_password() -> None:
    """User, host, port and path stay readable; the password becomes ***."""
    assert mask_uri("postgresql://ml:pw@db:5432/mlflow") == "postgresql://ml:***@db:5432/mlflow"
    assert mask_uri("http://mlflow:5000") == "http://mlflow:5000"


def test_mask_text_hides_known_secret_values_and_uri_passwords() -> None:
    """Free text loses both URI passwords and the values of secret variables."""
    env = {"API_TOKEN": "tok-123456", "DB": "postgresql://u:pw123@h/db"}
    text = "token tok-123456 and postgresql://u:pw123@h/db"
    masked = mask_text(text, secret_values(env))
    assert "tok-123456" not in masked
    assert "pw123" not in masked


@pytest.fixture
def remembered() -> Iterator[None]:
    """Forget remembered secrets after the test."""
    yield
    forget_secrets()


@pytest.mark.parametrize(
    "name", ["DB_PASS", "SENTRY_DSN", "SLACK_WEBHOOK_URL", "GCP_CREDENTIALS", "SSH_PRIVATE_KEY"]
)
def test_more_secret_suffixes_are_recognised(name: str) -> None:
    """*_PASS, *_DSN, *_WEBHOOK_URL, *_CREDENTIALS and *_PRIVATE_KEY look secret."""
    assert is_secret_name(name)


def test_remembered_secrets_are_masked_in_every_form(remembered: None) -> None:
    """A remembered value is masked plain, JSON-escaped and HTML-escaped, without being passed again."""
    remember_secrets(['s3cr"t<&>'])
    text = 's3cr"t<&> "s3cr\\"t<&>" s3cr&quot;t&lt;&amp;&gt;'
    assert mask_text(text) == '*** "***" ***'


def test_short_values_are_not_remembered(remembered: None) -> None:
    """Values shorter than four characters would mask ordinary text, so they are ignored."""
    remember_secrets(["abc"])
    assert mask_text("abc") == "abc"


def test_mask_key_keeps_mlflow_keys_valid(remembered: None) -> None:
    """A secret inside an MLflow key becomes 'masked' (keys cannot hold '*')."""
    remember_secrets(["tok-123456"])
    assert mask_key("metric_tok-123456") == "metric_masked"


def test_mask_data_masks_keys_and_nested_values(remembered: None) -> None:
    """Mappings and lists are masked all the way down; numbers stay."""
    remember_secrets(["tok-123456"])
    data = {"a": ["x tok-123456", 1], "tok-123456": {"b": "tok-123456"}}
    assert mask_data(data) == {"a": ["x ***", 1], "***": {"b": "***"}}
