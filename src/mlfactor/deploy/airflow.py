"""A pipeline as an Airflow DAG file: one task per step, the same processes as on Argo.

With the default ``kubernetes`` operator every task is a ``KubernetesPodOperator``
whose pod (``pod_template_dict``) is the one every mlfactor job gets: the
release's image, its ConfigMap and Secret by reference, the non-root,
read-only-root security context, the scratch volume, service links off. The
``open-run`` task hands the pipeline run's id to the others as its XCom (the
file ``/airflow/xcom/return.json``). With ``bash`` (a local executor on a
machine holding the project) every task is a ``BashOperator`` running the same
``mlfactor run`` arguments with the release's plain settings as environment;
secrets come from the worker's own environment.

Airflow retries every failed task; a step whose last run failed with an exit
code a retry cannot fix is not run again by mlfactor (it exits with the same
code at once), so a retry costs seconds, not a notebook.
"""

from __future__ import annotations

import pprint
import re
import shlex
from dataclasses import dataclass
from typing import Any

from mlfactor.deploy import manifests as m
from mlfactor.deploy.options import SCRATCH, dns_label
from mlfactor.deploy.workflow import OPEN_TASK, PipelineWorkflow, WorkflowTask

XCOM_FILE = "/airflow/xcom/return.json"  # the KubernetesPodOperator's XCom sidecar reads it
OPERATORS = ("kubernetes", "bash")
KUBERNETES_RUN_ID = f"{{{{ ti.xcom_pull(task_ids='{OPEN_TASK}') }}}}"
BASH_RUN_ID = f'{{{{macros.json.loads(ti.xcom_pull(task_ids="{OPEN_TASK}"))["run_id"]}}}}'  # one shell word
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@dataclass(frozen=True)
class AirflowOptions:
    """How the DAG runs its tasks."""

    operator: str = "kubernetes"
    schedule: str | None = None
    retries: int = 2
    executable: str = "mlfactor"  # the bash operator's command, on the worker's PATH
    project_dir: str = ""  # the bash operator's MLFACTOR_PROJECT_DIR


def run_id_token(operator: str) -> str:
    """How a task reads the pipeline run id the open task pushed (Jinja, rendered by Airflow)."""
    return KUBERNETES_RUN_ID if operator == "kubernetes" else BASH_RUN_ID


def dag_id(ctx: m.ReleaseContext, workflow: PipelineWorkflow) -> str:
    """The DAG's id: ``<app>-<pipeline>``, as the CronJob and CronWorkflow are named."""
    return dns_label(f"{ctx.app[:32]}-{workflow.pipeline}", limit=52)


