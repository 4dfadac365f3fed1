"""The executed notebook of a step: secrets scrubbed, kept on disk, rendered to HTML, logged to MLflow.

papermill writes the notebook while it runs into a private temporary folder;
when the step ends (in any way) the runner scrubs every secret value of its
environment (and every value a notebook read through ``secret()``) from it,
moves it into the output folder and logs it, plus an HTML
rendering a person can open in the MLflow UI, as artifacts of the step's run.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfactor.log import event, get_logger
from mlfactor.masking import mask_text

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

logger = get_logger(__name__)
NOTEBOOK_ARTIFACT_DIR = "notebook"


def _nbformat() -> Any:
    """nbformat, imported on first use: it loads jsonschema, too slow for `mlfactor validate`."""
    import nbformat

    return nbformat


def read_notebook(path: Path) -> Any:
    """Read a notebook file (nbformat v4 NotebookNode)."""
    return _nbformat().read(str(path), as_version=4)


def read_notebook_json(path: Path) -> dict[str, Any]:
    """Read a notebook as plain JSON for inspection (no validation, no nbformat); v3 files via nbformat."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a notebook: the file holds no JSON object")
    if int(data.get("nbformat", 4)) < 4:
        converted: dict[str, Any] = read_notebook(path)
        return converted
    if not isinstance(data.get("cells"), list):
        raise ValueError("not a notebook: no list of cells")
    return data


def cell_source(cell: dict[str, Any]) -> str:
    """A cell's source as one string (a notebook file may store it as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def write_notebook(path: Path, nb: Any) -> None:
    """Write a notebook atomically."""
    writes: Any = _nbformat().writes
    write_atomic(path, writes(nb))


def markdown_cell(text: str, tags: list[str]) -> Any:
    """Create a markdown cell with ``tags``."""
    new_cell: Any = _nbformat().v4.new_markdown_cell
    cell = new_cell(text)
    cell.metadata["tags"] = tags
    return cell


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Mask every secret value in ``text`` (plain, JSON- and HTML-escaped), remembered ones included."""
    return mask_text(text, secrets)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def keep_notebook(partial: Path, final: Path, secrets: Iterable[str]) -> Path | None:
    """Scrub the notebook papermill wrote at ``partial`` into ``final``; None when none was written."""
    if not partial.is_file():
        return None
    write_atomic(final, scrub(partial.read_text(encoding="utf-8"), secrets))
    partial.unlink(missing_ok=True)
    return final


def render_html(notebook: Path, secrets: Iterable[str] = ()) -> Path | None:
    """Render ``notebook`` to HTML beside it, scrubbed again; None (and a warning event) on failure."""
    from nbconvert import HTMLExporter

    exporter: Any = HTMLExporter
    target = notebook.with_suffix(".html")
    try:
        body, _ = exporter(template_name="lab").from_notebook_node(read_notebook(notebook))
        write_atomic(target, scrub(body, secrets))
    except Exception as exc:  # noqa: BLE001 - a missing rendering must not fail the step
        event(
            logger,
            "notebook_html_failed",
            level=logging.WARNING,
            notebook=str(notebook),
            error=str(exc)[:300],
        )
        return None
    return target


def log_notebook(client: MlflowClient, run_id: str, notebook: Path, html: Path | None) -> None:
    """Log the executed notebook (and its HTML) as artifacts of ``run_id`` under ``notebook/``."""
    client.log_artifact(run_id, str(notebook), NOTEBOOK_ARTIFACT_DIR)
    if html is not None:
        client.log_artifact(run_id, str(html), NOTEBOOK_ARTIFACT_DIR)
