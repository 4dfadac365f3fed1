"""`mlfactor serve` builds the bentoml serve command from settings alone, and refuses a taken port."""

from __future__ import annotations

import socket

import pytest

from mlfactor.errors import BackingServiceError
from mlfactor.serving.launcher import check_port, serve_command, serve_environment
from mlfactor.serving.worker import service_config
from mlfactor.settings import load_settings


def test_port_host_and_grace_come_from_settings(store_env: dict[str, str]) -> None:
    """BENTOML_PORT wins over PORT; host and the graceful-shutdown bound are passed on."""
    settings = load_settings(
        {**store_env, "PORT": "8080", "BENTOML_PORT": "9000", "MLFACTOR_GRACE_PERIOD": "2.5"}
    )
    command, _ = serve_command(settings)
    assert command[command.index("--port") + 1] == "9000"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--timeout-graceful-shutdown") + 1] == "3"
    assert "service:MlfactorService" in command
    assert serve_environment(settings)["BENTOML_PORT"] == "9000"


def test_plain_port_is_used_without_bentoml_port(store_env: dict[str, str]) -> None:
    """PORT is honoured when BENTOML_PORT is unset (the default is 3000)."""
    assert serve_command(load_settings({**store_env, "PORT": "8081"}))[0].count("8081") == 1
    assert "3000" in serve_command(load_settings(store_env))[0]


def test_a_built_bento_is_served_by_tag(store_env: dict[str, str]) -> None:
    """--bento serves a Bento from the store instead of the source tree."""
    command, _ = serve_command(load_settings(store_env), bento="mlfactor:latest")
    assert command[4] == "mlfactor:latest"
    assert "--working-dir" not in command


def test_service_config_follows_settings(store_env: dict[str, str]) -> None:
    """Workers and the backstop timeout of the BentoML service come from the environment."""
    config = service_config(
        load_settings({**store_env, "MLFACTOR_WORKERS": "3", "MLFACTOR_REQUEST_TIMEOUT": "7"})
    )
    assert config["workers"] == 3
    assert config["traffic"]["timeout"] > 7
    assert config["logging"]["access"]["enabled"] is False
    assert config["metrics"]["enabled"] is False  # mlfactor serves /metrics with bounded labels


def test_a_taken_port_is_refused_with_a_free_one_to_use() -> None:
    """A port someone listens on raises BackingServiceError (exit 69) naming it and a PORT=... to use."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            BackingServiceError, match=rf"port {port} on 127.0.0.1 is already in use"
        ) as caught:
            check_port("127.0.0.1", port, lambda free: f"PORT={free} mlfactor serve")
    assert caught.value.exit_code == 69
    assert "PORT=" in str(caught.value) and "mlfactor serve" in str(caught.value)