def pod_template(ctx: m.ReleaseContext) -> dict[str, Any]:
    """The pod of every task (its container is ``base``, as the operator names it); no command: per task."""
    template = m.job_pod(ctx, "base", [], "pipeline")
    del template["spec"]["containers"][0]["command"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"], "spec": template["spec"]}


def bash_command(task: WorkflowTask, executable: str) -> str:
    """The task's arguments as one shell command: ``$(VAR)`` becomes ``${VAR}``, TMPDIR defaulting to /tmp.

    A Jinja template (the run id) stays as written: Airflow renders it before bash runs.
    """

    def word(arg: str) -> str:
        if "{{" in arg:  # Airflow renders the Jinja first; the run id it gives needs no quoting
            return arg
        if not _REFERENCE.search(arg):
            return shlex.quote(arg.replace("$$", "$"))
        parts = _REFERENCE.split(arg)
        text = ""
        for index, part in enumerate(parts):
            if index % 2:
                text += f'"${{{part}:-{SCRATCH}}}"' if part == "TMPDIR" else f'"${{{part}}}"'
            elif part:
                text += shlex.quote(part.replace("$$", "$"))
        return text

    return " ".join([shlex.quote(executable), *(word(a) for a in task.args)])


def _literal(value: Any, indent: int = 0) -> str:
    """``value`` as a Python literal, continuation lines indented by ``indent`` spaces."""
    text = pprint.pformat(value, width=100 - indent, sort_dicts=True)
    return text.replace("\n", "\n" + " " * indent)


def _task_source(task: WorkflowTask, ctx: m.ReleaseContext, options: AirflowOptions, *, last: bool) -> str:
    args: dict[str, Any] = {"task_id": task.name, "retries": options.retries}
    if options.operator == "kubernetes":
        args.update(
            name=dns_label(f"{ctx.app[:20]}-{task.name}", limit=40),
            image=ctx.image,
            cmds=list(m.MLFACTOR),
            arguments=[XCOM_FILE if a == "$(TMPDIR)/pipeline-run-id" else a for a in task.args],
            do_xcom_push=task.name == OPEN_TASK,
        )
    else:
        args["bash_command"] = bash_command(task, options.executable)
        args["do_xcom_push"] = task.name == OPEN_TASK
    if last:
        args["trigger_rule"] = "all_done"  # record the outcome whatever became of the steps
    fields = "".join(f"        {key}={_literal(value, 8)},\n" for key, value in args.items())
    extra = "        pod_template_dict=POD_TEMPLATE,\n" if options.operator == "kubernetes" else ""
    if options.operator == "bash":
        extra = "        env=ENVIRONMENT,\n        append_env=True,\n"
    if task.deadline_s is not None:
        extra += f"        execution_timeout=datetime.timedelta(seconds={task.deadline_s}),\n"
    operator = "KubernetesPodOperator" if options.operator == "kubernetes" else "BashOperator"
    return f"    tasks[{task.name!r}] = {operator}(\n{fields}{extra}    )\n"


IMPORTS = {
    "kubernetes": "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator\n",
    "bash": (
        "try:\n    from airflow.providers.standard.operators.bash import BashOperator\n"
        "except ImportError:  # Airflow 2\n    from airflow.operators.bash import BashOperator\n"
    ),
}


def dag_source(
    ctx: m.ReleaseContext, workflow: PipelineWorkflow, options: AirflowOptions, header: str
) -> str:
    """The DAG file's Python source: deterministic, importable by Airflow 2.10+ and 3."""
    lines = [
        header,
        f'"""Pipeline {workflow.pipeline} ({workflow.pipeline_ref}) as an Airflow DAG: '
        'open the run, one task per step, finish it."""\n\n',
        "from __future__ import annotations\n\nimport datetime\n\n",
        "try:\n    from airflow.sdk import DAG\n",
        "except ImportError:  # Airflow 2\n    from airflow import DAG\n",
        IMPORTS[options.operator],
        "\n",
    ]
    if options.operator == "kubernetes":
        lines.append(f"POD_TEMPLATE = {_literal(pod_template(ctx))}\n\n")
    else:
        environment = {**ctx.env.config, "MLFACTOR_PROJECT_DIR": options.project_dir}
        lines.append(f"ENVIRONMENT = {_literal(environment)}\n")
        lines.append(
            f"# Secrets come from the worker's environment: {', '.join(ctx.env.secret_keys) or 'none'}.\n\n"
        )
    lines.append(
        "with DAG(\n"
        f"    dag_id={dag_id(ctx, workflow)!r},\n"
        f"    schedule={options.schedule!r},\n"
        "    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),\n"
        "    catchup=False,\n"
        "    max_active_runs=1,\n"
        "    default_args={\n"
        "        'retry_delay': datetime.timedelta(seconds=30),\n"
        "        'retry_exponential_backoff': True,\n"
        "    },\n"
        f"    tags=['mlfactor', {workflow.pipeline!r}],\n"
        ") as dag:\n"
        "    tasks = {}\n"
    )
    for task in workflow.tasks:
        lines.append(_task_source(task, ctx, options, last=task is workflow.finish))
    for task in workflow.tasks:
        for upstream in task.upstream:
            lines.append(f"    tasks[{upstream!r}] >> tasks[{task.name!r}]\n")
    return "".join(lines)
