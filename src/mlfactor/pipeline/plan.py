"""Turn a pipeline file plus ``-p`` overrides into a checked :class:`Plan`, every problem at once.

This is everything ``mlfactor validate`` does and everything ``mlfactor run``
does before the first kernel starts: the file's structure, the step graph,
and every parameter against its notebook's ``parameters`` cell.

Parameter precedence, lowest first: pipeline ``parameters`` (given to every
step whose notebook declares the name), the step's ``parameters``, ``-p NAME=V``
overrides (every step declaring NAME), ``-p STEP.NAME=V`` overrides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfactor.errors import ValidationError
from mlfactor.names import did_you_mean
from mlfactor.pipeline.graph import StepGraph, build_graph
from mlfactor.pipeline.parameters import (
    NotebookParameters,
    check_parameters,
    inspect_parameters,
    name_problems,
    parse_override,
    value_problems,
)
from mlfactor.pipeline.spec import PipelineSpec, parse_pipeline


@dataclass(frozen=True)
class Plan:
    """A validated pipeline ready to run: spec, graph and each step's parameters (references unresolved)."""

    spec: PipelineSpec
    graph: StepGraph
    parameters: Mapping[str, Mapping[str, Any]]
    notebooks: Mapping[str, NotebookParameters]
    overrides: tuple[str, ...] = ()
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def _split_overrides(
    overrides: Sequence[str], spec: PipelineSpec, problems: list[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    global_values: dict[str, Any] = {}
    per_step: dict[str, dict[str, Any]] = {}
    names = spec.step_names
    for text in overrides:
        try:
            step, name, value = parse_override(text)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if step is None:
            global_values[name] = value
        elif step not in names:
            problems.append(
                f"-p {text}: there is no step {step!r}.{did_you_mean(step, names)} Steps: {', '.join(names)}."
            )
        else:
            per_step.setdefault(step, {})[name] = value
    return global_values, per_step


def make_plan(path: Path, overrides: Sequence[str] = (), *, project_dir: Path | None = None) -> Plan:
    """Load, check and plan the pipeline at ``path``; raise one ValidationError listing every problem."""
    spec, problems = parse_pipeline(path, project_dir=project_dir)
    global_overrides, step_overrides = _split_overrides(overrides, spec, problems)
    notebooks: dict[str, NotebookParameters] = {}
    for step in spec.steps:
        if step.notebook.suffix != ".ipynb" or not step.notebook.is_file():
            continue  # reported by parse_pipeline
        try:
            notebooks[step.name] = inspect_parameters(step.notebook)
        except Exception as exc:  # noqa: BLE001 - any unreadable notebook is a user problem
            problems.append(f"step {step.name!r}: cannot read notebook {step.notebook_ref}: {exc}")
    pipeline_level = {**spec.parameters, **global_overrides}
    for name, value in pipeline_level.items():
        where = "-p" if name in global_overrides else "pipeline parameters"
        problems.extend(name_problems(name, where))
        problems.extend(value_problems(value, f"{where}: parameter {name!r}"))
        declared_by = [s for s, nb in notebooks.items() if name in nb.declared]
        if not declared_by and len(notebooks) == len(spec.steps):
            every = sorted({p for nb in notebooks.values() for p in nb.declared})
            problems.append(
                f"{where}: no step's notebook declares parameter {name!r}.{did_you_mean(name, every)}"
            )
    parameters: dict[str, dict[str, Any]] = {}
    sources: dict[str, dict[str, str]] = {}
    for step in spec.steps:
        notebook = notebooks.get(step.name)
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for name, value in pipeline_level.items():
            if notebook is not None and name in notebook.declared:
                values[name] = value
                origin[name] = "-p" if name in global_overrides else "pipeline parameters"
        for name, value in step.parameters.items():
            values[name] = value
            origin[name] = "the pipeline file"
        for name, value in step_overrides.get(step.name, {}).items():
            values[name] = value
            origin[name] = f"-p {step.name}.{name}"
        parameters[step.name] = values
        sources[step.name] = origin
        if notebook is not None:
            step_values = {
                k: v
                for k, v in values.items()
                if k not in pipeline_level or origin[k] not in ("pipeline parameters", "-p")
            }
            problems.extend(check_parameters(step_values, notebook, f"step {step.name!r}", sources=origin))
    graph, graph_problems = build_graph(spec, parameters)
    problems.extend(graph_problems)
    if problems:
        raise ValidationError(f"pipeline {spec.relative_path}", _unique(problems))
    return Plan(
        spec=spec,
        graph=graph,
        parameters=parameters,
        notebooks=notebooks,
        overrides=tuple(overrides),
        sources=sources,
    )


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
