"""Resolve the served models while BentoML starts, so the worker finds them ready.

Resolving an alias and downloading the version (:mod:`mlfactor.serving.resolve`,
a child process that imports MLflow) is the slowest part of a start. Left to
the worker, it begins only once BentoML's supervisor and the worker have
imported everything. Instead, whoever starts the service first, ``mlfactor
serve`` or, for a plain ``bentoml serve``, the service module in BentoML's
supervisor, calls :func:`start_prefetch` at once: the resolver runs on the
other core while BentoML starts, its answer lands in a file, and the workers
(told the file by ``MLFACTOR_PREFETCH_FILE``) read it with
:func:`read_prefetched` instead of starting a resolver of their own. The file
appears only complete (written aside, then renamed) and always appears: when
the resolver dies without an answer, the file says so and the worker resolves
itself, as it does on any retry.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from mlfactor.serving.resolve import ResolverAnswer
from mlfactor.settings import Settings

PREFETCH_ENV = "MLFACTOR_PREFETCH_FILE"
ANSWER_FILE = "resolved.json"
POLL_SECONDS = 0.02


def start_prefetch(settings: Settings, uris: list[str], command: list[str], env: dict[str, str]) -> Path:
    """Start the resolver ``command`` for ``uris`` with its answer going to a new file; return that file.

    The folder is removed when this process exits; a thread renames the
    answer into place once the resolver ends.
    """
    folder = Path(tempfile.mkdtemp(prefix="mlfactor-prefetch-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    answer = folder / ANSWER_FILE
    partial = folder / (ANSWER_FILE + ".partial")
    with partial.open("wb") as out:
        child = subprocess.Popen(
            [*command, *uris], stdout=out, stdin=subprocess.DEVNULL, env=env, cwd=settings.project_dir
        )

    def publish() -> None:
        child.wait()
        with contextlib.suppress(OSError):
            partial.replace(answer)

    threading.Thread(target=publish, name="mlfactor-prefetch", daemon=True).start()
    return answer


def read_prefetched(path: Path, uris: list[str], timeout: float) -> ResolverAnswer | None:
    """The resolver's answer in ``path`` once it is there; None when it cannot serve these ``uris``.

    None (resolve yourself) when the prefetch folder is gone (a stale
    variable), when no answer arrives within ``timeout`` seconds, or when the
    answer does not cover every URI.
    """
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if not path.parent.is_dir() or time.monotonic() > deadline:
            return None
        time.sleep(POLL_SECONDS)  # a file rename has no event to wait on without a watcher thread
    try:
        answer = ResolverAnswer.from_output(path.read_bytes())
    except OSError:
        return None
    if answer.error is None and {found.uri for found in answer.models} != set(uris):
        return None
    return answer
