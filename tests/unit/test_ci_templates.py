"""The CI/CD templates in deploy/ci/: valid against the published schemas, and they ship models."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlfactor.cli.main import COMMANDS

CI = Path(__file__).resolve().parents[2] / "deploy" / "ci"
CHECK_JSONSCHEMA = str(Path(sys.executable).with_name("check-jsonschema"))
SCHEMAS = {
    "github-actions.yml": ["--builtin-schema", "vendor.github-workflows"],
    "gitlab-ci.yml": ["--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci"],
}


def check(path: Path) -> subprocess.CompletedProcess[str]:
    """Run check-jsonschema on ``path`` with the schema (bundled with check-jsonschema) of its CI system."""
    return subprocess.run(
        [CHECK_JSONSCHEMA, *SCHEMAS[path.name], str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def commands(job: Any) -> list[str]:
    """Every shell line a GitHub job (its steps' `run`) or GitLab job (its `script`) runs."""
    lines = [step.get("run", "") for step in job.get("steps", [])] if "steps" in job else job["script"]
    return [line for block in lines for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_template_validates_against_its_ci_systems_schema(name: str) -> None:
    """check-jsonschema accepts the template against the published GitHub Actions / GitLab CI schema."""
    done = check(CI / name)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_a_broken_template_is_refused(name: str, tmp_path: Path) -> None:
    """The same check fails on a template with a job that misspells a key (the check can fail)."""
    data = yaml.safe_load((CI / name).read_text())
    if True in data:  # YAML 1.1 reads GitHub's `on:` key as true
        data["on"] = data.pop(True)
    jobs = data.get("jobs", data)
    broken = tmp_path / name
    broken.write_text(yaml.safe_dump(data))
    assert check(broken).returncode == 0, "only the misspelt key below may fail the check"
    jobs["check"]["stepz" if "jobs" in data else "scrypt"] = jobs["check"].pop(
        "steps" if "jobs" in data else "script"
    )
    broken.write_text(yaml.safe_dump(data))
    assert check(broken).returncode == 1


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_pull_requests_check_and_main_ships_a_release(name: str) -> None:
    """Checks run validate, lint and tests; the main branch trains, builds, releases and renders."""
    data = yaml.safe_load((CI / name).read_text())
    jobs = data.get("jobs", data)
    checking = " ; ".join(commands(jobs["check"]))
    shipping = " ; ".join(commands(jobs["ship"]))
    assert (
        "mlfactor validate pipelines/*.yaml" in checking
        and "make test" in checking
        and "make lint" in checking
    )
    for step in (
        "mlfactor run pipelines/train.yaml",
        "mlfactor build",
        "mlfactor release",
        "mlfactor deploy render",
    ):
        assert step in shipping, step
    assert "deploy argo" in shipping and "deploy airflow" in shipping
    used = set(re.findall(r"mlfactor (\w+)", checking + shipping))
    assert used <= set(COMMANDS), used - set(COMMANDS)
    if "jobs" in data:
        assert jobs["check"]["if"] == "github.event_name == 'pull_request'"
        assert "refs/heads/main" in jobs["ship"]["if"]
    else:
        assert jobs["check"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
        assert jobs["ship"]["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
