"""The outcome of a reproduction: every check, the runs compared, and the exit code it maps to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlfactor.errors import ExitCode
from mlfactor.reproduce.compare import Check


@dataclass
class Report:
    """What ``mlfactor reproduce`` found: REPRODUCED (exit 0) or DIFFERS (exit 1)."""

    model: str
    version: str
    alias: str | None
    commit: str
    rtol: float
    original_run_id: str
    original_pipeline_run_id: str
    experiment: str
    reproduced_pipeline_run_id: str | None = None
    reproduced_run_id: str | None = None
    reproduced_version: str | None = None
    checks: list[Check] = field(default_factory=list)
    error: str | None = None

    @property
    def reproduced(self) -> bool:
        """True when the re-run succeeded and every check holds."""
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def status(self) -> str:
        """REPRODUCED or DIFFERS."""
        return "REPRODUCED" if self.reproduced else "DIFFERS"

    @property
    def exit_code(self) -> int:
        """0 when reproduced, 1 when something differs."""
        return int(ExitCode.OK if self.reproduced else ExitCode.STEP_FAILED)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (printed, and logged as ``reproduce/report.json``)."""
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "status": self.status,
            "exit_code": self.exit_code,
            "commit": self.commit,
            "rtol": self.rtol,
            "original": {"pipeline_run_id": self.original_pipeline_run_id, "run_id": self.original_run_id},
            "reproduction": {
                "experiment": self.experiment,
                "pipeline_run_id": self.reproduced_pipeline_run_id,
                "run_id": self.reproduced_run_id,
                "version": self.reproduced_version,
            },
            "error": self.error,
            "checks": [c.to_dict() for c in self.checks],
            "differences": [c.to_dict() for c in self.checks if not c.ok],
        }

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """Table rows: check, name, original, reproduced, ok."""
        return [
            (c.kind, c.name, _cell(c.original), _cell(c.reproduced), "ok" if c.ok else "DIFFERS")
            for c in self.checks
        ]


def _cell(value: Any) -> str:
    text = "-" if value is None else f"{value:.10g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
