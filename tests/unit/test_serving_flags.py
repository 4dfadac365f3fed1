"""Runtime flags through OpenFeature over a file: edits apply, a broken file keeps the last good flags."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from mlfactor.serving.flags import Flags, read_flags_file


def _write(path: Path, data: object, *, bump: int = 0) -> None:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + bump))


def test_without_a_file_flags_come_from_settings() -> None:
    """With no flags file the settings' values are used."""
    flags = Flags(None, shadow=True, log_predictions=False, variant_weights="")
    assert flags.shadow() is True
    assert flags.log_predictions() is False


def test_editing_the_file_changes_the_flags(tmp_path: Path) -> None:
    """A changed flags file is seen on the next evaluation after the poll interval."""
    path = tmp_path / "flags.json"
    _write(path, {"shadow": False, "log_predictions": True})
    flags = Flags(path, shadow=True, log_predictions=False, variant_weights="")
    assert flags.provider is not None
    flags.provider.poll_interval = 0
    assert (flags.shadow(), flags.log_predictions()) == (False, True)
    _write(path, {"shadow": True, "variant_weights": "a=1,b=1"}, bump=2)
    assert (flags.shadow(), flags.log_predictions(), flags.variant_weights()) == (True, False, "a=1,b=1")


def test_a_broken_file_keeps_the_last_good_flags(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Invalid JSON logs flags_file_invalid and the previous values stay in force."""
    path = tmp_path / "flags.json"
    _write(path, {"log_predictions": True})
    flags = Flags(path, shadow=False, log_predictions=False, variant_weights="")
    assert flags.provider is not None
    flags.provider.poll_interval = 0
    with caplog.at_level(logging.ERROR):
        _write(path, "{not json", bump=2)
        assert flags.log_predictions() is True
    assert any(r.getMessage() == "flags_file_invalid" for r in caplog.records)


def test_a_flag_of_the_wrong_type_falls_back_to_the_default(tmp_path: Path) -> None:
    """A string where a boolean is expected gives the configured default, not a crash."""
    path = tmp_path / "flags.json"
    _write(path, {"shadow": "yes"})
    flags = Flags(path, shadow=False, log_predictions=False, variant_weights="")
    assert flags.shadow() is False


def test_yaml_flags_files_are_read(tmp_path: Path) -> None:
    """A .yaml flags file is parsed as YAML."""
    path = tmp_path / "flags.yaml"
    path.write_text("shadow: true\nvariant_weights: a=1\n", encoding="utf-8")
    assert read_flags_file(path) == {"shadow": True, "variant_weights": "a=1"}
