"""Load a pipeline file (``pipelines/*.yaml``) into a checked :class:`PipelineSpec`.

The file's structure is validated here, every problem collected and raised
once as a :class:`~mlfactor.errors.ValidationError` with "did you mean"
hints for misspelt keys. Notebook parameters and the step graph are checked
by :mod:`mlfactor.pipeline.plan`, which calls this first.

The smallest file that works::

    name: train
    experiment: demo
    steps:
      - name: train
        notebook: notebooks/01-train.ipynb
        parameters: {C: 1.0}
      - name: evaluate
        notebook: notebooks/02-evaluate.ipynb
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlfactor.errors import NotFoundError, ValidationError
from mlfactor.names import did_you_mean
from mlfactor.pipeline.safe_yaml import ExpansionError, load_bounded
from mlfactor.settings import PROJECT_MARKER, find_project_dir
from mlfactor.syntax import DURATION_SYNTAX, parse_duration

PIPELINE_KEYS = (
    "name",
    "experiment",
    "description",
    "parameters",
    "metric",
    "schedule",
    "allow_notebooks_outside_project",
    "steps",
)
STEP_KEYS = ("name", "notebook", "description", "parameters", "depends_on", "timeout", "retries")
METRIC_KEYS = ("step", "name", "goal")
GOALS = ("max", "min")
CRON_FIELDS = 5
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class StepSpec:
    """One step: a notebook run with parameters, after the steps it depends on."""

    name: str
    notebook: Path
    notebook_ref: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    timeout: float | None = None
    retries: int = 0


@dataclass(frozen=True)
class MetricSpec:
    """The metric that ranks runs of a pipeline (sweeps): ``step``'s ``name``, maximised or minimised."""

    step: str
    name: str
    goal: str = "max"


