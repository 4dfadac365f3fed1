"""``mlfactor build``, ``release`` and ``releases``: the build and release stages (factor V)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from mlfactor.cli.common import start
from mlfactor.cli.output import emit_json, short_time, show_listing
from mlfactor.errors import ExitCode, exit_codes_help

E = ExitCode
BUILD_EXIT_CODES = exit_codes_help(
    E.OK,
    E.USAGE,
    E.INVALID_INPUT,
    E.NOT_FOUND,
    E.SERVICE_UNAVAILABLE,
    E.INTERNAL,
    E.CONFIG,
    said={
        E.INVALID_INPUT: "invalid bentofile or version not READY",
        E.NOT_FOUND: "no such model, version or file",
        E.INTERNAL: "`bentoml build` failed",
    },
)
RELEASE_EXIT_CODES = exit_codes_help(
    E.OK,
    E.USAGE,
    E.NOT_FOUND,
    E.SERVICE_UNAVAILABLE,
    E.CONFIG,
    said={E.NOT_FOUND: "no such Bento or env file", E.CONFIG: "invalid configuration (or --env-file)"},
)
RELEASES_EXIT_CODES = exit_codes_help(E.OK, E.USAGE, E.SERVICE_UNAVAILABLE, E.CONFIG)


@click.command("build", epilog=BUILD_EXIT_CODES)
@click.option("--model-uri", default=None, help="Model to pack (default: MLFACTOR_MODEL_URI or NAME@ALIAS).")
@click.option(
    "--bentofile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Bento build file (default: bentofile.yaml in the project folder).",
)
def build(model_uri: str | None, bentofile: Path | None) -> None:
    """Build a Bento carrying one concrete model version.

    Resolves the alias to a version, imports it into the BentoML model store
    (labelled with registered name, version, run id and git commit) and runs
    `bentoml build`. The Bento tag is NAME:v<version>-<inputs hash>; the same
    inputs give the same tag and the build is skipped. Prints the result as JSON.
    """
    from mlfactor.release.build import build_bento

    settings = start()
    result = build_bento(settings, model_uri, bentofile=bentofile)
    verb = "built" if result.built else "already built (same inputs)"
    click.echo(
        f"{result.bento_tag} {verb}: model {result.model_name} version {result.model_version}", err=True
    )
    emit_json(result.to_dict())


@click.command("release", epilog=RELEASE_EXIT_CODES)
@click.argument("bento_tag")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Configuration the release runs with (default: the current environment).",
)
def release(bento_tag: str, env_file: Path | None) -> None:
    """Record an immutable release: BENTO_TAG plus a configuration.

    The configuration is validated like the service reads it and hashed with
    secrets excluded; the record goes to the tracking store, so any machine
    can list it with `mlfactor releases`. Releasing the current Bento and
    configuration again records nothing new.
    """
    from mlfactor.release.records import create_release
    from mlfactor.tracking import connect

    settings = start()
    made = create_release(connect(settings), settings, bento_tag, env_file=env_file)
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in made.run_environment().items())
    source = f"the variables of {env_file} and " if env_file else ""
    state = "created" if made.created else "unchanged (same Bento and configuration as the current release)"
    click.echo(
        f"release {made.release_id} {state}: {made.bento_tag} "
        f"(model {made.model_name} v{made.model_version}).\n"
        f"Run it with {source}{env} bentoml serve {made.bento_tag}",
        err=True,
    )
    emit_json(made.to_dict())


@click.command("releases", epilog=RELEASES_EXIT_CODES)
@click.option("--app", default=None, help="Only this application (Bento name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON even on a terminal.")
def releases(app: str | None, as_json: bool) -> None:
    """List releases, newest first.

    Marks the current and previous release of each app: rolling a deployment
    back means running the previous release.
    """
    from mlfactor.release.records import list_releases
    from mlfactor.tracking import connect

    settings = start()
    found = list_releases(connect(settings), settings, app)
    header = ("release", "status", "bento", "model", "config", "created", "who")
    rows = [
        (r.release_id, r.status, r.bento_tag, f"{r.model_name} v{r.model_version}", r.config_hash[:12],
         short_time(r.created_at), r.who)
        for r in found
    ]  # fmt: skip
    show_listing(
        [r.to_dict() for r in found],
        header,
        rows,
        as_json=as_json,
        empty="no releases yet: `mlfactor build`, then `mlfactor release BENTO_TAG`",
    )
