"""A pipeline's workflow tasks: their commands, the shell form a BashOperator runs, names engines refuse."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
import yaml

from mlfactor.deploy.airflow import BASH_RUN_ID, bash_command
from mlfactor.deploy.argo import task_names
from mlfactor.deploy.workflow import WorkflowTask, pipeline_workflow
from mlfactor.errors import ValidationError
from mlfactor.pipeline.plan import make_plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "notebooks"


def plan_of(folder: Path, *names: str) -> Path:
    """A pipeline file whose steps, named ``names``, run one after another."""
    steps = [{"name": n, "notebook": str(FIXTURES / "records-output.ipynb")} for n in names]
    path = folder / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "steps": steps}))
    return path


def test_tasks_open_then_steps_in_order_then_finish(tmp_path: Path) -> None:
    """Open has the -p values (escaped for Kubernetes); each step names its run; finish waits for all."""
    plan = make_plan(plan_of(tmp_path, "one", "two"))
    flow = pipeline_workflow(plan, "pipelines/p.yaml", run_id="RUN", open_extra=["-p", "one.label=$HOME"])
    assert [t.name for t in flow.tasks] == ["open-run", "one", "two", "finish-run"]
    assert flow.open.args[:3] == ("run", "$(MLFACTOR_PROJECT_DIR)/pipelines/p.yaml", "--open-run")
    assert "one.label=$$HOME" in flow.open.args  # Kubernetes would expand $(...) and read $$ as $
    assert flow.steps[1].upstream == ("open-run", "one")
    assert flow.steps[1].args[2:6] == ("--step", "two", "--pipeline-run-id", "RUN")
    assert flow.finish.upstream == ("open-run", "one", "two")


def test_a_step_named_like_a_workflow_task_is_refused(tmp_path: Path) -> None:
    """A step called open-run would be two tasks of one name: the error names it and says to rename."""
    plan = make_plan(plan_of(tmp_path, "open-run", "train"))
    with pytest.raises(ValidationError, match="step name 'open-run' is the name of a workflow task"):
        pipeline_workflow(plan, "pipelines/p.yaml", run_id="RUN")


def test_steps_argo_cannot_tell_apart_are_refused(tmp_path: Path) -> None:
    """`a_b` and `a-b` are both `a-b` as Argo task names: refused, naming both steps."""
    flow = pipeline_workflow(make_plan(plan_of(tmp_path, "a_b", "a-b")), "pipelines/p.yaml", run_id="RUN")
    with pytest.raises(ValidationError, match="steps 'a_b' and 'a-b' are both 'a-b'"):
        task_names(flow)


class PulledXCom:
    """What a template sees as ``ti``: the open task's XCom (the last line it printed)."""

    def __init__(self, value: str) -> None:
        self.value = value

    def xcom_pull(self, task_ids: str) -> str:
        """Return the XCom of ``task_ids`` (only open-run pushes one)."""
        assert task_ids == "open-run"
        return self.value


def render_like_airflow(command: str, xcom: str) -> str:
    """Render ``command`` as Jinja with ``ti`` and ``macros.json``, as Airflow does before bash runs it."""
    return jinja2.Template(command).render(ti=PulledXCom(xcom), macros=SimpleNamespace(json=json))


def test_the_bash_form_runs_the_same_arguments_with_variables_expanded_once(tmp_path: Path) -> None:
    """Bash expands $(VAR) as ${VAR} (TMPDIR: /tmp if unset), keeps other text ($ too) and the Jinja whole."""
    task = WorkflowTask(
        "t", ("$(MLFACTOR_PROJECT_DIR)/p.yaml", "-p", "x.label=it's $$HOME", "$(TMPDIR)/output", BASH_RUN_ID)
    )
    command = bash_command(task, "mlfactor")
    assert command.startswith("mlfactor ")
    command = "printf '%s\\n' " + command.removeprefix("mlfactor ")  # print each argument on a line
    command = render_like_airflow(command, '{"run_id": "0123abcd"}')
    env = {"PATH": "/usr/bin:/bin", "MLFACTOR_PROJECT_DIR": "/srv/my project", "HOME": "/root"}
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "/srv/my project/p.yaml",
        "-p",
        "x.label=it's $HOME",
        "/tmp/output",
        "0123abcd",
    ]
