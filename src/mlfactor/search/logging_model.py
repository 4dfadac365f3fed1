"""Log and register the docs-search pyfunc the way mlfactor logs every model.

Signature ``query: string`` plus optional ``k: long``, an input example,
explicit pip requirements (no requirement inference, FIELD_NOTES), the
batching and constraint metadata the service reads, and registration through
:func:`mlfactor.modeling.register_logged_model`, so the version carries the
run's git commit like the classifier's.
"""

from __future__ import annotations

from collections.abc import Mapping

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema

from mlfactor.modeling import MODEL_ARTIFACT, LoggedModel, register_logged_model
from mlfactor.search.model import DocsSearchModel, pip_requirements, search_metadata

SEARCH_MODEL_NAME = "docs-search"
EXAMPLE_QUERY = "how do I roll back a release"


def search_signature() -> ModelSignature:
    """``query`` (string, required) and ``k`` (long, optional) in; no output schema (ranked lists)."""
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string, "query"), ColSpec(DataType.long, "k", required=False)])
    )


def log_search_model(
    artifacts: Mapping[str, str],
    *,
    registered_name: str | None = SEARCH_MODEL_NAME,
    client: MlflowClient | None = None,
    tags: dict[str, str] | None = None,
    max_batch_size: int = 64,
) -> LoggedModel:
    """Log the docs-search model with ``artifacts`` into the active run; register it when named.

    ``max_batch_size`` is the most queries the service embeds in one call (1: no batching).
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_search_model needs an active MLflow run (use mlfactor.notebook.start()).")
    info = mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=DocsSearchModel(),
        artifacts=dict(artifacts),
        signature=search_signature(),
        input_example=pd.DataFrame({"query": [EXAMPLE_QUERY]}),
        pip_requirements=pip_requirements(),
        metadata=search_metadata(max_batch_size=max_batch_size),
    )
    if registered_name is None:
        return LoggedModel(info.model_uri, run.info.run_id, None, None)
    client = client or MlflowClient()
    return register_logged_model(client, info.model_uri, run.info.run_id, registered_name, tags)
