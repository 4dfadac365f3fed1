"""Notebook parameters: safe names, JSON-compatible values, checked against the ``parameters`` cell.

papermill injects parameters as Python source and stores them in the executed
notebook's metadata, and only *warns* about unknown names or a missing
``parameters`` cell (FIELD_NOTES). mlfactor is stricter, before any kernel
starts: names must be identifiers that do not look like secrets, values must
be JSON-compatible (no tuple, bytes, set, date), every name must be declared
by the notebook, and the value's type must fit the declared default.

Values may reference a previous step's outputs: ``${steps.train.outputs.model_version}``.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlfactor.masking import is_secret_name
from mlfactor.names import did_you_mean
from mlfactor.pipeline.artifacts import cell_source, read_notebook_json

PARAMETERS_TAG = "parameters"
REFERENCE = re.compile(
    r"\$\{\s*steps\.(?P<step>[A-Za-z_][A-Za-z0-9_-]*)\.outputs\.(?P<output>[A-Za-z_]\w*)\s*\}"
)
_TYPES: dict[type, str] = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


@dataclass(frozen=True)
class DeclaredParameter:
    """A parameter declared in a notebook's ``parameters`` cell."""

    name: str
    type_name: str | None
    default: str


@dataclass(frozen=True)
class NotebookParameters:
    """What a notebook declares: its kernel and its parameters (empty when it has no parameters cell)."""

    path: Path
    kernel_name: str
    has_parameters_cell: bool
    declared: Mapping[str, DeclaredParameter]
    syntax_error: str | None = None


def secret_name_problem(name: str, where: str) -> str:
    """Refuse a secret-looking parameter name, saying how to pass the secret instead."""
    return (
        f"{where}: parameter {name!r} looks like a secret. papermill writes parameters into the executed "
        "notebook (twice), so secrets must never be parameters: put the value in the environment "
        f"(e.g. export {name.upper()}=... or a Kubernetes Secret) and read it in the notebook with "
        f"ctx.secret({name.upper()!r})."
    )


