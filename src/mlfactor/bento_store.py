"""BentoML's local stores (Bentos and models) at the settings' ``BENTOML_HOME``: the one way to switch them.

BentoML reads ``BENTOML_HOME`` from ``os.environ`` once and memoises its
stores on first use, but mlfactor's settings (``.env`` included) are not
exported to ``os.environ``, and one process (a test run, a build that then
releases) may work with several homes. :func:`bentoml_stores` points BentoML's
home, Bento store and model store at the settings' home for a ``with`` block
and puts the previous ones back afterwards; :func:`get_bento` reads a Bento
there with an error that says what the store holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlfactor.errors import NotFoundError
from mlfactor.names import did_you_mean
from mlfactor.settings import Settings


@contextlib.contextmanager
def bentoml_stores(settings: Settings) -> Iterator[None]:
    """Point BentoML's Bento and model stores at the settings' ``BENTOML_HOME`` inside the block.

    Without ``BENTOML_HOME`` in the settings' environment BentoML's own default
    (``~/bentoml``) stays in force.
    """
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    home = settings.environ.get("BENTOML_HOME")
    if not home:
        yield
        return
    root = Path(home)
    for sub in ("bentos", "models"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    with (
        BentoMLContainer.bentoml_home.patch(str(root)),
        BentoMLContainer.bento_store_dir.patch(str(root / "bentos")),
        BentoMLContainer.model_store_dir.patch(str(root / "models")),
        BentoMLContainer.bento_store.patch(BentoStore(str(root / "bentos"))),
        BentoMLContainer.model_store.patch(ModelStore(str(root / "models"))),
    ):
        yield


def get_bento(bento_tag: str) -> Any:
    """Return the Bento ``bento_tag`` of the current store; NotFoundError naming what the store holds."""
    import bentoml
    from bentoml.exceptions import BentoMLException, NotFound

    try:
        return bentoml.bentos.get(bento_tag)
    except (NotFound, BentoMLException, ValueError) as exc:
        tags = [str(b.tag) for b in bentoml.bentos.list()]
        raise NotFoundError(
            f"Bento {bento_tag!r} is not in this machine's BentoML store (BENTOML_HOME)."
            f"{did_you_mean(bento_tag, tags)} Bentos: {', '.join(tags) or 'none'}. Build it here with "
            "`mlfactor build` or import it with `bentoml import`."
        ) from exc
