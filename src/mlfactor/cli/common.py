"""What every command shares: settings, logging set-up and error-to-exit-code mapping."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from mlfactor.errors import ConfigError, ExitCode, MlfactorError
from mlfactor.log import configure_logging, get_logger, log_error
from mlfactor.masking import secret_values
from mlfactor.settings import Settings, load_settings

logger = get_logger("mlfactor.cli")


def start() -> Settings:
    """Load settings and configure logging for a command; the one start-up path of the CLI."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, secrets=secret_values(settings.environ))
    return settings


def run_cli(group: click.Group, argv: Sequence[str] | None = None) -> int:
    """Invoke ``group``; turn MlfactorError into its exit code and a message, never a traceback.

    A tracking store lost after the command connected (MLflow's own transport
    errors) is reported as BackingServiceError, exit 69.
    """
    try:
        result = group.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return int(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        error = exc if isinstance(exc, MlfactorError) else _lost_store(exc)
        if error is None:
            raise
        report_error(error)
        return int(error.exit_code)
    return int(result) if isinstance(result, int) else 0


def _lost_store(exc: Exception) -> MlfactorError | None:
    """Return BackingServiceError (69) when the tracking store stopped answering mid-command."""
    if "mlflow" not in sys.modules:
        return None
    from mlfactor.tracking import lost_store_error

    return lost_store_error(exc)


def report_error(exc: MlfactorError) -> None:
    """Print the message on stderr and log one ``error`` event on stdout."""
    import logging

    if not logging.getLogger().handlers or isinstance(exc, ConfigError):
        configure_logging()
    log_error(logger, exc, int(exc.exit_code))