def name_problems(name: Any, where: str) -> list[str]:
    """Problems with a parameter name: not a Python identifier, a keyword, or secret-looking."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        return [f"{where}: parameter name {name!r} is not a Python identifier; use letters, digits and '_'."]
    if is_secret_name(name):
        return [secret_name_problem(name, where)]
    return []


def value_problems(value: Any, where: str) -> list[str]:
    """Problems making ``value`` unsafe to inject: anything not JSON-compatible, found recursively."""
    if value is None or isinstance(value, bool | int | str):
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{where}: {value!r} is not a finite number."]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in value_problems(item, f"{where}[{i}]")]
    if isinstance(value, dict):
        problems = []
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{where}: key {key!r} is a {type(key).__name__}; JSON keys must be strings.")
            problems.extend(value_problems(item, f"{where}.{key}"))
        return problems
    kind = type(value).__name__
    hint = {
        "tuple": "use a list",
        "bytes": "pass a string (e.g. base64) or a file path",
        "set": "use a list",
        "frozenset": "use a list",
        "date": "quote it to pass a string",
        "datetime": "quote it to pass a string",
    }.get(kind, "")
    return [
        f"{where}: a {kind} value is not JSON-compatible and papermill would inject it as code; "
        f"expected a string, number, bool, null, list or mapping{'; ' + hint if hint else ''}."
    ]


def find_parameters_cells(nb: Mapping[str, Any]) -> list[int]:
    """Indexes of the cells tagged ``parameters`` (of a notebook read as JSON or by nbformat)."""
    return [
        i
        for i, cell in enumerate(nb.get("cells", []))
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])
    ]


def inspect_parameters(path: Path) -> NotebookParameters:
    """Read the notebook's declared parameters (no kernel is started).

    A Python parameters cell is read with :mod:`ast`, the notebook as plain
    JSON: neither papermill nor nbformat is imported, so ``mlfactor validate``
    stays fast. Other kernels' cells go through papermill's translator.
    """
    nb = read_notebook_json(path)
    metadata = nb.get("metadata", {})
    kernel = metadata.get("kernelspec", {}).get("name") or "python3"
    language = (
        metadata.get("kernelspec", {}).get("language")
        or metadata.get("language_info", {}).get("name")
        or "python"
    )
    cells = find_parameters_cells(nb)
    found: list[DeclaredParameter] = []
    syntax_error = None
    if cells:
        source = cell_source(nb["cells"][cells[0]])
        if language == "python":
            syntax_error = syntax_problem(source)
            found = python_parameters(source)
        else:
            found = _translated_parameters(kernel, language, source)
    return NotebookParameters(
        path=path,
        kernel_name=kernel,
        has_parameters_cell=bool(cells),
        declared={p.name: p for p in found},
        syntax_error=syntax_error,
    )


def python_parameters(source: str) -> list[DeclaredParameter]:
    """The top-level ``name = value`` and ``name: type = value`` assignments of a Python cell, in order.

    The type is the annotation, else a ``# type:`` comment, else the default's
    literal type. Magic lines are skipped; a cell that does not parse is read
    line by line (its syntax error is reported by :func:`syntax_problem`).
    """
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    code = "\n".join(lines)
    try:
        trees = [(ast.parse(code, type_comments=True), code)]
    except SyntaxError:
        trees = []
        for line in lines:
            try:
                trees.append((ast.parse(line, type_comments=True), line))
            except SyntaxError:
                continue
    found: list[DeclaredParameter] = []
    for tree, text in trees:
        for node in tree.body:
            parameter = _assignment(node, text)
            if parameter is not None:
                found.append(parameter)
    return found


def _assignment(node: ast.stmt, text: str) -> DeclaredParameter | None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        name, annotation, value = node.targets[0].id, None, node.value
        type_name = node.type_comment
    elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        name, annotation, value = node.target.id, node.annotation, node.value
        type_name = None
    else:
        return None
    default = ast.get_source_segment(text, value) or ast.unparse(value)
    if annotation is not None:
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            type_name = annotation.value  # a quoted annotation: "float"
        else:
            type_name = ast.unparse(annotation)
    if type_name in (None, "", "None"):
        type_name = None
    return DeclaredParameter(name, str(type_name) if type_name else _literal_type(default), default)


def _translated_parameters(kernel: str, language: str, source: str) -> list[DeclaredParameter]:
    """A non-Python parameters cell, read by papermill's translator for that kernel or language."""
    from papermill.translators import papermill_translators

    translator = papermill_translators.find_translator(kernel, language)
    found = []
    for param in translator.inspect({"source": source}):
        type_name = None if param.inferred_type_name in ("None", "") else param.inferred_type_name
        found.append(DeclaredParameter(param.name, type_name or _literal_type(param.default), param.default))
    return found


def syntax_problem(source: str) -> str | None:
    """Why ``source`` (a parameters cell) is not valid Python, or None; IPython magics are allowed."""
    error = _parse_error(source)
    if error is not None and any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
        from IPython.core import inputtransformer2

        transformer: Any = inputtransformer2.TransformerManager  # untyped in IPython
        error = _parse_error(transformer().transform_cell(source))
    if error is None:
        return None
    line = (error.text or "").strip()
    return f"line {error.lineno}: {error.msg}" + (f" ({line!r})" if line else "")


def _parse_error(source: str) -> SyntaxError | None:
    try:
        ast.parse(source)
    except SyntaxError as exc:
        return exc
    return None


def _literal_type(source: str) -> str | None:
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if value is None:
        return None
    return _TYPES.get(type(value))


def _fits(value: Any, type_name: str) -> bool:
    expected = type_name.split("[", maxsplit=1)[0].strip().lower()
    if expected in ("optional", "any", "object", "union"):
        return True
    if value is None:
        return True
    checks: dict[str, tuple[type, ...]] = {
        "bool": (bool,),
        "int": (int,),
        "float": (int, float),
        "str": (str,),
        "list": (list,),
        "dict": (dict,),
    }
    allowed = checks.get(expected)
    if allowed is None:
        return True
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, allowed)


