"""What a pipeline step's kernel runs before its first cell (an IPython extension).

The runner starts every kernel with ``--ext=mlfactor.kernel_setup``; the
extension is small and imports neither MLflow nor matplotlib:

* the kernel remembers the values of its secret-looking environment variables
  (and :func:`mlfactor.notebook.secret` adds every value it hands out), and
  :mod:`mlfactor.secret_guard` masks them in whatever the notebook sends to
  MLflow, plain ``mlflow`` calls included;
* ``mlflow.set_experiment(...)`` keeps the step's experiment (the pipeline's),
  with a one-line note in the notebook: MLflow refuses to attach
  ``start_run()`` to the step's run (``MLFLOW_RUN_ID``) from another
  experiment, and plain notebooks call it in their first cell;
* scikit-learn's estimator walk (skops's trusted types, MLflow's autolog)
  leaves torch unimported (:mod:`mlfactor.skops_io`);
* tqdm's "IProgress not found" warning (MLflow imports ``tqdm.auto``; there
  are no widgets in an executed notebook) is not printed into the notebook;
* matplotlib figures render inline, also a ``Figure`` made without pyplot and
  left as a cell's value (IPython shows only its ``repr`` otherwise); pyplot
  figures use the inline backend the runner selects with ``MPLBACKEND``.

:func:`mlfactor.notebook.start` applies the figure part too, so the same
notebook renders the same way in JupyterLab.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

EXTENSION = "mlfactor.kernel_setup"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def _png(figure: Any) -> Any:
    from IPython.core import pylabtools

    render: Any = pylabtools.print_figure  # untyped in IPython
    return render(figure, fmt="png", base64=True, bbox_inches="tight")


def show_figures_inline(shell: Any | None = None) -> None:
    """Render matplotlib figures as PNG in ``shell`` (the running IPython), without importing matplotlib."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return
    formatters["image/png"].for_type_by_name("matplotlib.figure", "Figure", _png)


def pin_experiment(experiment_id: str, name: str) -> None:
    """Make ``mlflow.set_experiment`` select experiment ``experiment_id`` whatever it is asked for."""
    from mlfactor.import_hooks import after_import

    def patch(fluent: Any) -> None:
        original = fluent.set_experiment
        if getattr(original, "_mlfactor_pinned", False):
            return

        @functools.wraps(original)
        def set_experiment(
            experiment_name: str | None = None, experiment_id_: str | None = None, **kw: Any
        ) -> Any:
            asked = experiment_name or kw.pop("experiment_id", None) or experiment_id_
            if asked not in (None, name, experiment_id):
                print(
                    f"mlfactor: run by `mlfactor run`, this notebook logs to the pipeline's experiment "
                    f"{name!r}; set_experiment({asked!r}) applies when it runs by hand.",
                    file=sys.stderr,
                )
            return original(experiment_id=experiment_id)

        set_experiment._mlfactor_pinned = True  # type: ignore[attr-defined]
        fluent.set_experiment = set_experiment

    after_import("mlflow.tracking.fluent", patch)


def load_ipython_extension(shell: Any) -> None:
    """Remember secrets, guard MLflow writes, keep torch out of skops, quiet tqdm's warning, show figures."""
    import warnings

    from mlfactor.masking import remember_secrets, secret_values
    from mlfactor.secret_guard import guard_mlflow
    from mlfactor.settings import load_settings
    from mlfactor.skops_io import hide_array_libraries_from_estimator_walk

    settings = load_settings()
    remember_secrets(secret_values(settings.environ))
    guard_mlflow()
    hide_array_libraries_from_estimator_walk()  # skops models load without torch (mlfactor.skops_io)
    experiment_id = settings.environ.get("MLFLOW_EXPERIMENT_ID")
    if settings.run_id is not None and experiment_id:
        pin_experiment(experiment_id, settings.experiment)
    warnings.filterwarnings("ignore", message="IProgress not found")
    show_figures_inline(shell)
