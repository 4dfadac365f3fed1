"""The registry-wide alias lock on a real sqlite store."""

from __future__ import annotations

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


def test_a_stale_lock_is_broken(tmp_path: Path) -> None:
    """A lock left by a dead process is broken once older than stale_after."""
    client = connect(load_settings(store_environment(tmp_path)))
    client.create_registered_model(lock_name("m", "champion"))  # a holder that died
    time.sleep(1.2)
    with alias_lock(client, "m", "champion", timeout=10, stale_after=1.0):
        entered = True
    assert entered
