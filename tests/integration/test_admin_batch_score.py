"""Batch scoring on a real registry: same predictions as the live service, bad rows named, no partial file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import RegisteredModel
from service_harness import FEATURES, Server, start_service
from sklearn.datasets import load_iris

from mlfactor.admin.batch_score import batch_score, load_served_model
from mlfactor.errors import ValidationError

pytestmark = pytest.mark.slow
MLFACTOR = str(Path(sys.executable).with_name("mlfactor"))


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    """Give the 150 iris rows the model's feature names and an id column the model does not use."""
    frame = load_iris(as_frame=True).frame.drop(columns=["target"])
    frame.columns = FEATURES
    frame.insert(0, "id", [f"row-{i}" for i in range(len(frame))])
    return frame


@pytest.fixture(scope="module")
def server(registered_model: RegisteredModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Serve the session's iris-classifier@champion for the module."""
    started = start_service(registered_model.env, tmp_path_factory.mktemp("batch-service"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def champion(registered_model: RegisteredModel) -> tuple[RegisteredModel, Any]:
    """Load the champion once, as batch-score resolves it, for the tests that score several files."""
    return registered_model, load_served_model(registered_model.settings)


@pytest.mark.parametrize("formats", [("csv", "parquet"), ("parquet", "csv")], ids=["csv-in", "parquet-in"])
def test_batch_predictions_equal_the_service(
    server: Server,
    champion: tuple[RegisteredModel, Any],
    iris: pd.DataFrame,
    tmp_path: Path,
    formats: tuple[str, str],
) -> None:
    """Every row scores the same in batch (small chunks) as through the running service's /predict."""
    source, target = formats
    inp, out = tmp_path / f"in.{source}", tmp_path / f"out.{target}"
    if source == "csv":
        iris.to_csv(inp, index=False)
    else:
        iris.to_parquet(inp, index=False)
    registered, model = champion
    result = batch_score(registered.settings, inp, out, chunk_rows=32, model=model)
    assert (result.rows, result.model_version) == (150, registered.version)
    scored = pd.read_csv(out) if target == "csv" else pd.read_parquet(out)
    assert list(scored.columns) == [*iris.columns, "prediction"]
    assert scored["id"].tolist() == iris["id"].tolist()
    answer = server.post_json("/predict", {"records": iris[FEATURES].to_dict(orient="records")})
    assert answer.status == 200, answer.body
    assert scored["prediction"].tolist() == answer.json()["predictions"]


def test_bad_rows_are_named_and_no_output_is_written(
    registered_model: RegisteredModel, iris: pd.DataFrame, tmp_path: Path
) -> None:
    """A file with bad values exits 65 naming every bad column and row; an existing output stays untouched."""
    bad = iris.astype(object)
    bad.loc[3, "sepal_width"] = "wide"
    bad.loc[120, "sepal_width"] = "n/a"
    bad.loc[7, "petal_length"] = None
    inp, out = tmp_path / "bad.csv", tmp_path / "scored.csv"
    bad.to_csv(inp, index=False)
    out.write_text("previous good output\n", encoding="utf-8")
    done = subprocess.run(
        [MLFACTOR, "admin", "batch-score", "--input", str(inp), "--output", str(out), "--chunk-rows", "50"],
        env=registered_model.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 65, done.stderr
    assert (
        "column 'sepal_width': expected a number (double), got 'wide' at data rows 4, 121 (CSV lines 5, 122)"
        in done.stderr
    )
    assert "column 'petal_length' has no value (empty or NaN) at data row 8 (CSV line 9)" in done.stderr
    assert "Traceback" not in done.stderr
    assert out.read_text(encoding="utf-8") == "previous good output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "scored.csv"]


def test_missing_columns_are_refused_before_scoring(
    registered_model: RegisteredModel, iris: pd.DataFrame, tmp_path: Path
) -> None:
    """A file without a required column names it, suggests the close column, and writes nothing."""
    inp, out = tmp_path / "cols.parquet", tmp_path / "out.parquet"
    iris.rename(columns={"petal_width": "petal_widht"}).to_parquet(inp, index=False)
    with pytest.raises(ValidationError, match=r"column 'petal_width' is missing.*Did you mean 'petal_widht'"):
        batch_score(registered_model.settings, inp, out)
    assert not out.exists()


@pytest.mark.parametrize("target", ["parquet", "csv"])
def test_numeric_columns_stay_numeric_from_csv(
    champion: tuple[RegisteredModel, Any], iris: pd.DataFrame, tmp_path: Path, target: str
) -> None:
    """CSV features come out typed by the signature (Parquet doubles, bare CSV numbers); the rest as read."""
    inp, out = tmp_path / "in.csv", tmp_path / f"out.{target}"
    iris.head(20).to_csv(inp, index=False)
    registered, model = champion
    batch_score(registered.settings, inp, out, model=model)
    if target == "parquet":
        types = pq.read_schema(out)
        assert [str(types.field(name).type) for name in FEATURES] == ["double"] * len(FEATURES)
        assert str(types.field("id").type) == "string"
    else:
        first = out.read_text(encoding="utf-8").splitlines()[1].split(",")
        assert first[0] == '"row-0"'
        assert [float(cell) for cell in first[1:5]] == iris.loc[0, FEATURES].tolist()
        assert not any(cell.startswith('"') for cell in first[1:5])
