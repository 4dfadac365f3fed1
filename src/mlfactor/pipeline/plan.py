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


def _read_notebooks(spec: PipelineSpec, problems: list[str]) -> dict[str, NotebookParameters]:
    """Each step's notebook parameters, reading every notebook file once however many steps use it."""
    notebooks: dict[str, NotebookParameters] = {}
    read: dict[Path, NotebookParameters | str] = {}
    for step in spec.steps:
        if step.notebook.suffix != ".ipynb" or not step.notebook.is_file():
            continue  # reported by parse_pipeline
        if step.notebook not in read:
            try:
                read[step.notebook] = inspect_parameters(step.notebook)
            except Exception as exc:  # noqa: BLE001 - any unreadable notebook is a user problem
                read[step.notebook] = str(exc)
        found = read[step.notebook]
        if isinstance(found, str):
            problems.append(f"step {step.name!r}: cannot read notebook {step.notebook_ref}: {found}")
        else:
            notebooks[step.name] = found
    return notebooks


def make_plan(path: Path, overrides: Sequence[str] = (), *, project_dir: Path | None = None) -> Plan:
    """Load, check and plan the pipeline at ``path``; raise one ValidationError listing every problem."""
    spec, problems = parse_pipeline(path, project_dir=project_dir)
    global_overrides, step_overrides = _split_overrides(overrides, spec, problems)
    notebooks = _read_notebooks(spec, problems)
    every = sorted({p for nb in notebooks.values() for p in nb.declared})
    for name, value in {**spec.parameters, **global_overrides}.items():
        where = "-p" if name in global_overrides else "pipeline parameters"
        if any(name in nb.declared for nb in notebooks.values()):
            continue  # checked below, for every step declaring it
        problems.extend(name_problems(name, where))
        problems.extend(value_problems(value, f"{where}: parameter {name!r}"))
        if len(notebooks) == len(spec.steps):
            problems.append(
                f"{where}: no step's notebook declares parameter {name!r}.{did_you_mean(name, every)}"
            )
    parameters: dict[str, dict[str, Any]] = {}
    sources: dict[str, dict[str, str]] = {}
    for step in spec.steps:
        notebook = notebooks.get(step.name)
        declared = notebook.declared if notebook is not None else {}
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        layers: tuple[tuple[Mapping[str, Any], str], ...] = (  # lowest precedence first
            ({k: v for k, v in spec.parameters.items() if k in declared}, "pipeline parameters"),
            (step.parameters, "the pipeline file"),
            ({k: v for k, v in global_overrides.items() if k in declared}, "-p {name}"),
            (step_overrides.get(step.name, {}), "-p {step}.{name}"),
        )
        for layer, source in layers:
            for name, value in layer.items():
                values[name] = value
                origin[name] = source.format(name=name, step=step.name)
        parameters[step.name] = values
        sources[step.name] = origin
        if notebook is not None:
            problems.extend(check_parameters(values, notebook, f"step {step.name!r}", sources=origin))
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
