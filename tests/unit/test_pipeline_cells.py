"""Cell numbers in messages are the cell's place in the notebook file, whatever papermill adds or drops."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mlfactor.pipeline.execute import CellTracker

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "notebooks"


def _notebook(tmp_path: Path, tags: list[list[str]]) -> Path:
    """A notebook with one code cell per entry of ``tags``."""
    cells = []
    for cell_tags in tags:
        cell = nbformat.v4.new_code_cell("x = 1")
        cell.metadata["tags"] = cell_tags
        cells.append(cell)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_stale_error_markers_do_not_shift_numbers() -> None:
    """The broken1 layout: papermill drops two stale marker cells; its 5th executed cell is the file's 7th."""
    tracker = CellTracker(FIXTURES / "fails-on-cell-7-after-stale-error-markers.ipynb", injected=False)
    assert tracker.number(4) == 7
    assert [tracker.number(i) for i in range(6)] == [2, 4, 5, 6, 7, 8]


@pytest.mark.parametrize(
    ("tags", "injected", "executed", "expected"),
    [
        pytest.param([["parameters"], [], []], True, [0, 1, 2, 3], [1, 1, 2, 3], id="after-parameters-cell"),
        pytest.param([[], [], []], True, [0, 1, 2, 3], [1, 1, 2, 3], id="no-parameters-cell-injects-at-top"),
        pytest.param(
            [["parameters"], ["injected-parameters"], []],
            True,
            [0, 1, 2],
            [1, 1, 3],
            id="replaces-stale-injected",
        ),
        pytest.param([["parameters"], [], []], False, [0, 1, 2], [1, 2, 3], id="no-parameters-given"),
        pytest.param(
            [["papermill-error-cell-tag"], ["parameters"], ["papermill-error-cell-tag"], []],
            True,
            [0, 1, 2],
            [2, 2, 4],
            id="markers-and-injection",
        ),
    ],
)
def test_executed_index_maps_to_file_number(
    tmp_path: Path, tags: list[list[str]], injected: bool, executed: list[int], expected: list[int]
) -> None:
    """Each executed index maps to its file number; the injected cell counts as the cell before it."""
    tracker = CellTracker(_notebook(tmp_path, tags), injected=injected)
    assert [tracker.number(i) for i in executed] == expected
