"""Pipelines: parameterized notebooks run as steps of a graph, traced in MLflow.

``make_plan`` checks a pipeline file and its parameters without running
anything; ``run_pipeline`` runs a plan; ``run_sweep`` runs a parameter grid as
separate pipeline runs.
"""

from __future__ import annotations

from mlfactor.pipeline.plan import Plan, make_plan
from mlfactor.pipeline.runner import PipelineResult, run_pipeline
from mlfactor.pipeline.spec import PipelineSpec, StepSpec, load_pipeline

__all__ = ["PipelineResult", "PipelineSpec", "Plan", "StepSpec", "load_pipeline", "make_plan", "run_pipeline"]
