"""Alias moves on a real sqlite registry: promote, idempotence, rollback, history across processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import register_demo_model, store_environment
from mlflow.tracking import MlflowClient

from mlfactor.aliases import alias_history, promote_model, rollback_model
from mlfactor.errors import NotFoundError, ValidationError
from mlfactor.registry import alias_version, register_version
from mlfactor.tracking import connect

MLFACTOR = str(Path(sys.executable).with_name("mlfactor"))


@dataclass
class Store:
    """A module-wide registry with one trained model whose artifacts new versions reuse."""

    env: dict[str, str]
    client: MlflowClient
    source: str
    run_id: str
    db: Path

    def new_model(self, name: str, versions: int = 3) -> str:
        """Register ``versions`` READY versions of a fresh model ``name`` (no alias set)."""
        for _ in range(versions):
            register_version(self.client, self.source, name, run_id=self.run_id)
        return name


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Give this module a registry of its own, so moving aliases never disturbs other tests."""
    folder = tmp_path_factory.mktemp("lifecycle")
    demo = register_demo_model(store_environment(folder), name="lifecycle-base")
    client = connect(demo.settings)
    source = client.get_model_version(demo.name, demo.version).source
    yield Store(demo.env, client, source, demo.run_id, folder / "mlflow.db")


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLFACTOR, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_promote_moves_the_alias_and_records_who_why_and_run(store: Store) -> None:
    """A promotion moves the alias and the registry records from, to, when, who, reason and pipeline run."""
    name = store.new_model("promote-basic")
    first = promote_model(store.client, name, "1", reason="first model", pipeline_run_id="run-1", who="ana")
    second = promote_model(store.client, name, "2", reason="better f1")
    assert alias_version(store.client, name, "champion") == "2"
    assert (first.from_version, first.to_version, first.seq) == (None, "1", 1)
    assert (second.from_version, second.to_version, second.seq) == ("1", "2", 2)
    history = alias_history(store.client, name)
    assert [(m.seq, m.to_version, m.reason) for m in history] == [
        (2, "2", "better f1"),
        (1, "1", "first model"),
    ]
    oldest = history[-1]
    assert (oldest.who, oldest.pipeline_run_id, oldest.kind) == ("ana", "run-1", "promote")
    assert history[0].who  # defaults to user@host
    assert history[0].when >= oldest.when


def test_promoting_the_current_version_records_nothing(store: Store) -> None:
    """Promoting the version the alias already points at changes nothing and says so."""
    name = store.new_model("promote-twice")
    promote_model(store.client, name, "2")
    again = promote_model(store.client, name, "2", reason="again")
    assert again.changed is False
    assert len(alias_history(store.client, name)) == 1


def test_promote_refuses_missing_model_version_and_typo_alias(store: Store) -> None:
    """Missing models and versions, a non-READY version and a typo alias are refused before anything moves."""
    name = store.new_model("promote-refusals")
    with pytest.raises(NotFoundError, match="Did you mean 'promote-refusals'"):
        promote_model(store.client, "promote-refusal", "1")
    with pytest.raises(NotFoundError, match=r"no version 7; it has versions \[1, 2, 3\]"):
        promote_model(store.client, name, "7")
    with sqlite3.connect(store.db) as db:
        db.execute(
            "UPDATE model_versions SET status='PENDING_REGISTRATION' WHERE name=? AND version=3", (name,)
        )
    with pytest.raises(ValidationError, match="PENDING_REGISTRATION, not READY"):
        promote_model(store.client, name, "3")
    with pytest.raises(ValidationError, match="Did you mean 'champion'"):
        promote_model(store.client, name, "1", alias="champoin")
    assert alias_history(store.client, name) == []
    assert store.client.get_registered_model(name).aliases == {}
    made = promote_model(store.client, name, "1", alias="champoin", allow_new_alias=True)
    assert made.alias == "champoin"


