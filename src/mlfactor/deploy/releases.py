"""Find the release a rendering is for: by id, or ``current`` / ``previous`` of an application."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from mlfactor.errors import NotFoundError, ValidationError
from mlfactor.names import did_you_mean
from mlfactor.release.records import Release, list_releases
from mlfactor.settings import Settings

MOVING = ("current", "previous")


def pick_release(releases: list[Release], ref: str, app: str | None = None) -> Release:
    """Return the release ``ref`` names among ``releases`` (newest first, as ``list_releases`` gives them).

    ``ref`` is a release id, or ``current``/``previous`` of ``app`` (which may be
    left out when there is one application).
    """
    if ref not in MOVING:
        for release in releases:
            if release.release_id == ref:
                return release
        ids = [r.release_id for r in releases]
        shown = ", ".join(ids[:5]) or "none: record one with `mlfactor release BENTO_TAG`"
        raise NotFoundError(
            f"release {ref!r} does not exist.{did_you_mean(ref, ids)} Newest releases: {shown}. "
            "`mlfactor releases` lists them all."
        )
    apps = sorted({r.app for r in releases})
    if app is None:
        if len(apps) > 1:
            raise ValidationError(
                "release", [f"{ref!r} is ambiguous: there are releases of {', '.join(apps)}; pass --app NAME"]
            )
        app = apps[0] if apps else ""
    if app not in apps:
        raise NotFoundError(
            f"no releases of {app or 'any application'}.{did_you_mean(app, apps)} "
            "Build and release one: `mlfactor build`, then `mlfactor release BENTO_TAG`."
        )
    found = next((r for r in releases if r.app == app and r.status == ref), None)
    if found is None:
        raise NotFoundError(f"{app} has only one release, so there is no 'previous' one to roll back to.")
    return found


def get_release(client: MlflowClient, settings: Settings, ref: str, app: str | None = None) -> Release:
    """Look ``ref`` up in the release records of the tracking store (see :func:`pick_release`)."""
    return pick_release(list_releases(client, settings), ref, app)
