"""Turning a rendered container into a local process: the kubelet's expansion rules, nothing else changed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlfactor.deploy.local import expand, local_process
from mlfactor.errors import NotFoundError, ValidationError

CONTAINER = {
    "command": ["python", "-c"],
    "args": ["import os, sys; print(os.environ['GREETING'], sys.argv[1:])", "$(WHO)", "$$(WHO)", "$(NOPE)"],
    "envFrom": [{"configMapRef": {"name": "cfg"}}],
    "env": [
        {"name": "BENTO_PATH", "value": "/home/bentoml/bento"},
        {"name": "WHERE", "value": "$(BENTO_PATH)/src"},
        {"name": "GREETING", "value": "hello $(WHO) from $(WHERE)"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": "TOKEN"}}},
        {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['x']"}},
        },
    ],
}


def test_expand_follows_kubernetes_rules() -> None:
    """$(VAR) expands, $$ escapes to $, and unknown references stay as written."""
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$$(A) costs $$5", env) == "$(A) costs $5"
    assert expand("$(MISSING) $A", env) == "$(MISSING) $A"


def test_local_process_resolves_env_like_the_kubelet() -> None:
    """ConfigMap values, ordered references, secrets and the downward API give the pod's environment."""
    process = local_process(
        CONTAINER,
        config_maps={"cfg": {"WHO": "world"}},
        secrets={"app-secrets": {"TOKEN": "t-123"}},
        base_env={"PATH": "/usr/bin"},
        overrides={"BENTO_PATH": "/local/bento", "JOB_COMPLETION_INDEX": "3"},
    )
    env = process.env
    assert env["WHERE"] == "/local/bento/src"
    assert env["GREETING"] == "hello world from /local/bento/src"
    assert (env["TOKEN"], env["JOB_COMPLETION_INDEX"], env["PATH"]) == ("t-123", "3", "/usr/bin")
    assert process.command[3:] == ["world", "$(WHO)", "$(NOPE)"]


def test_the_local_process_really_runs_with_that_environment() -> None:
    """The command and environment start a real process that sees the expanded values."""
    process = local_process(
        {**CONTAINER, "command": [sys.executable, "-c"]},
        config_maps={"cfg": {"WHO": "world"}},
        secrets={"app-secrets": {"TOKEN": "t"}},
        base_env={},
        overrides={"JOB_COMPLETION_INDEX": "0"},
    )
    done = subprocess.run(process.command, env=process.env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "hello world from /home/bentoml/bento/src ['world', '$(WHO)', '$(NOPE)']"


def test_missing_secrets_and_downward_values_are_reported_together() -> None:
    """A missing Secret key and an unset downward-API value are named in one error."""
    with pytest.raises(NotFoundError) as caught:
        local_process(CONTAINER, config_maps={"cfg": {}}, secrets={"app-secrets": {}}, base_env={})
    assert "key 'TOKEN' of secret 'app-secrets'" in str(caught.value)
    assert "JOB_COMPLETION_INDEX" in str(caught.value)


def test_only_platform_variables_may_be_overridden() -> None:
    """Overriding a release setting locally is refused: the local run must use the manifest's values."""
    with pytest.raises(ValidationError, match="MLFACTOR_MODEL_NAME may not be overridden"):
        local_process(
            CONTAINER,
            config_maps={"cfg": {}},
            secrets={},
            base_env={},
            overrides={"MLFACTOR_MODEL_NAME": "other"},
        )