def test_rollback_walks_back_through_promotions(store: Store) -> None:
    """Rollback returns to the previous version, then one further, then says nothing is left."""
    name = store.new_model("rollback-walk")
    for version in ("1", "2", "3"):
        promote_model(store.client, name, version)
    back = rollback_model(store.client, name, reason="bad latency")
    assert (back.from_version, back.to_version, back.kind, back.reason) == (
        "3",
        "2",
        "rollback",
        "bad latency",
    )
    assert alias_version(store.client, name, "champion") == "2"
    rollback_model(store.client, name)
    assert alias_version(store.client, name, "champion") == "1"
    with pytest.raises(NotFoundError, match="did not exist before version 1 was promoted"):
        rollback_model(store.client, name)
    assert alias_version(store.client, name, "champion") == "1"
    assert [m.kind for m in alias_history(store.client, name, "champion")] == [
        "rollback",
        "rollback",
        "promote",
        "promote",
        "promote",
    ]


def test_rollback_without_history_says_what_to_do(store: Store) -> None:
    """Rollback of an alias set outside mlfactor (no recorded move) tells the user to promote explicitly."""
    name = store.new_model("rollback-none")
    store.client.set_registered_model_alias(name, "champion", "2")
    with pytest.raises(NotFoundError, match=f"mlfactor promote {name} VERSION --alias champion"):
        rollback_model(store.client, name)
    with pytest.raises(NotFoundError, match="Did you mean 'champion'"):
        rollback_model(store.client, name, alias="champio")


_WORKER = """
import json, sys, time
from mlfactor.settings import load_settings
from mlfactor.tracking import connect
from mlfactor.aliases import promote_model
client = connect(load_settings())
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
changed = 0
for version in sys.argv[1].split(","):
    changed += promote_model(client, "concurrent", version, alias="champion").changed
print(json.dumps({"changed": changed}))
"""


def test_concurrent_promotions_from_processes_are_all_recorded(store: Store) -> None:
    """Three processes promoting at the same moment lose no move, and every process reads the same history."""
    store.new_model("concurrent")
    start = time.time() + 8  # after every worker has imported mlflow
    plans = ["1,2,3,1", "2,3,1,2", "3,1,2,3"]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, plan, str(start)],
            env=store.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for plan in plans
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    changed = sum(json.loads(out.strip().splitlines()[-1])["changed"] for out, _ in outputs)
    history = alias_history(store.client, "concurrent")
    assert len(history) == changed
    assert [m.seq for m in history] == list(range(changed, 0, -1))
    listed = _run(store.env, "history", "concurrent")
    assert listed.returncode == 0, listed.stderr
    assert [m["move_id"] for m in json.loads(listed.stdout.strip().splitlines()[-1])] == [
        m.move_id for m in history
    ]


def test_cli_promote_rollback_and_errors(store: Store) -> None:
    """The CLI promotes (seen by this process), refuses a typo with exit 66 and a hint; rollback exits 66."""
    name = store.new_model("cli-model")
    unmoved = store.new_model("cli-unmoved", versions=1)
    store.client.set_registered_model_alias(unmoved, "champion", "1")  # set outside mlfactor: no history
    commands = [
        ["promote", name, "2", "--reason", "from the cli", "--pipeline-run-id", "abc123"],
        ["promote", "cli-modle", "1"],
        ["rollback", unmoved],
    ]
    procs = [
        subprocess.Popen(
            [MLFACTOR, *args], env=store.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in commands
    ]
    (promoted_out, promoted_err), (_, typo_err), (_, rollback_err) = (
        p.communicate(timeout=120) for p in procs
    )
    assert procs[0].returncode == 0, promoted_err
    result = json.loads(promoted_out.strip().splitlines()[-1])
    assert (result["to_version"], result["reason"], result["pipeline_run_id"]) == (
        "2",
        "from the cli",
        "abc123",
    )
    assert procs[1].returncode == 66
    assert "Did you mean 'cli-model'?" in typo_err
    assert "Traceback" not in typo_err
    history = alias_history(store.client, name)
    assert [(m.to_version, m.reason) for m in history] == [("2", "from the cli")]
    assert procs[2].returncode == 66
    assert f"mlfactor promote {unmoved} VERSION --alias champion" in rollback_err
