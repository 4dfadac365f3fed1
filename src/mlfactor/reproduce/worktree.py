"""A temporary git worktree at a recorded commit: the code exactly as it was, beside the user's own."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlfactor.reproduce.record import NotReproducibleError


@dataclass(frozen=True)
class Checkout:
    """The worktree, and where the project (the folder holding pyproject.toml) is inside it."""

    tree: Path
    project: Path


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def checked_out(project_dir: Path, commit: str, target: str) -> Iterator[Checkout]:
    """Check ``commit`` out in a temporary worktree of ``project_dir``'s repository; remove it after.

    NotReproducibleError when the project is not in a git repository or the
    commit is unknown to it (never fetched, or garbage-collected).
    """
    top = _git(project_dir, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise NotReproducibleError(target, f"{project_dir} is not inside a git repository.")
    repo = Path(top.stdout.strip())
    if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise NotReproducibleError(
            target,
            f"commit {commit} is unknown to the repository at {repo}; fetch it (git fetch --all) and retry.",
        )
    folder = Path(tempfile.mkdtemp(prefix="mlfactor-reproduce-"))
    tree = folder / "tree"
    added = _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
    if added.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise NotReproducibleError(target, f"git worktree add failed: {added.stderr.strip()[:300]}")
    try:
        yield Checkout(tree, tree / project_dir.resolve().relative_to(repo.resolve()))
    finally:
        _git(repo, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(folder, ignore_errors=True)
        _git(repo, "worktree", "prune")
