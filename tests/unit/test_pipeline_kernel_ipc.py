"""Where a step's kernel sockets go: Unix sockets in the step folder, TCP on loopback when too deep."""

from __future__ import annotations

from pathlib import Path

from mlfactor.pipeline.kernel import IPC_PATH_LIMIT, ipc_fits


def test_a_short_step_folder_holds_the_kernel_sockets() -> None:
    """A step folder under a short TMPDIR keeps IPC sockets (no TCP port opened)."""
    assert ipc_fits(Path("/tmp/mlfactor-train-abc123"))


def test_a_deep_step_folder_falls_back_to_loopback_tcp() -> None:
    """A folder whose socket path would pass the AF_UNIX limit makes the kernel use TCP instead of failing."""
    deep = Path("/tmp") / ("d" * IPC_PATH_LIMIT) / "mlfactor-train-abc123"
    assert not ipc_fits(deep)
