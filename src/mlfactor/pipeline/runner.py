"""Run a planned pipeline: one parent MLflow run, steps scheduled over the graph, signals handled.

Steps whose prerequisites are done start at once, up to ``max_parallel`` at a
time, each in a worker thread driving its own kernel. The main thread watches
them: it stops a kernel whose step passed its ``timeout``, and on SIGTERM or
SIGINT it stops every running kernel itself (papermill does not forward
signals), lets each step keep its partial notebook and end its run KILLED, and
returns an interrupted result (exit 143 or 130). After a failure no new step
starts; steps already running finish. The result carries the summary the CLI
prints as its final JSON line.
"""

from __future__ import annotations

import importlib
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from mlfactor.errors import ExitCode, InterruptedRunError, MlfactorError, StepFailedError
from mlfactor.log import bind, event, get_logger
from mlfactor.masking import mask_data, remember_secrets, secret_values
from mlfactor.pipeline.kernel import STOP_GRACE_S, KernelHandle
from mlfactor.pipeline.parameters import resolve_references
from mlfactor.pipeline.parent import ParentRun, open_parent, record_outcome
from mlfactor.pipeline.plan import Plan
from mlfactor.pipeline.progress import NullProgress, Progress
from mlfactor.pipeline.step import StepContext, StepResult, run_step
from mlfactor.settings import Settings
from mlfactor.signals import StopRequest, handle_stop_signals
from mlfactor.tags import RunStatus
from mlfactor.tracking import connect

logger = get_logger(__name__)
NOT_STARTED = "NOT_STARTED"


