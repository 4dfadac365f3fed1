"""BentoML entry module: ``bentoml serve service:MlfactorService`` (named in bentofile.yaml).

Inside a built Bento the package sits in ``src/`` next to this file; put it on
the import path when it is not installed.
"""

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parent / "src"
if (_SRC / "mlfactor").is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from mlfactor.serving.service import MlfactorService  # noqa: E402

__all__ = ["MlfactorService"]