def has_reference(value: Any) -> bool:
    """Tell whether ``value`` (or anything inside it) references a step output."""
    if isinstance(value, str):
        return REFERENCE.search(value) is not None
    if isinstance(value, list):
        return any(has_reference(v) for v in value)
    if isinstance(value, dict):
        return any(has_reference(v) for v in value.values())
    return False


def references(value: Any) -> list[tuple[str, str]]:
    """Every ``(step, output)`` referenced inside ``value``."""
    if isinstance(value, str):
        return [(m["step"], m["output"]) for m in REFERENCE.finditer(value)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in references(v)]
    return []


def resolve_references(value: Any, outputs: Mapping[str, Mapping[str, Any]]) -> Any:
    """Replace references with recorded outputs; a whole-string reference keeps the output's type.

    Raises KeyError((step, output)) when an output was not recorded.
    """
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value.strip())
        if whole:
            return _lookup(outputs, whole["step"], whole["output"])
        return REFERENCE.sub(lambda m: str(_lookup(outputs, m["step"], m["output"])), value)
    if isinstance(value, list):
        return [resolve_references(v, outputs) for v in value]
    if isinstance(value, dict):
        return {k: resolve_references(v, outputs) for k, v in value.items()}
    return value


def _lookup(outputs: Mapping[str, Mapping[str, Any]], step: str, output: str) -> Any:
    try:
        return outputs[step][output]
    except KeyError:
        raise KeyError((step, output)) from None


def check_parameters(
    given: Mapping[str, Any],
    notebook: NotebookParameters,
    where: str,
    *,
    sources: Mapping[str, str] | None = None,
) -> list[str]:
    """Every problem with ``given`` parameters for ``notebook``: names, values, declaration and type."""
    problems: list[str] = []
    if notebook.syntax_error is not None:
        problems.append(
            f"{where}: the cell tagged 'parameters' in {notebook.path.name} is not valid Python, "
            f"{notebook.syntax_error}; the kernel would fail on it before any parameter applies. "
            "Fix the cell (only assignments of defaults belong there)."
        )
    if given and not notebook.has_parameters_cell:
        problems.append(
            f"{where}: notebook {notebook.path.name} has no cell tagged 'parameters', so it cannot take "
            f"{', '.join(sorted(given))}. Tag the cell holding the defaults with 'parameters' "
            "(JupyterLab: property inspector > Cell tags)."
        )
    for name, value in given.items():
        origin = f" (from {sources[name]})" if sources and name in sources else ""
        spot = f"{where}{origin}"
        bad_name = name_problems(name, spot)
        problems.extend(bad_name)
        problems.extend(value_problems(value, f"{spot}: parameter {name!r}"))
        if bad_name or not notebook.has_parameters_cell:
            continue
        declared = notebook.declared.get(name)
        if declared is None:
            known = ", ".join(sorted(notebook.declared)) or "none"
            problems.append(
                f"{spot}: notebook {notebook.path.name} has no parameter {name!r}."
                f"{did_you_mean(name, notebook.declared)} Its parameters: {known}."
            )
            continue
        if declared.type_name and not has_reference(value) and not _fits(value, declared.type_name):
            problems.append(
                f"{spot}: parameter {name!r} got {value!r} ({type(value).__name__}); the notebook's default "
                f"{declared.default} expects {declared.type_name}."
            )
    return problems


def parse_override(text: str) -> tuple[str | None, str, Any]:
    """Parse ``-p step.name=value`` (or ``name=value`` for a pipeline parameter); the value is YAML.

    Raises ValueError with a message when the text has no ``=``.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(
            f"-p {text!r}: expected STEP.NAME=VALUE (or NAME=VALUE for every step), e.g. train.C=0.5"
        )
    step, dot, name = key.strip().rpartition(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return (step if dot else None), name, value
