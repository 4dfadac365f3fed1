"""One-off admin jobs (factor XII): same code, settings and logs as the service, one module per job.

``batch_score`` scores a file in bounded memory, ``gc`` removes unreferenced old
runs and versions, ``db_upgrade`` migrates the tracking database. They run as
``mlfactor admin JOB``; :data:`JOBS` names them for the CLI and the docs.
"""

from __future__ import annotations

JOBS: dict[str, str] = {
    "batch-score": "mlfactor.admin.batch_score",
    "gc": "mlfactor.admin.gc",
    "db-upgrade": "mlfactor.admin.db_upgrade",
}

__all__ = ["JOBS"]