@dataclass
class PipelineResult:
    """How a pipeline run ended, step by step."""

    pipeline: str
    run_id: str
    experiment_id: str
    status: str
    steps: dict[str, StepResult]
    output_dir: Path
    duration_s: float = 0.0
    error: MlfactorError | None = None
    metric: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0, or the exit code of the error that ended the run."""
        return int(self.error.exit_code) if self.error is not None else int(ExitCode.OK)

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        """Outputs recorded by each step."""
        return {name: dict(r.outputs) for name, r in self.steps.items() if r.outputs}

    def summary(self) -> dict[str, Any]:
        """Return the final JSON line of ``mlfactor run``."""
        data: dict[str, Any] = {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "duration_s": round(self.duration_s, 3),
            "steps": {name: r.summary() for name, r in self.steps.items()},
            "outputs": self.outputs,
            "output_dir": str(self.output_dir),
        }
        if self.metric is not None:
            data["metric"] = self.metric
        if self.tags:
            data["tags"] = self.tags
        if self.error is not None:
            data["error"] = str(self.error)
        return {key: mask_data(value) for key, value in data.items()}


def run_pipeline(
    plan: Plan,
    settings: Settings,
    *,
    max_parallel: int | None = None,
    output_dir: Path | None = None,
    progress: Progress | None = None,
    tags: Mapping[str, str] | None = None,
    client: MlflowClient | None = None,
    experiment: str | None = None,
) -> PipelineResult:
    """Run every step of ``plan``; return the result (notebook failures do not raise).

    ``experiment`` replaces the pipeline's own (``mlfactor reproduce`` runs into a separate one).
    """
    spec = plan.spec
    _warm_imports()
    remember_secrets(secret_values(settings.environ))
    client = client or connect(settings)
    parent = open_parent(
        plan, settings, client, experiment=experiment, extra_tags=tags, output_dir=output_dir
    )
    with bind(pipeline=spec.name, pipeline_run_id=parent.run_id):
        event(
            logger,
            "pipeline_started",
            run_id=parent.run_id,
            experiment=parent.experiment_name,
            steps=spec.step_names,
            file=spec.relative_path,
            output_dir=str(parent.out),
        )
        scheduler = _Scheduler(plan, settings, client, parent, progress or NullProgress(), max_parallel)
        result = scheduler.run_all(dict(tags or {}))
        record_outcome(client, plan, result)
        event(
            logger,
            "pipeline_finished",
            level=20 if result.error is None else 40,
            status=result.status,
            exit_code=result.exit_code,
            duration_s=round(result.duration_s, 3),
            steps={n: r.status for n, r in result.steps.items()},
        )
    return result


def run_steps(
    plan: Plan,
    settings: Settings,
    client: MlflowClient,
    parent: ParentRun,
    done: Mapping[str, StepResult],
    *,
    progress: Progress | None = None,
    earlier_attempts: Mapping[str, int] | None = None,
) -> PipelineResult:
    """Run the steps of ``plan`` not in ``done`` under an existing parent run; the parent stays open.

    ``done`` holds the steps finished elsewhere (other processes, other
    machines) with their outputs; later steps take their ``${steps...}``
    references from them. Timeouts, retries and signals work as in
    :func:`run_pipeline`.
    """
    _warm_imports()
    remember_secrets(secret_values(settings.environ))
    with bind(pipeline=plan.spec.name, pipeline_run_id=parent.run_id):
        scheduler = _Scheduler(plan, settings, client, parent, progress or NullProgress(), 1)
        scheduler.results.update(done)
        scheduler.earlier_attempts.update(earlier_attempts or {})
        return scheduler.run_all({})


def _warm_imports() -> None:
    """Import papermill (nbformat, nbclient, jupyter_client: seconds) while the parent run is created.

    The first step needs them; importing in the background overlaps that cost
    with the store round trips of the run's set-up instead of adding to it.
    """
    threading.Thread(
        target=importlib.import_module, args=("papermill",), name="mlfactor-imports", daemon=True
    ).start()


class _Scheduler:
    """Start ready steps on worker threads and watch them from the main thread."""

    def __init__(  # noqa: PLR0917 - internal, called twice
        self,
        plan: Plan,
        settings: Settings,
        client: MlflowClient,
        parent: ParentRun,
        progress: Progress,
        max_parallel: int | None,
    ) -> None:
        self.plan, self.settings, self.client = plan, settings, client
        self.experiment_id, self.run_id, self.out = parent.experiment_id, parent.run_id, parent.out
        self.packages_file, self.packages_tags = parent.packages_file, dict(parent.packages_tags)
        self.progress = progress
        self.max_parallel = max(1, max_parallel or settings.max_parallel)
        self.experiment_name = parent.experiment_name
        self.secrets = secret_values(settings.environ)
        self.results: dict[str, StepResult] = {}
        self.earlier_attempts: dict[str, int] = {}
        self.kernels: dict[str, tuple[KernelHandle, float]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.signum = 15
        self.failed = False
        self.publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlfactor-publish")
        self.published: list[Future[None]] = []

    def run_all(self, tags: dict[str, str]) -> PipelineResult:
        """Run every ready step until none is left, with signals handled; return the result."""
        started = time.monotonic()
        try:
            signals = StopRequest()
            with handle_stop_signals(signals):
                self.run(signals)
        finally:
            self.drain()
            self.progress.close()
        return self.result(time.monotonic() - started, tags)

    def publish(self, job: Callable[[], None]) -> None:
        """Render and log a finished step's notebook and end its run, while later steps start."""
        self.published.append(self.publisher.submit(job))

    def drain(self) -> None:
        """Wait until every finished step's notebook is logged and its run ended."""
        wait(self.published)
        self.publisher.shutdown(wait=True)

    def _on_kernel(self, step: str) -> Callable[[KernelHandle | None], None]:
        def record(handle: KernelHandle | None) -> None:
            with self.lock:
                if handle is None:
                    self.kernels.pop(step, None)
                else:
                    self.kernels[step] = (handle, time.monotonic())
            if handle is not None and self.stopping.is_set():
                handle.request_stop("interrupted")

        return record

    def _context(self, name: str, parameters: Mapping[str, Any]) -> StepContext:
        return StepContext(
            step=self.plan.spec.step(name),
            parameters=parameters,
            kernel_name=self.plan.notebooks[name].kernel_name,
            settings=self.settings,
            client=self.client,
            experiment_id=self.experiment_id,
            parent_run_id=self.run_id,
            experiment_name=self.experiment_name,
            output_dir=self.out,
            secrets=self.secrets,
            packages_file=self.packages_file,
            packages_tags=self.packages_tags,
            progress=self.progress,
            on_kernel=self._on_kernel(name),
            stopping=self.stopping,
            signal_number=lambda: self.signum,
            publish=self.publish,
            earlier_attempts=self.earlier_attempts.get(name, 0),
        )

    def _resolve(self, name: str) -> Mapping[str, Any] | None:
        outputs = {n: r.outputs for n, r in self.results.items()}
        try:
            return dict(resolve_references(dict(self.plan.parameters[name]), outputs))
        except KeyError as exc:
            ref_step, output = exc.args[0]
            recorded = ", ".join(sorted(outputs.get(ref_step, {}))) or "nothing"
            error = StepFailedError(
                f"step {name!r} takes ${{steps.{ref_step}.outputs.{output}}}, but step {ref_step!r} recorded "
                f"{recorded}. Record it in that notebook with "
                f"mlfactor.notebook.record_output({output!r}, value).",
                step=name,
            )
            event(
                logger,
                "step_finished",
                level=40,
                step=name,
                status=RunStatus.FAILED,
                error="StepFailedError",
                message=str(error),
                exit_code=int(error.exit_code),
            )
            self.results[name] = StepResult(name, RunStatus.FAILED, error=error)
            self.failed = True
            return None

    def run(self, signals: StopRequest) -> None:
        graph = self.plan.graph
        running: dict[Future[StepResult], str] = {}
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="mlfactor-step") as pool:
            while True:
                if signals.signum is not None and not self.stopping.is_set():
                    self._interrupt(signals.signum)
                if not self.stopping.is_set() and not self.failed:
                    done = [n for n, r in self.results.items() if r.error is None]
                    begun = set(self.results) | set(running.values())
                    for name in graph.ready(done, begun):
                        if len(running) >= self.max_parallel:
                            break
                        parameters = self._resolve(name)
                        if parameters is not None:
                            running[pool.submit(run_step, self._context(name, parameters))] = name
                if not running:
                    break
                finished, _ = wait(list(running), timeout=0.1, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    result = future.result()
                    self.results[name] = result
                    if result.error is not None:
                        self.failed = True
                self._enforce_timeouts()

    def _interrupt(self, signum: int) -> None:
        self.signum = signum
        self.stopping.set()
        event(logger, "pipeline_interrupted", level=30, signal=signal.Signals(signum).name)
        with self.lock:
            handles = [h for h, _ in self.kernels.values()]
        for handle in handles:
            threading.Thread(target=handle.stop, args=("interrupted", STOP_GRACE_S), daemon=True).start()

    def _enforce_timeouts(self) -> None:
        now = time.monotonic()
        with self.lock:
            kernels = list(self.kernels.items())
        for name, (handle, since) in kernels:
            timeout = self.plan.spec.step(name).timeout
            if timeout is not None and now - since > timeout and handle.stop_reason is None:
                event(logger, "step_timeout", level=40, step=name, timeout_s=timeout)
                handle.request_stop("timeout")
                threading.Thread(target=handle.stop, args=("timeout", STOP_GRACE_S), daemon=True).start()

    def result(self, duration: float, tags: dict[str, str]) -> PipelineResult:
        steps: dict[str, StepResult] = {}
        for name in self.plan.spec.step_names:
            steps[name] = self.results.get(name) or StepResult(name, NOT_STARTED)
        error: MlfactorError | None = None
        if self.stopping.is_set():
            name = signal.Signals(self.signum).name
            error = InterruptedRunError(
                f"pipeline {self.plan.spec.name!r} was stopped by {name}; running "
                "kernels were shut down and their partial notebooks kept.",
                signal_number=self.signum,
            )
            status = RunStatus.KILLED
        else:
            failures = [r.error for r in steps.values() if r.error is not None]
            error = failures[0] if failures else None
            status = RunStatus.FAILED if error is not None else RunStatus.FINISHED
        return PipelineResult(
            self.plan.spec.name,
            self.run_id,
            self.experiment_id,
            status,
            steps,
            self.out,
            duration,
            error,
            tags=tags,
        )
