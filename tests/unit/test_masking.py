"""Masking: secrets never reach output."""

from __future__ import annotations

import pytest

from mlfactor.masking import is_secret_name, mask_text, mask_uri, secret_values


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
