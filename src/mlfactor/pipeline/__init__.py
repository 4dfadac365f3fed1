"""Pipelines: parameterized notebooks run as steps of a graph, traced in MLflow.

``make_plan`` checks a pipeline file and its parameters without running
anything; ``run_pipeline`` runs a plan; ``run_sweep`` runs a parameter grid as
separate pipeline runs; ``open_pipeline_run``, ``run_pipeline_step`` and
``finish_pipeline_run`` run one pipeline run one step per process.

The names are imported on first use, so ``mlfactor validate`` (which needs only
the plan) never imports MLflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlfactor.pipeline.distributed import finish_pipeline_run, open_pipeline_run, run_pipeline_step
    from mlfactor.pipeline.plan import Plan, make_plan
    from mlfactor.pipeline.runner import PipelineResult, run_pipeline
    from mlfactor.pipeline.spec import PipelineSpec, StepSpec, load_pipeline
    from mlfactor.pipeline.sweep import SweepResult
    from mlfactor.pipeline.sweep_driver import run_sweep

_HOMES = {
    "finish_pipeline_run": "distributed",
    "open_pipeline_run": "distributed",
    "run_pipeline_step": "distributed",
    "Plan": "plan",
    "make_plan": "plan",
    "PipelineResult": "runner",
    "run_pipeline": "runner",
    "PipelineSpec": "spec",
    "StepSpec": "spec",
    "load_pipeline": "spec",
    "SweepResult": "sweep",
    "run_sweep": "sweep_driver",
}

__all__ = [
    "PipelineResult",
    "PipelineSpec",
    "Plan",
    "StepSpec",
    "SweepResult",
    "finish_pipeline_run",
    "load_pipeline",
    "make_plan",
    "open_pipeline_run",
    "run_pipeline",
    "run_pipeline_step",
    "run_sweep",
]


def __getattr__(name: str) -> object:
    """Import ``name`` from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mlfactor.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mlfactor.pipeline.{home}"), name)
