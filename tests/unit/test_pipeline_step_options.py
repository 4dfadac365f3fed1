"""`mlfactor run`'s step-by-step options: combinations that cannot mean anything are usage errors (exit 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mlfactor.cli.main import cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step", "train"], "--step and --finish-run need --pipeline-run-id"),
        (["--finish-run"], "--step and --finish-run need --pipeline-run-id"),
        (["--open-run", "--step", "train"], "are separate processes: give one"),
        (["--open-run", "--pipeline-run-id", "abc"], "it takes no --pipeline-run-id"),
        (["--step", "a", "--pipeline-run-id", "x", "-p", "C=1"], "-p and --run-id-file go with --open-run"),
        (["--open-run", "--sweep", "train.C=1,2"], "--sweep needs --sweep-index"),
        (["--pipeline-run-id", "abc"], "go with --open-run, --step or --finish-run"),
    ],
    ids=["step-without-id", "finish-without-id", "open-and-step", "open-with-id", "step-with-p",
         "open-sweep-without-index", "id-alone"],
)  # fmt: skip
def test_meaningless_combinations_exit_2_and_say_why(args: list[str], message: str) -> None:
    """Each refused combination exits 2 with a message naming the options, before anything runs."""
    result = CliRunner().invoke(cli, ["run", "pipelines/train.yaml", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
