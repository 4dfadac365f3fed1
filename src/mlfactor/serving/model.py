"""Load the served model once at start, and predict on its native estimator when possible.

Two sources:

* the MLflow registry (default): the URI (``models:/name@alias`` or
  ``models:/name/3``) is resolved **once** with :func:`mlfactor.registry.resolve_model`,
  the concrete version is logged, and its files are downloaded, all in a child
  process (:mod:`mlfactor.serving.resolve`) that imports MLflow while the worker
  imports scikit-learn on the other core;
* the BentoML model store, when ``MLFACTOR_BENTO_MODEL`` is set (a built Bento
  that carries its model): no registry call at all; the model's labels
  (``registered_model``, ``version``, ``run_id``, ``git_commit``) say what it is.

The MLflow pyfunc wrapper checks the signature on every call, which costs ten
times the prediction itself (FIELD_NOTES). When the model has a scikit-learn
flavor, the estimator is deserialized without importing MLflow
(:mod:`mlfactor.serving.native`) and :class:`ServedModel` calls it directly:
on a float matrix in signature order when that gives the same predictions as
a DataFrame on the model's input example, else on a DataFrame. Other flavors
use MLflow's pyfunc.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlfactor.errors import BackingServiceError, ConfigError, MlfactorError, NotFoundError, ValidationError
from mlfactor.log import event, get_logger
from mlfactor.masking import mask_uri
from mlfactor.serving.native import input_example_rows, load_sklearn, read_mlmodel, signature_schema
from mlfactor.serving.prefetch import read_prefetched
from mlfactor.serving.protocol import Row
from mlfactor.serving.resolve import ResolvedFiles, ResolverAnswer
from mlfactor.serving.schema import InputSchema
from mlfactor.settings import Settings
from mlfactor.skops_io import skops_io

logger = get_logger(__name__)
T = TypeVar("T")

PATH_MATRIX = "native-matrix"
PATH_FRAME = "native-frame"
PATH_PYFUNC = "pyfunc"
BENTO_MLFLOW_FOLDER = "mlflow_model"
LABEL_KEYS = {
    "name": ("registered_model", "model_name", "name"),
    "version": ("version", "model_version"),
    "run_id": ("run_id",),
    "git_commit": ("git_commit", "commit"),
}


@dataclass
class ServedModel:
    """A loaded model version: where it came from, its input schema and how it predicts."""

    name: str
    version: str
    run_id: str | None
    git_commit: str | None
    uri: str
    source: str  # "registry" or "bento"
    schema: InputSchema
    predict_path: str
    flavor: str
    estimator: Any = field(default=None, repr=False)
    matrix_estimator: Any = field(default=None, repr=False)
    pyfunc: Any = field(default=None, repr=False)
    predict_fn: str = "predict"
    bento_tag: str | None = None
    load_seconds: float = 0.0
    example: list[Row] | None = field(default=None, repr=False)  # the logged input example, when readable

    def predict(self, rows: Sequence[Row], params: Mapping[str, object] | None = None) -> list[Any]:
        """Predictions for valid ``rows`` as JSON-ready values.

        MLflow's ``params`` reach a pyfunc model (which checks them against its
        signature); a scikit-learn estimator takes none.
        """
        if self.predict_path == PATH_MATRIX:
            return _jsonable(getattr(self.matrix_estimator, self.predict_fn)(self.schema.to_matrix(rows)))
        frame = self.schema.to_frame(rows)
        if self.predict_path == PATH_FRAME:
            return _jsonable(getattr(self.estimator, self.predict_fn)(frame))
        if params:
            return _jsonable(self.pyfunc.predict(frame, params=dict(params)))
        return _jsonable(self.pyfunc.predict(frame))

    def warm(self) -> bool:
        """Predict once on the input example (validation included); False when there is none.

        Raises whatever validating or predicting raises: a version that cannot
        answer its own example must not take traffic.
        """
        if not self.example:
            return False
        self.schema.validate(self.example, allow_extra=True)
        self.predict(self.example)
        return True

    def describe(self) -> dict[str, Any]:
        """Describe what /metadata shows about this model."""
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "git_commit": self.git_commit,
            "uri": self.uri,
            "source": self.source,
            "bento_model": self.bento_tag,
            "flavor": self.flavor,
            "predict_path": self.predict_path,
            "inputs": self.schema.to_dict(),
        }


def _jsonable(raw: Any) -> list[Any]:
    tolist = getattr(raw, "tolist", None)
    if tolist is not None:
        return list(tolist())
    to_dict = getattr(raw, "to_dict", None)
    if to_dict is not None:  # a pandas DataFrame from a pyfunc model
        return list(to_dict(orient="records"))
    return list(raw)


def _load_local(
    path: Path,
    *,
    name: str,
    version: str,
    run_id: str | None,
    git_commit: str | None,
    uri: str,
    source: str,
    environ: Mapping[str, str],
    bento_tag: str | None = None,
) -> ServedModel:
    """Load an MLflow model folder: native estimator without MLflow when possible, else MLflow's pyfunc."""
    started = time.perf_counter()
    mlmodel = read_mlmodel(path)
    schema = signature_schema(mlmodel)
    flavors = mlmodel.get("flavors") or {}
    predict_fn = str((flavors.get("python_function") or {}).get("predict_fn") or "predict")
    estimator = load_sklearn(path, mlmodel, environ) if schema is not None else None
    example = input_example_rows(path, mlmodel)
    served = ServedModel(
        name=name,
        version=version,
        run_id=run_id,
        git_commit=git_commit,
        uri=uri,
        source=source,
        schema=schema or InputSchema(()),
        predict_path=PATH_PYFUNC,
        flavor="python_function",
        predict_fn=predict_fn,
        bento_tag=bento_tag,
        example=example,
    )
    if estimator is not None and hasattr(estimator, predict_fn):
        served.estimator = estimator
        served.flavor = "sklearn"
        served.predict_path = _choose_native_path(served, example)
    else:
        import mlflow.pyfunc  # only for flavors the native path does not handle

        from mlfactor.serving.batching import batch_predictions

        served.pyfunc = batch_predictions(mlflow.pyfunc.load_model(str(path)))
        served.schema = InputSchema.from_model(served.pyfunc.metadata)
    served.load_seconds = round(time.perf_counter() - started, 3)
    return served


