"""The small API notebooks import: one call to start, one to record outputs.

A notebook's first code cell after its ``parameters`` cell does::

    import mlfactor.notebook
    ctx = mlfactor.notebook.start(experiment="demo")

Run by ``mlfactor run``, the kernel's environment names the step's MLflow
run (``MLFACTOR_RUN_ID``, created by the runner with every lineage tag) and
``start`` attaches to it. Run interactively in JupyterLab, ``start`` opens a
run of its own in ``experiment`` and tags it with the git commit and dirty flag
of the repository holding the notebook (MLflow cannot, FIELD_NOTES).
Either way the same settings, the same tracking store and the same logging
apply, read from the environment by :func:`mlfactor.settings.load_settings`.

``record_output(name, value)`` hands a JSON value to later steps of the
pipeline (``${steps.<step>.outputs.<name>}``). ``secret(name)`` returns an
environment variable and remembers its value as a secret: masked in this
kernel's logs and MLflow writes, and, under the runner, named (never its value)
in ``secret-names.txt`` beside ``MLFACTOR_OUTPUTS_FILE`` so the runner masks it
in everything it writes too.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlfactor import tags
from mlfactor.errors import ConfigError, ValidationError
from mlfactor.log import configure_logging, event, get_logger
from mlfactor.masking import remember_secrets, secret_values
from mlfactor.settings import Settings, load_settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

logger = get_logger("mlfactor.notebook")
SECRET_NAMES_FILE = "secret-names.txt"  # noqa: S105 - a file name, not a secret
"""Beside the outputs file: the names (never the values) of the variables read through ``secret()``."""
_current: NotebookContext | None = None


@dataclass
class NotebookContext:
    """What a running notebook gets from :func:`start`."""

    settings: Settings
    client: MlflowClient
    run_id: str
    experiment_id: str
    managed: bool
    pipeline_run_id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    def record_output(self, name: str, value: Any) -> None:
        """Record output ``name`` for later steps (and as a run tag); ``value`` must be JSON-compatible."""
        _check_output(name, value)
        self.outputs[name] = value
        path = self.settings.outputs_file
        if path is not None:
            _write_outputs(path, name, value)
        self.client.set_tag(self.run_id, f"{tags.OUTPUT_TAG_PREFIX}{name}", str(value)[:5000])
        event(logger, "output_recorded", output=name, run_id=self.run_id)

    def secret(self, name: str) -> str:
        """Return environment variable ``name`` (secrets reach notebooks only this way)."""
        return _secret(self.settings, name)


def _secret(settings: Settings, name: str) -> str:
    value = settings.environ.get(name)
    if not value:
        raise ConfigError(
            {
                name: "is not set; this notebook needs it. Export it (or put it in .env for local work, "
                "or a Kubernetes Secret) and run again."
            }
        )
    remember_secrets([value])
    if settings.outputs_file is not None:
        names = settings.outputs_file.with_name(SECRET_NAMES_FILE)
        with names.open("a", encoding="utf-8") as handle:
            handle.write(name + "\n")
    return value


def secret(name: str) -> str:
    """Return environment variable ``name``, a secret the notebook needs; ConfigError when unset.

    Secrets are never notebook parameters (papermill writes parameters into the
    executed notebook): they come from the kernel's environment, which the
    runner fills from its own (and ``.env``).
    """
    return _secret(_current.settings if _current is not None else load_settings(), name)


def _check_output(name: str, value: Any) -> None:
    from mlfactor.pipeline.parameters import name_problems, value_problems

    problems = name_problems(name, "record_output") + value_problems(value, f"record_output: {name!r}")
    if problems:
        raise ValidationError("notebook output", problems)


def _write_outputs(path: Path, name: str, value: Any) -> None:
    from mlfactor.pipeline.artifacts import write_atomic

    data: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            data = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            data = {}
    data[name] = value
    write_atomic(path, json.dumps(data))


def start(experiment: str | None = None, *, run_name: str | None = None) -> NotebookContext:
    """Configure logging, load settings, connect MLflow and attach to (or start) this notebook's run.

    ``experiment`` is used only interactively; under ``mlfactor run`` the
    pipeline's experiment applies.
    """
    global _current  # noqa: PLW0603 - the one context of this kernel, for record_output()
    import mlflow

    from mlfactor.tracking import connect, ensure_experiment, git_info

    settings = load_settings()
    log_format = "console" if settings.log_format == "auto" else settings.log_format
    configure_logging(
        settings.log_level, log_format, stream=sys.stdout, secrets=secret_values(settings.environ)
    )
    client = connect(settings)
    from mlfactor.kernel_setup import show_figures_inline

    show_figures_inline()
    if mlflow.active_run() is not None:
        mlflow.end_run()
    if settings.run_id is not None:
        run = mlflow.start_run(run_id=settings.run_id)
        managed = True
    else:
        name = experiment or settings.experiment
        experiment_id = ensure_experiment(client, name, settings)
        run_tags = {**git_info(Path.cwd()).tags(), tags.SOURCE_TAG: "interactive"}
        from mlfactor.version import mlfactor_version

        run_tags[tags.VERSION_TAG] = mlfactor_version()
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags)
        managed = False
    pipeline_run_id = run.data.tags.get(tags.PIPELINE_RUN_TAG) if managed else None
    _current = NotebookContext(
        settings, client, run.info.run_id, run.info.experiment_id, managed, pipeline_run_id
    )
    event(logger, "notebook_started", run_id=run.info.run_id, managed=managed)
    return _current


def record_output(name: str, value: Any) -> None:
    """Record an output of the current step (see :meth:`NotebookContext.record_output`).

    Works without :func:`start` too: the value goes to the runner's outputs file.
    """
    if _current is not None:
        _current.record_output(name, value)
        return
    _check_output(name, value)
    settings = load_settings()
    if settings.outputs_file is not None:
        _write_outputs(settings.outputs_file, name, value)
