"""`mlfactor validate` and `mlfactor run` on invalid files: every problem at once, exit 65, nothing run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import store_environment
from pipeline_harness import PROJECT_DIR, fixture, run_mlfactor, write_pipeline

pytestmark = pytest.mark.slow


def test_validate_reports_every_problem_of_every_file(tmp_path: Path) -> None:
    """A valid and an invalid file: one JSON line each, the bad one listing its three problems; exit 65."""
    bad = write_pipeline(
        tmp_path,
        "bad",
        [
            {"name": "a", "notebook": fixture("records-output.ipynb"), "parameters": {"valeu": 1}},
            {"name": "b", "notebok": fixture("records-output.ipynb"), "depends_on": ["c"]},
        ],
    )
    env = store_environment(tmp_path)
    result = run_mlfactor(
        ["validate", str(PROJECT_DIR / "pipelines" / "train.yaml"), str(bad)],
        env,
        tmp_path / "proc",
        timeout=120,
    )
    assert result.returncode == 65
    lines = [json.loads(line) for line in result.stdout.splitlines() if '"valid"' in line]
    assert [line["valid"] for line in lines] == [True, False]
    problems = lines[1]["problems"]
    assert len(problems) == 3, problems
    assert any("'notebok'" in p and "Did you mean 'notebook'?" in p for p in problems)
    assert any("'valeu'" in p and "Did you mean 'value'?" in p for p in problems)
    assert any("unknown step 'c'" in p for p in problems)
    assert not (tmp_path / "mlflow.db").exists()


def test_validate_checks_global_overrides_and_refuses_alias_bombs(tmp_path: Path) -> None:
    """`-p max_iter=wide` and a billion-laughs file each exit 65 with the reason; nothing runs."""
    env = store_environment(tmp_path)
    demo = str(PROJECT_DIR / "pipelines" / "train.yaml")
    typed = run_mlfactor(["validate", demo, "-p", "max_iter=wide"], env, tmp_path / "typed", timeout=120)
    assert typed.returncode == 65
    assert "(from -p max_iter): parameter 'max_iter' got 'wide' (str)" in typed.stderr
    bomb = tmp_path / "bomb.yaml"
    levels = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9))
    bomb.write_text("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + levels + "name: bomb\nsteps: []\n")
    refused = run_mlfactor(["validate", str(bomb)], env, tmp_path / "bomb", timeout=120)
    assert refused.returncode == 65
    assert "expands to more than 100000 values through YAML aliases" in refused.stderr