def _choose_native_path(served: ServedModel, example: list[Row] | None) -> str:
    """Matrix when it predicts exactly like a DataFrame on the input example, else DataFrame."""
    # The estimator was fitted on named columns; we order the matrix by the signature ourselves.
    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
    if not served.schema.numeric or not example:
        return PATH_FRAME
    # A private shallow copy without `feature_names_in_`: otherwise scikit-learn warns on every
    # matrix call ("X does not have valid feature names"), which costs about 40 % of a one-row predict.
    fast = copy.copy(served.estimator)
    if "feature_names_in_" in vars(fast):
        del fast.feature_names_in_
    try:
        matrix = _jsonable(getattr(fast, served.predict_fn)(served.schema.to_matrix(example)))
        same = matrix == _jsonable(
            getattr(served.estimator, served.predict_fn)(served.schema.to_frame(example))
        )
    except Exception:  # noqa: BLE001 - any failure on a matrix means the estimator needs a DataFrame
        same = False
    if not same:
        return PATH_FRAME
    served.matrix_estimator = fast
    return PATH_MATRIX


def _warm_imports() -> None:
    """Import what unpickling a scikit-learn model needs, while the resolver imports MLflow."""
    for module in ("numpy", "pandas", "sklearn.base"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    with contextlib.suppress(ImportError):
        skops_io()


def resolver_command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The command line (URIs to append) and environment of the resolver child."""
    env = settings.child_environment()
    # Inside a Bento the package may sit in src/ without being installed: let the child find it too.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return [sys.executable, "-m", "mlfactor.serving.resolve"], env


def _resolve_in_child(settings: Settings, uris: Sequence[str]) -> ResolverAnswer:
    command, env = resolver_command(settings)
    child = subprocess.Popen([*command, *uris], stdout=subprocess.PIPE, env=env, cwd=settings.project_dir)
    try:
        _warm_imports()
        out, _ = child.communicate(timeout=max(60.0, settings.registry_wait))
    except BaseException:
        child.kill()
        child.wait()
        raise
    return ResolverAnswer.from_output(out)


def load_from_registry(
    settings: Settings, uris: Sequence[str], prefetched: Path | None = None
) -> dict[str, ServedModel]:
    """Resolve every URI once in a child process (in parallel with our imports); load each version.

    With ``prefetched`` (the file of a resolver started at launch, see
    :mod:`mlfactor.serving.prefetch`), its answer is used when it covers ``uris``.
    """
    answer = None
    if prefetched is not None:
        _warm_imports()
        answer = read_prefetched(prefetched, list(uris), timeout=max(60.0, settings.registry_wait))
    at_launch = answer is not None
    if answer is None:
        answer = _resolve_in_child(settings, uris)
    answer.raise_failure()
    return {found.uri: load_resolved(found, settings.environ, at_launch=at_launch) for found in answer.models}


def load_resolved(
    found: ResolvedFiles, environ: Mapping[str, str], *, at_launch: bool = False
) -> ServedModel:
    """Load a resolved and downloaded registry version (logs ``model_resolved``).

    ``at_launch``: resolved by the resolver started at launch, not by this worker.
    """
    event(
        logger,
        "model_resolved",
        resolved_at_launch=at_launch,
        uri=found.uri,
        model_name=found.name,
        model_version=found.version,
        run_id=found.run_id,
        git_commit=found.git_commit,
    )
    return _load_local(
        Path(found.path),
        name=found.name,
        version=found.version,
        run_id=found.run_id,
        git_commit=found.git_commit,
        uri=f"models:/{found.name}/{found.version}",
        source="registry",
        environ=environ,
    )


def load_from_bento_store(tag: str, environ: Mapping[str, str]) -> ServedModel:
    """Load the model packed in a Bento (BentoML model store); never calls the registry."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        bento_model = bentoml.models.get(tag)
    except NotFound as exc:
        raise NotFoundError(
            f"BentoML model {tag!r} (MLFACTOR_BENTO_MODEL) is not in the model store; "
            "build the Bento with `mlfactor build` or unset MLFACTOR_BENTO_MODEL to load from the registry."
        ) from exc
    labels = dict(bento_model.info.labels or {})

    def label(key: str) -> str | None:
        return next((labels[k] for k in LABEL_KEYS[key] if labels.get(k)), None)

    name = label("name") or bento_model.tag.name
    version = label("version") or str(bento_model.tag.version)
    return _load_local(
        Path(bento_model.path_of(BENTO_MLFLOW_FOLDER)),
        environ=environ,
        name=name,
        version=version,
        run_id=label("run_id"),
        git_commit=label("git_commit"),
        uri=f"models:/{name}/{version}",
        source="bento",
        bento_tag=str(bento_model.tag),
    )


def load_with_retry(
    load: Callable[[], T], *, what: str, wait: float, stopping: Callable[[], bool] = lambda: False
) -> T:
    """Call ``load`` until it succeeds; retry unreachable stores for ``wait`` seconds.

    A missing model, alias or version (NotFoundError) or a bad URI fails at once;
    anything else counts as "store unreachable" and is retried with back-off,
    then raised as BackingServiceError.
    """
    deadline = time.monotonic() + wait
    delay = 0.5
    attempt = 0
    while True:
        attempt += 1
        try:
            return load()
        except (NotFoundError, ValidationError, ConfigError):
            raise
        except MlfactorError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - transport errors come in many types
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        left = deadline - time.monotonic()
        if left <= 0 or stopping():
            raise BackingServiceError(
                f"could not load {mask_uri(what)} after {attempt} attempts in {wait:g} s: "
                f"{mask_uri(error)[:300]}. "
                "Check MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI and that the store is up "
                "(MLFACTOR_REGISTRY_WAIT sets how long the service waits)."
            )
        event(
            logger,
            "model_load_retry",
            level=logging.WARNING,
            uri=mask_uri(what),
            attempt=attempt,
            retry_in_s=round(min(delay, left), 2),
            error=mask_uri(error)[:300],
        )
        time.sleep(min(delay, left))
        delay = min(delay * 2, 5.0)
