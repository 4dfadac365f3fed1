"""Log and register scikit-learn models the way every mlfactor notebook and job does.

Models are logged with their signature, an input example and **explicit** pip
requirements: MLflow's requirement inference spends about 4 s per model in a
subprocess (FIELD_NOTES). Registration goes through :mod:`mlfactor.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from mlfactor.monitoring.profile import log_profile
from mlfactor.registry import register_version
from mlfactor.tags import GIT_TAG_PREFIX, MLFACTOR_PREFIX

MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class LoggedModel:
    """A logged and (optionally) registered model."""

    model_uri: str
    run_id: str
    name: str | None
    version: str | None


def pip_requirements() -> list[str]:
    """Pinned requirements of a scikit-learn model saved with skops, from installed versions."""
    return [*mlflow.sklearn.get_default_pip_requirements(include_skops=True), f"mlflow=={mlflow.__version__}"]


def trusted_types(estimator: Any) -> list[str]:
    """Types skops would refuse when loading ``estimator`` (e.g. tree nodes).

    We trained this estimator in this process, so its own types are trusted;
    anything else a file might contain is still refused at load time.
    """
    from mlfactor.skops_io import skops_io

    sio = skops_io()  # MLflow's own `import skops.io` in log_model then finds it loaded
    return sorted(sio.get_untrusted_types(data=sio.dumps(estimator)))


def log_sklearn_model(
    estimator: Any,
    input_example: pd.DataFrame,
    *,
    registered_name: str | None = None,
    client: MlflowClient | None = None,
    tags: dict[str, str] | None = None,
) -> LoggedModel:
    """Log ``estimator`` into the active run with signature and example; register it when named.

    ``input_example`` is the training features: the first rows become the input
    example and the whole frame a compact training profile (``profile.json``,
    :mod:`mlfactor.monitoring.profile`) that ``mlfactor monitor drift`` compares
    served inputs against. The version inherits the run's git commit as a tag,
    so the registry alone says which code produced it.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_sklearn_model needs an active MLflow run (use mlfactor.notebook.start()).")
    predictions = estimator.predict(input_example)
    signature = infer_signature(input_example, predictions)
    info = mlflow.sklearn.log_model(
        estimator,
        name=MODEL_ARTIFACT,
        signature=signature,
        input_example=input_example.head(5),
        pip_requirements=pip_requirements(),
        skops_trusted_types=trusted_types(estimator) or None,
    )
    client = client or MlflowClient()
    log_profile(client, run.info.run_id, input_example)
    if registered_name is None:
        return LoggedModel(info.model_uri, run.info.run_id, None, None)
    return register_logged_model(client, info.model_uri, run.info.run_id, registered_name, tags)


def register_logged_model(
    client: MlflowClient,
    model_uri: str,
    run_id: str,
    registered_name: str,
    tags: dict[str, str] | None = None,
) -> LoggedModel:
    """Register a model logged in run ``run_id``; the version inherits the run's git and mlfactor tags."""
    run_tags = client.get_run(run_id).data.tags
    version_tags = {k: v for k, v in run_tags.items() if k.startswith((GIT_TAG_PREFIX, MLFACTOR_PREFIX))}
    version_tags.update(tags or {})
    mv = register_version(client, model_uri, registered_name, run_id=run_id, tags=version_tags)
    return LoggedModel(model_uri, run_id, registered_name, str(mv.version))
