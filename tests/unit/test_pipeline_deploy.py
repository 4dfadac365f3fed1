"""Scheduling examples: the CronJob manifest validates strictly and matches the CLI's contract."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes_validate import utils as kv

from mlfactor.errors import ExitCode

PROJECT_DIR = Path(__file__).resolve().parents[2]
CRONJOB = PROJECT_DIR / "deploy" / "k8s" / "cronjob-train.yaml"
CRON = PROJECT_DIR / "deploy" / "cron"


def documents() -> list[dict]:
    """Return the objects of the CronJob manifest."""
    return [doc for doc in yaml.safe_load_all(CRONJOB.read_text()) if doc]


@pytest.mark.parametrize("index", [0, 1], ids=["configmap", "cronjob"])
def test_manifest_validates_strictly(index: int) -> None:
    """Every object in the CronJob manifest passes kubernetes-validate in strict mode (1.37)."""
    assert kv.validate(documents()[index], "1.37.0", strict=True) == "1.37"


def test_strict_validation_rejects_a_misspelt_field() -> None:
    """The validation really checks fields: a misspelt one is refused."""
    cronjob = documents()[1]
    cronjob["spec"]["concurencyPolicy"] = cronjob["spec"].pop("concurrencyPolicy")
    with pytest.raises(kv.ValidationError):
        kv.validate(cronjob, "1.37.0", strict=True)


def test_cronjob_contract() -> None:
    """Forbid overlap, env from ConfigMap and Secret, the demo pipeline, failure policy on exit codes."""
    configmap, cronjob = documents()
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    container = job["template"]["spec"]["containers"][0]
    sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {"configMapRef": configmap["metadata"]["name"], "secretRef": "mlfactor-secrets"}
    command = container["command"]
    assert command[:3] == ["mlfactor", "run", "pipelines/train.yaml"]
    assert (PROJECT_DIR / command[2]).is_file()
    never_retry = job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"]
    assert set(never_retry) == {ExitCode.INVALID_INPUT, ExitCode.NOT_FOUND, ExitCode.CONFIG}
    assert not any(k.endswith(("PASSWORD", "TOKEN", "SECRET")) for k in configmap["data"])


def test_cron_example_calls_the_wrapper() -> None:
    """The cron line has five schedule fields, a user, and runs the wrapper script, which parses."""
    lines = [
        line
        for line in (CRON / "mlfactor-train.cron").read_text().splitlines()
        if line and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(lines) == 1
    fields = shlex.split(lines[0])
    assert len(fields[:5]) == 5 and fields[5] == "mlfactor"
    assert fields[6].endswith("deploy/cron/run-pipeline.sh") and fields[7] == "pipelines/train.yaml"
    script = CRON / "run-pipeline.sh"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "flock -n" in script.read_text()
