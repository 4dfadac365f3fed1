"""The ``mlfactor`` command line: thin click commands over the library.

Commands live in one module each and are imported only when invoked, so
``mlfactor --help`` stays fast. Errors become exit codes in :mod:`mlfactor.cli.common`.
"""

from __future__ import annotations

from mlfactor.cli.main import cli, main

__all__ = ["cli", "main"]
