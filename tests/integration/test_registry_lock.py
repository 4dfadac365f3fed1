"""The registry-wide alias lock on a real sqlite store."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from conftest import store_environment

from mlfactor.errors import LockTimeoutError
from mlfactor.registry_lock import alias_lock, lock_name
from mlfactor.settings import load_settings
from mlfactor.tracking import connect


def test_lock_excludes_a_second_holder_until_released(tmp_path: Path) -> None:
    """While one block holds model@alias, another waits; it enters only after the first leaves."""
    client = connect(load_settings(store_environment(tmp_path)))
    order: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with alias_lock(client, "m", "champion"):
            inside.set()
            time.sleep(1.0)
            order.append("first-leaves")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(10)
    with alias_lock(client, "m", "champion", timeout=30):
        order.append("second-enters")
    thread.join()
    assert order == ["first-leaves", "second-enters"]
    assert client.search_registered_models(filter_string=f"name='{lock_name('m', 'champion')}'") == []


def test_a_held_lock_times_out_with_a_clear_error(tmp_path: Path) -> None:
    """A lock held longer than the timeout gives LockTimeoutError (exit 75) naming the lock."""
    client = connect(load_settings(store_environment(tmp_path)))
    with alias_lock(client, "m", "champion"), pytest.raises(LockTimeoutError) as caught:  # noqa: SIM117
        with alias_lock(client, "m", "champion", timeout=0.5):
            pass
    assert caught.value.exit_code == 75
    assert "mlfactor-lock.m.champion" in str(caught.value)


def test_a_stale_lock_is_broken(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A lock left by a dead holder and older than stale_after is deleted, then taken by the new holder."""
    client = connect(load_settings(store_environment(tmp_path)))
    name = lock_name("m", "champion")
    left = client.create_registered_model(name)  # a holder that died without releasing
    caplog.set_level(logging.INFO, logger="mlfactor.registry_lock")
    with alias_lock(client, "m", "champion", timeout=10, stale_after=0.0):
        held = client.get_registered_model(name)
        assert held.creation_timestamp >= left.creation_timestamp
        assert held.tags.get("mlfactor.lock") == "true"  # ours: the dead holder's lock had no tags
    broken = [r for r in caplog.records if r.getMessage() == "registry_lock_broken"]
    assert len(broken) == 1
    assert client.search_registered_models(filter_string=f"name='{name}'") == []


def test_a_fresh_lock_of_another_holder_is_not_broken(tmp_path: Path) -> None:
    """A held lock younger than stale_after is left alone: the second holder times out instead."""
    client = connect(load_settings(store_environment(tmp_path)))
    name = lock_name("m", "champion")
    client.create_registered_model(name)
    with pytest.raises(LockTimeoutError):  # noqa: SIM117
        with alias_lock(client, "m", "champion", timeout=0.3, stale_after=3600.0):
            pass
    assert client.get_registered_model(name).tags == {}
