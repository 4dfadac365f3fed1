"""CPU seconds of the everyday commands, beside `python -c pass` (the interpreter's own start).

    make bench-cli            (or: .venv/bin/python benchmarks/bench_cli.py --repeat 5)

Each command runs ``--repeat`` times as a fresh process against a throwaway store (nothing
reaches the user's own); the figure is the median CPU time (user + system) of the process,
which other load on a shared machine distorts much less than wall time. Goals: ``mlfactor
--help`` under 0.3 CPU s and ``mlfactor validate pipelines/train.yaml`` under 1 CPU s. The
last line is the same figures as JSON; the exit code is 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mlfactor.settings import sandbox_environment

PROJECT_DIR = Path(__file__).resolve().parents[1]
MLFACTOR = [sys.executable, "-m", "mlfactor"]
COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "mlfactor --help": [*MLFACTOR, "--help"],
    "mlfactor config": [*MLFACTOR, "config"],
    "mlfactor validate pipelines/train.yaml": [*MLFACTOR, "validate", "pipelines/train.yaml"],
    "mlfactor run --help": [*MLFACTOR, "run", "--help"],
    "mlfactor serve --help": [*MLFACTOR, "serve", "--help"],
}
GOALS = {"mlfactor --help": 0.3, "mlfactor validate pipelines/train.yaml": 1.0}


def cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    """Run ``argv`` to completion; return its CPU seconds (fails loudly on a non-zero exit)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> int:
    """Measure every command, print a table and the JSON figures; exit 1 when a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (the median is shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlfactor-bench-cli-") as folder:
        env = sandbox_environment(Path(folder), PROJECT_DIR, os.environ)
        cpu_seconds(COMMANDS["mlfactor --help"], env)  # warm the file cache and bytecode once
        figures = {
            name: statistics.median(cpu_seconds(argv, env) for _ in range(args.repeat))
            for name, argv in COMMANDS.items()
        }
    missed = [name for name, goal in GOALS.items() if figures[name] >= goal]
    width = max(len(name) for name in figures)
    print(f"{'command':<{width}}  CPU s  goal")
    for name, seconds in figures.items():
        goal = GOALS.get(name)
        verdict = "" if goal is None else f"< {goal:g}  {'missed' if name in missed else 'met'}"
        print(f"{name:<{width}}  {seconds:5.2f}  {verdict}")
    print(json.dumps({"cpu_seconds": {k: round(v, 3) for k, v in figures.items()}, "missed": missed}))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
