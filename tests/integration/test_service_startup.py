"""How the service starts: an unreachable registry, a model packed in the BentoML store."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from service_harness import IRIS_ROW, free_port, start_service

pytestmark = pytest.mark.slow


def test_unreachable_registry_keeps_readyz_503_then_exits_69(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    """`mlfactor serve` without a registry: /livez 200, /readyz 503 while retrying, then exit 69."""
    dead = free_port()
    server = start_service(
        store_env,
        tmp_path,
        wait=False,
        command="mlfactor",
        extra={
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{dead}",
            "MLFACTOR_REGISTRY_WAIT": "10",
            "MLFACTOR_BACKING_RETRIES": "1",
        },
    )
    try:
        seen: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 90
        while server.process.poll() is None and time.monotonic() < deadline:
            for path in ("/livez", "/readyz"):
                with contextlib.suppress(OSError):
                    seen.add((path, server.request("GET", path, timeout=2).status))
            time.sleep(0.3)
        returncode = server.process.wait(timeout=30)
    finally:
        server.stop()
    assert ("/livez", 200) in seen
    assert ("/readyz", 503) in seen
    assert ("/readyz", 200) not in seen
    assert returncode == 69
    failed = server.events("model_load_failed")
    assert failed and f"127.0.0.1:{dead}" in failed[0]["message"]
    assert "attempts in 10 s" in failed[0]["message"]


def test_a_packed_bento_model_is_served_without_the_registry(registered_model: Any, tmp_path: Path) -> None:
    """MLFACTOR_BENTO_MODEL loads from the BentoML store, never the registry; /metadata shows its labels."""
    home = tmp_path / "bentoml"
    env = {**registered_model.env, "BENTOML_HOME": str(home)}
    labels = {
        "registered_model": "iris-classifier",
        "version": registered_model.version,
        "run_id": registered_model.run_id,
        "git_commit": "abc123",
    }
    script = (
        "import bentoml, json, sys; "
        "m = bentoml.mlflow.import_model('iris-packed', sys.argv[1], labels=json.loads(sys.argv[2])); "
        "print(m.tag)"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            f"models:/iris-classifier/{registered_model.version}",
            json.dumps(labels),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    tag = done.stdout.strip().splitlines()[-1]
    server = start_service(
        env,
        tmp_path,
        extra={
            "MLFACTOR_BENTO_MODEL": tag,
            # nothing listens there: any registry call would fail
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",
            "MLFACTOR_RELEASE": "rel-7",
        },
    )
    try:
        answer = server.post_json("/predict", {"records": [IRIS_ROW]})
        meta = server.request("GET", "/metadata").json()
    finally:
        server.stop()
    assert answer.status == 200
    assert answer.json()["model"] == {"name": "iris-classifier", "version": registered_model.version}
    assert meta["model"]["source"] == "bento"
    assert meta["model"]["bento_model"] == tag
    assert meta["model"]["run_id"] == registered_model.run_id
    assert meta["model"]["git_commit"] == "abc123"
    assert meta["release"] == "rel-7"
    assert not server.events("model_resolved")  # no registry resolution happened