@dataclass(frozen=True)
class PipelineSpec:
    """A validated pipeline file."""

    name: str
    experiment: str
    path: Path
    project_dir: Path
    sha256: str
    steps: tuple[StepSpec, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    metric: MetricSpec | None = None
    explicit_dependencies: bool = False
    schedule: str | None = None  # cron, UTC: where a workflow engine runs it (mlfactor deploy argo / airflow)

    def step(self, name: str) -> StepSpec:
        """Return the step called ``name``."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def step_names(self) -> list[str]:
        """Step names in file order."""
        return [step.name for step in self.steps]

    @property
    def relative_path(self) -> str:
        """The file's path relative to the project root (absolute when outside it)."""
        try:
            return str(self.path.relative_to(self.project_dir))
        except ValueError:
            return str(self.path)


def read_pipeline_file(path: Path) -> tuple[Any, bytes]:
    """Read and parse the YAML of a pipeline file; NotFoundError or ValidationError on failure."""
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            hint = did_you_mean(path.name, [p.name for p in path.parent.glob("*.y*ml")])
        raise NotFoundError(f"pipeline file {str(path)!r} does not exist.{hint}")
    raw = path.read_bytes()
    try:
        data = load_bounded(raw)
    except ExpansionError as exc:
        raise ValidationError(f"pipeline {path}", [str(exc)]) from exc
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValidationError(f"pipeline {path}", [f"not valid YAML{where}: {reason}"]) from exc
    return data, raw


def _unknown_keys(data: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> list[str]:
    problems = []
    for key in data:
        if key not in allowed:
            problems.append(
                f"{where}: unknown key {key!r}.{did_you_mean(str(key), allowed)} "
                f"Allowed keys: {', '.join(allowed)}."
            )
    return problems


def _misspelt(data: Mapping[Any, Any], key: str) -> bool:
    """Tell whether an unknown key of ``data`` is a likely misspelling of ``key``."""
    return any(did_you_mean(str(k), [key]) for k in data if k not in STEP_KEYS)


def _check_name(value: Any, where: str) -> str | None:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        return (
            f"{where}: got {value!r}; expected a name of letters, digits, '_' or '-' "
            "starting with a letter or '_'."
        )
    return None


ROOT_RULE = "the folder holding pyproject.toml above the pipeline file, else above the working directory"


def project_root(pipeline: Path) -> Path:
    """The project a pipeline file belongs to: see :data:`ROOT_RULE`."""
    for start in (pipeline.parent, Path.cwd()):
        root = find_project_dir(start)
        if (root / PROJECT_MARKER).is_file():
            return root
    return Path.cwd()


def _resolve_notebook(ref: str, project_dir: Path) -> Path:
    path = Path(ref).expanduser()
    return path if path.is_absolute() else (project_dir / path)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _notebook_problem(
    ref: Any, path: Path | None, where: str, project_dir: Path, *, allow_outside: bool
) -> str | None:
    if not isinstance(ref, str) or not ref.strip():
        return f"{where}.notebook: got {ref!r}; expected the path of an .ipynb file."
    if path is None:
        return f"{where}.notebook: got {ref!r}; expected the path of an .ipynb file."
    if path.suffix != ".ipynb":
        return f"{where}.notebook: {ref!r} is not a notebook; expected a path ending in .ipynb."
    if not path.is_file():
        folder = path.parent
        near = [str(folder / p.name) for p in (folder.glob("*.ipynb") if folder.is_dir() else [])]
        shown = [n.removeprefix(f"{project_dir}/") for n in near]
        return (
            f"{where}.notebook: {ref!r} does not exist (looked for {path}).{did_you_mean(ref, shown)} "
            f"Relative paths start at the project root {project_dir} ({ROOT_RULE})."
        )
    if not allow_outside and not _inside(path, project_dir):
        return (
            f"{where}.notebook: {ref!r} is {path.resolve()}, outside the project {project_dir}. Move the "
            "notebook into the project (it then travels with the code and its git commit), or set "
            "allow_notebooks_outside_project: true at the top of the pipeline file."
        )
    return None


def _step(  # noqa: PLR0912 - one check per key
    raw: Any, index: int, project_dir: Path, problems: list[str], *, allow_outside: bool
) -> StepSpec | None:
    where = f"steps[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: got {raw!r}; expected a mapping with at least name and notebook.")
        return None
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"step {name!r}"
    problems.extend(_unknown_keys(raw, STEP_KEYS, where))
    if "name" not in raw:
        if not _misspelt(raw, "name"):
            problems.append(f"{where}: missing key 'name'.")
    elif (bad := _check_name(name, f"{where}.name")) is not None:
        problems.append(bad)
    ref = raw.get("notebook")
    path = _resolve_notebook(ref, project_dir) if isinstance(ref, str) and ref.strip() else None
    if "notebook" not in raw:
        if not _misspelt(raw, "notebook"):
            problems.append(f"{where}: missing key 'notebook' (the path of the step's .ipynb).")
    elif (bad := _notebook_problem(ref, path, where, project_dir, allow_outside=allow_outside)) is not None:
        problems.append(bad)
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        problems.append(f"{where}.parameters: got {parameters!r}; expected a mapping of name: value.")
        parameters = {}
    depends = raw.get("depends_on") or []
    if isinstance(depends, str):
        depends = [depends]
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        problems.append(f"{where}.depends_on: got {depends!r}; expected a list of step names.")
        depends = []
    timeout = None
    if raw.get("timeout") is not None:
        try:
            timeout = parse_duration(raw["timeout"])
        except ValueError:
            timeout = 0.0
        if timeout <= 0:
            problems.append(
                f"{where}.timeout: got {raw['timeout']!r}; expected more than 0 seconds: {DURATION_SYNTAX}."
            )
            timeout = None
    retries = raw.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        problems.append(f"{where}.retries: got {retries!r}; expected a whole number >= 0.")
        retries = 0
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return None
    path = path or Path()
    return StepSpec(
        name=name,
        notebook=path.resolve() if path.exists() else path,
        notebook_ref=str(ref),
        parameters=dict(parameters),
        depends_on=tuple(depends),
        timeout=timeout,
        retries=retries,
    )


def _metric(raw: Any, problems: list[str]) -> MetricSpec | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        head, _, tail = raw.partition(".")
        raw = {"step": head, "name": tail}
    if not isinstance(raw, Mapping):
        problems.append(f"metric: got {raw!r}; expected a mapping with step, name and goal (max or min).")
        return None
    problems.extend(_unknown_keys(raw, METRIC_KEYS, "metric"))
    goal = raw.get("goal", "max")
    if goal not in GOALS:
        problems.append(f"metric.goal: got {goal!r}; expected one of {', '.join(GOALS)}.")
    step, metric_name = raw.get("step"), raw.get("name")
    if not isinstance(step, str) or not step or not isinstance(metric_name, str) or not metric_name:
        problems.append(
            f"metric: got {dict(raw)!r}; expected step and name, e.g. {{step: train, name: accuracy}}."
        )
        return None
    return MetricSpec(step=step, name=metric_name, goal=str(goal))


def load_pipeline(path: Path, *, project_dir: Path | None = None) -> PipelineSpec:
    """Read ``path`` and check its structure; one ValidationError lists every problem found."""
    spec, problems = parse_pipeline(path, project_dir=project_dir)
    if problems:
        raise ValidationError(f"pipeline {spec.relative_path}", problems)
    return spec


def parse_pipeline(path: Path, *, project_dir: Path | None = None) -> tuple[PipelineSpec, list[str]]:
    """Read ``path``; return what could be understood and the list of structural problems.

    Steps with a usable name are kept even when other fields are wrong, so
    later checks (parameters, graph) can still report their own problems.
    A file that is not YAML or not a mapping raises at once.
    """
    path = path.expanduser().resolve()
    data, raw = read_pipeline_file(path)
    root = project_dir or project_root(path)
    subject = f"pipeline {path}"
    if not isinstance(data, Mapping):
        raise ValidationError(
            subject, [f"got {type(data).__name__}; expected a mapping with name and steps."]
        )
    problems = _unknown_keys(data, PIPELINE_KEYS, "pipeline")
    allow_outside = data.get("allow_notebooks_outside_project", False)
    if not isinstance(allow_outside, bool):
        problems.append(f"allow_notebooks_outside_project: got {allow_outside!r}; expected true or false.")
        allow_outside = False
    name = data.get("name", path.stem)
    if (bad := _check_name(name, "name")) is not None:
        problems.append(bad)
    experiment = data.get("experiment", name)
    if not isinstance(experiment, str) or not experiment.strip():
        problems.append(f"experiment: got {experiment!r}; expected an MLflow experiment name.")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        problems.append(f"parameters: got {parameters!r}; expected a mapping of name: value.")
        parameters = {}
    raw_steps = data.get("steps")
    steps: list[StepSpec] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("steps: missing or empty; expected a list of steps, each with name and notebook.")
        raw_steps = []
    for index, raw_step in enumerate(raw_steps):
        step = _step(raw_step, index, root, problems, allow_outside=allow_outside)
        if step is not None:
            steps.append(step)
    seen: set[str] = set()
    for step in steps:
        if step.name in seen:
            problems.append(
                f"step {step.name!r}: the name is used by more than one step; names must be unique."
            )
        seen.add(step.name)
    metric = _metric(data.get("metric"), problems)
    if metric is not None and steps and metric.step not in seen:
        problems.append(f"metric.step: no step named {metric.step!r}.{did_you_mean(metric.step, seen)}")
    explicit = any(isinstance(s, Mapping) and "depends_on" in s for s in raw_steps)
    schedule = data.get("schedule")
    if schedule is not None and (not isinstance(schedule, str) or len(schedule.split()) != CRON_FIELDS):
        problems.append(f"schedule: got {schedule!r}; expected 5 cron fields (UTC), e.g. '0 3 * * *'.")
        schedule = None
    spec = PipelineSpec(
        name=str(name),
        experiment=str(experiment),
        path=path,
        project_dir=root,
        sha256=hashlib.sha256(raw).hexdigest(),
        steps=tuple(steps),
        parameters=dict(parameters),
        metric=metric,
        explicit_dependencies=explicit,
        schedule=schedule,
    )
    return spec, problems
