"""The exception tree of mlfactor and the process exit codes it maps to.

Every error a user can cause derives from :class:`MlfactorError`; entry points
(the CLI, the service, the admin jobs) turn it into its ``exit_code`` and a
message without a traceback. The codes are part of the public contract: a
scheduler (cron, Kubernetes, Airflow) can act on them.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType


class ExitCode(IntEnum):
    """Process exit codes, documented in the README for schedulers."""

    OK = 0
    STEP_FAILED = 1
    USAGE = 2
    STEP_TIMEOUT = 3
    KERNEL_DIED = 4
    INVALID_INPUT = 65
    NOT_FOUND = 66
    SERVICE_UNAVAILABLE = 69
    INTERNAL = 70
    TRY_AGAIN = 75
    CONFIG = 78
    INTERRUPTED = 130
    TERMINATED = 143

    @classmethod
    def for_signal(cls, signum: int) -> ExitCode:
        """The code of a process stopped by ``signum``: 143 for SIGTERM, 130 for SIGINT (and any other)."""
        return cls.TERMINATED if signum == signal.SIGTERM else cls.INTERRUPTED


@dataclass(frozen=True)
class ExitCodeInfo:
    """What an exit code means, briefly (``--help``) and in full (README), and whether a retry can help."""

    short: str
    long: str
    retryable: bool


EXIT_CODES: Mapping[ExitCode, ExitCodeInfo] = MappingProxyType(
    {
        ExitCode.OK: ExitCodeInfo("success", "success", retryable=False),
        ExitCode.STEP_FAILED: ExitCodeInfo(
            "a step failed",
            "a step failed (a notebook cell raised); the message names step, cell and exception",
            retryable=False,
        ),
        ExitCode.USAGE: ExitCodeInfo("usage error", "usage error (bad command line or option value)", False),
        ExitCode.STEP_TIMEOUT: ExitCodeInfo("a step timed out", "a step timed out", retryable=False),
        ExitCode.KERNEL_DIED: ExitCodeInfo(
            "a kernel died", "a step's kernel died (crash, `os._exit`, out of memory)", retryable=True
        ),
        ExitCode.INVALID_INPUT: ExitCodeInfo(
            "invalid input", "invalid input: pipeline file, parameters, data file, release options", False
        ),
        ExitCode.NOT_FOUND: ExitCodeInfo(
            "not found", "not found: model, version, alias, release, file", retryable=False
        ),
        ExitCode.SERVICE_UNAVAILABLE: ExitCodeInfo(
            "backing service unavailable",
            "backing service unavailable (tracking store, registry, database), after bounded retries",
            retryable=True,
        ),
        ExitCode.INTERNAL: ExitCodeInfo("internal error", "internal error (a bug: please report it)", True),
        ExitCode.TRY_AGAIN: ExitCodeInfo(
            "try again",
            "try again later: another process holds the alias lock (or the cron wrapper skipped an "
            "overlapping run)",
            retryable=True,
        ),
        ExitCode.CONFIG: ExitCodeInfo(
            "invalid configuration", "invalid configuration (environment)", retryable=False
        ),
        ExitCode.INTERRUPTED: ExitCodeInfo(
            "SIGINT", "interrupted by SIGINT; kernels shut down, runs marked KILLED", retryable=True
        ),
        ExitCode.TERMINATED: ExitCodeInfo(
            "SIGTERM", "stopped by SIGTERM; kernels shut down, runs marked KILLED", retryable=True
        ),
    }
)
"""The one table of exit codes: ``--help`` texts, the README and Kubernetes' retry policy read it."""


def non_retryable_exit_codes() -> tuple[int, ...]:
    """The failure codes a retry cannot fix (a Job's ``podFailurePolicy`` fails at once on them)."""
    return tuple(int(code) for code, info in EXIT_CODES.items() if code != ExitCode.OK and not info.retryable)


def exit_codes_help(*codes: ExitCode, said: Mapping[ExitCode, str] | None = None) -> str:
    """``Exit codes: 0 success, 65 invalid input, ...`` for a command's ``--help`` (``said`` rewords some)."""
    words = dict(said or {})
    return "Exit codes: " + ", ".join(f"{int(c)} {words.get(c, EXIT_CODES[c].short)}" for c in codes) + "."


def exit_codes_markdown() -> str:
    """The README's table of every exit code."""
    rows = [f"| {int(code)} | {info.long} |" for code, info in EXIT_CODES.items()]
    return "\n".join(["| code | meaning |", "|---|---|", *rows])


class MlfactorError(Exception):
    """Raised for any failure mlfactor reports to its user; the base of the tree."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(MlfactorError):
    """Raised when environment variables are missing or invalid; lists every problem."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: Mapping[str, str], *, hint: str = "") -> None:
        self.problems = dict(problems)
        lines = [
            f"invalid configuration ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):"
        ]
        lines += [f"  - {name}: {text}" for name, text in sorted(self.problems.items())]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


class ValidationError(MlfactorError):
    """Raised when user input (a pipeline file, parameters, a data file) is invalid; lists every problem."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, subject: str, problems: Sequence[str]) -> None:
        self.subject = subject
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{subject}: {count} problem{'s' if count != 1 else ''}:"]
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


class NotFoundError(MlfactorError):
    """Raised when a model, version, alias, release or file named by the user does not exist."""

    exit_code = ExitCode.NOT_FOUND


class BackingServiceError(MlfactorError):
    """Raised when a backing service (tracking store, registry, database) cannot be reached."""

    exit_code = ExitCode.SERVICE_UNAVAILABLE

    def __init__(self, message: str, *, uri: str = "") -> None:
        super().__init__(message)
        self.uri = uri


class LockTimeoutError(MlfactorError):
    """Raised when another process held a registry lock for longer than we could wait."""

    exit_code = ExitCode.TRY_AGAIN


class StepFailedError(MlfactorError):
    """Raised when a pipeline step's notebook raised an exception in a cell."""

    exit_code = ExitCode.STEP_FAILED

    def __init__(self, message: str, *, step: str = "", cell: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.cell = cell


class StepTimeoutError(StepFailedError):
    """Raised when a pipeline step ran longer than its timeout."""

    exit_code = ExitCode.STEP_TIMEOUT


class KernelDiedError(StepFailedError):
    """Raised when a step's kernel died (os._exit, a crash, out of memory)."""

    exit_code = ExitCode.KERNEL_DIED


class InterruptedRunError(MlfactorError):
    """Raised when a run was stopped by SIGINT or SIGTERM."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, *, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.exit_code = ExitCode.for_signal(signal_number)
