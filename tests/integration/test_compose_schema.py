"""docker-compose.yml against the Compose specification, checked by check-jsonschema in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """Validate ``path`` with check-jsonschema's vendored Compose specification schema."""
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_follows_the_compose_specification() -> None:
    """check-jsonschema accepts docker-compose.yml against the vendored compose-spec schema."""
    done = validate(COMPOSE_FILE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("original", "broken"),
    [
        ("    restart: unless-stopped\n", "    restart: unless-stopped\n    restat: always\n"),
        ("        condition: service_healthy\n", "        condition: when-it-feels-like-it\n"),
    ],
    ids=["misspelt-key", "bad-depends-on-condition"],
)
def test_a_broken_compose_file_is_rejected(tmp_path: Path, original: str, broken: str) -> None:
    """The same validation fails on a copy with one mistake, so the check above can fail."""
    text = COMPOSE_FILE.read_text()
    assert original in text
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(text.replace(original, broken, 1))
    done = validate(copy)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "validation error" in (done.stdout + done.stderr).lower()
