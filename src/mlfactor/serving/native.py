"""Read an MLflow model folder without importing MLflow: MLmodel, signature, input example, sklearn estimator.

``import mlflow`` is the slowest import of the service and adds about 100 MiB
to each worker; a scikit-learn model needs none of it to predict. This module
reads what MLflow wrote (``MLmodel`` YAML, the signature's JSON column specs,
the ``split``-oriented input example) and deserializes the estimator exactly
as ``mlflow.sklearn._load_model_from_local_file`` does (skops with the
model's trusted types, pickle or cloudpickle), honouring
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``. Anything it does not recognise
returns None, and the caller falls back to MLflow itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlfactor.errors import ConfigError
from mlfactor.serving.protocol import Row
from mlfactor.serving.schema import Field, InputSchema

SKOPS = "skops"
PICKLE = "pickle"
CLOUDPICKLE = "cloudpickle"


def read_mlmodel(path: Path) -> dict[str, Any]:
    """Return the parsed ``MLmodel`` file of the model folder ``path``."""
    data = yaml.safe_load((path / "MLmodel").read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def signature_schema(mlmodel: Mapping[str, Any]) -> InputSchema | None:
    """Return the input schema of a column-based signature, or None (no signature, tensors)."""
    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return InputSchema(())
    try:
        specs = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return None
    fields = []
    for spec in specs:
        if not isinstance(spec, dict) or "name" not in spec or not isinstance(spec.get("type"), str):
            return None  # tensor specs, arrays, objects: let MLflow handle them
        fields.append(Field(str(spec["name"]), spec["type"], bool(spec.get("required", True))))
    return InputSchema(tuple(fields))


def input_example_rows(path: Path, mlmodel: Mapping[str, Any]) -> list[Row] | None:
    """Return the saved input example as rows when it is a ``split``-oriented DataFrame, else None."""
    info = mlmodel.get("saved_input_example_info") or {}
    if info.get("type") != "dataframe" or info.get("pandas_orient", "split") != "split":
        return None
    try:
        data = json.loads((path / info["artifact_path"]).read_text(encoding="utf-8"))
        columns, values = data["columns"], data["data"]
        return [dict(zip(columns, row, strict=True)) for row in values]
    except (OSError, KeyError, TypeError, ValueError):
        return None


def load_sklearn(path: Path, mlmodel: Mapping[str, Any], environ: Mapping[str, str]) -> Any | None:
    """Deserialize the scikit-learn estimator like MLflow does; None when MLflow must do it."""
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if not isinstance(flavor, dict) or flavor.get("code") or not flavor.get("pickled_model"):
        return None  # no sklearn flavor, or custom code to put on sys.path: MLflow's job
    allowed = environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower()
    if allowed in {"false", "0", "no"}:
        raise ConfigError(
            {
                "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "is false, and loading a model deserializes code "
                "(skops, pickle). Set it to true for models from a registry you trust."
            }
        )
    file = path / flavor["pickled_model"]
    form = flavor.get("serialization_format", PICKLE)
    if form == SKOPS:
        from mlfactor.skops_io import skops_io  # imported only for skops models

        return skops_io().load(file, trusted=flavor.get("skops_trusted_types"))
    if form == CLOUDPICKLE:
        import cloudpickle

        with file.open("rb") as handle:
            return cloudpickle.load(handle)
    if form == PICKLE:
        import pickle

        with file.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - the registry is trusted, as with MLflow itself
    return None
