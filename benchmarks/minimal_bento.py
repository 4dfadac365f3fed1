"""Anchor for `make bench-serve`: the minimal hand-written BentoML service loading the pyfunc model.

What a team writes on its own in ten lines: load ``MLFACTOR_MODEL_URI`` with
``mlflow.pyfunc.load_model`` at start and answer the MLflow ``dataframe_split``
payload on ``/invocations``. No validation, no logging set-up, no shutdown bound.
"""

import os

import bentoml


@bentoml.service(name="minimal", workers=1)
class Minimal:
    """pyfunc model behind one BentoML API."""

    def __init__(self) -> None:
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(os.environ["MLFACTOR_MODEL_URI"])

    @bentoml.api(route="/invocations")
    def invocations(self, dataframe_split: dict) -> dict:  # type: ignore[type-arg]
        """Predict on a dataframe_split payload."""
        import pandas as pd

        frame = pd.DataFrame(dataframe_split["data"], columns=dataframe_split["columns"])
        return {"predictions": self.model.predict(frame).tolist()}
