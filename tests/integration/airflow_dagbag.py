"""Run by .venv-airflow's Python: import DAG folders with Airflow's own DagBag, write what it found as JSON.

Usage: python airflow_dagbag.py OUT.json FOLDER... (AIRFLOW_HOME set by the caller). For each folder:
the import errors, and each DAG's schedule and tasks with their operator, upstream tasks, retries,
trigger rule, timeout and the fields that make the task's process (command, arguments, pod, env).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag


def describe(task: Any) -> dict[str, Any]:
    """What the test needs to know of one task."""
    timeout = task.execution_timeout
    return {
        "operator": type(task).__name__,
        "upstream": sorted(task.upstream_task_ids),
        "retries": task.retries,
        "trigger_rule": str(getattr(task.trigger_rule, "value", task.trigger_rule)),
        "timeout_s": timeout.total_seconds() if timeout is not None else None,
        "do_xcom_push": task.do_xcom_push,
        "image": getattr(task, "image", None),
        "cmds": getattr(task, "cmds", None),
        "arguments": getattr(task, "arguments", None),
        "pod_template_dict": getattr(task, "pod_template_dict", None),
        "bash_command": getattr(task, "bash_command", None),
        "env": getattr(task, "env", None),
    }


def main() -> None:
    """Import every folder given, write the JSON report."""
    report: dict[str, Any] = {}
    for folder in sys.argv[2:]:
        bag = DagBag(dag_folder=folder, safe_mode=False)
        report[folder] = {
            "errors": {str(Path(k).name): str(v) for k, v in bag.import_errors.items()},
            "dags": {
                dag_id: {
                    "schedule": None if dag.schedule is None else str(dag.schedule),
                    "max_active_runs": dag.max_active_runs,
                    "catchup": dag.catchup,
                    "tasks": {task.task_id: describe(task) for task in dag.tasks},
                }
                for dag_id, dag in bag.dags.items()
            },
        }
    Path(sys.argv[1]).write_text(json.dumps(report, default=str, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
