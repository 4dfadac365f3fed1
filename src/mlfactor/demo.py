"""The demo data set and its holdout split, shared by the demo notebooks.

Iris ships with scikit-learn (nothing is downloaded). Features are renamed to
``sepal_length, sepal_width, petal_length, petal_width`` (the names the
service's schema and the tests use); the target is the class 0..2. Both demo
notebooks call :func:`holdout_split` with the same ``test_size`` and ``seed``,
so the new model and the champion are scored on the same rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
TARGET = "target"


def load_iris_frame() -> pd.DataFrame:
    """Iris as one DataFrame: the four float features plus the integer ``target``."""
    from sklearn.datasets import load_iris

    frame: pd.DataFrame = load_iris(as_frame=True).frame
    frame.columns = [*FEATURES, TARGET]
    return frame


def holdout_split(
    test_size: float = 0.3, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """``X_train, X_test, y_train, y_test``, stratified and reproducible for a given seed."""
    from sklearn.model_selection import train_test_split

    frame = load_iris_frame()
    features = frame[list(FEATURES)]
    split = train_test_split(
        features, frame[TARGET], test_size=test_size, random_state=seed, stratify=frame[TARGET]
    )
    x_train, x_test, y_train, y_test = split
    return x_train, x_test, y_train, y_test
