"""Model URIs as users write them: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``, parsed once.

Kept apart from :mod:`mlfactor.registry` (which imports MLflow) so that the
service's processes can read the URIs they serve without importing MLflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlfactor.errors import ValidationError

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/`` URI: a name plus either an alias or a version."""

    name: str
    alias: str | None = None
    version: str | None = None

    @property
    def uri(self) -> str:
        """The URI in MLflow's form."""
        if self.version is not None:
            return f"models:/{self.name}/{self.version}"
        return f"models:/{self.name}@{self.alias}"


def parse_model_uri(uri: str) -> ModelRef:
    """Parse ``models:/name@alias`` or ``models:/name/3``; raise ValidationError otherwise."""
    match = _URI.match(uri.strip())
    if not match:
        raise ValidationError(
            "model URI",
            [
                f"got {uri!r}; expected models:/NAME@ALIAS or models:/NAME/VERSION, "
                "e.g. models:/iris-classifier@champion"
            ],
        )
    return ModelRef(match["name"], alias=match["alias"], version=match["version"])
