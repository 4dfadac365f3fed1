"""Wall time of the demo pipeline: `mlfactor run` vs plain `papermill` CLI calls vs a plain Python script.

    make bench-pipeline            (or: .venv/bin/python benchmarks/bench_pipeline.py --repeat 5)

All three variants execute the same two notebooks' code (01-train then 02-evaluate) against the same
temporary sqlite store, each repetition running the variants in turn so load drifts hit them alike:

* mlfactor   one `mlfactor run pipelines/train.yaml` process (checks, parent/child MLflow runs,
             lineage, HTML rendering and artifact logging included);
* papermill  `papermill notebooks/01-train.ipynb ...` then `papermill notebooks/02-evaluate.ipynb ...`;
* script     the notebooks' code cells as two .py files run by `python` (no kernel at all).

Prints the median wall time of each, the ratios and mlfactor's overhead per step (target:
mlfactor <= 1.10 x papermill), and the median CPU seconds of each variant with its children (the
kernels included), which other load on a shared machine distorts much less than wall time. The
last line is the same figures as JSON.
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
import time
from pathlib import Path

from mlfactor.settings import sandbox_environment

PROJECT_DIR = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NOTEBOOKS = [PROJECT_DIR / "notebooks" / "01-train.ipynb", PROJECT_DIR / "notebooks" / "02-evaluate.ipynb"]
TARGET = 1.10


def environment(folder: Path) -> dict[str, str]:
    """Return a clean environment pointing at a store inside ``folder``."""
    return {**sandbox_environment(folder, PROJECT_DIR, os.environ), "MPLBACKEND": "Agg"}


CPU: list[float] = []  # CPU seconds (user + system) of each timed process and its children


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Run ``argv``; return its wall time and record its CPU time (fails loudly on a non-zero exit)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed


def write_scripts(folder: Path) -> list[Path]:
    """Write the notebooks' code cells (parameters first) as plain Python files."""
    scripts = []
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        path = folder / f"{notebook.stem}.py"
        path.write_text(code + "\n")
        scripts.append(path)
    return scripts


def run_mlfactor(env: dict[str, str], out: Path) -> float:
    """One `mlfactor run` of the demo pipeline."""
    return timed(
        [str(BIN / "mlfactor"), "run", "pipelines/train.yaml", "--no-progress", "--output-dir", str(out)],
        env,
        PROJECT_DIR,
    )


def run_papermill(env: dict[str, str], out: Path) -> float:
    """Run the two notebooks through the papermill CLI, one after the other."""
    out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for notebook in NOTEBOOKS:
        total += timed(
            [
                str(BIN / "papermill"),
                str(notebook),
                str(out / notebook.name),
                "-k",
                "python3",
                "--no-progress-bar",
                "--cwd",
                str(notebook.parent),
            ],
            env,
            PROJECT_DIR,
        )
    return total


def run_script(env: dict[str, str], scripts: list[Path]) -> float:
    """Run the two notebooks' code as plain Python processes."""
    return sum(timed([sys.executable, str(script)], env, PROJECT_DIR / "notebooks") for script in scripts)


def main() -> None:
    """Measure, then print medians, ratios and per-step overhead."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of each variant (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlfactor-bench-") as tmp:
        folder = Path(tmp)
        env = environment(folder)
        scripts = write_scripts(folder)
        print("warm-up (creates the store, fills OS caches) ...", flush=True)
        run_script(env, scripts)
        times: dict[str, list[float]] = {"mlfactor": [], "papermill": [], "script": []}
        cpu: dict[str, list[float]] = {"mlfactor": [], "papermill": [], "script": []}
        runs = {
            "mlfactor": lambda i: run_mlfactor(env, folder / f"out-m{i}"),
            "papermill": lambda i: run_papermill(env, folder / f"out-p{i}"),
            "script": lambda i: run_script(env, scripts),
        }
        for i in range(args.repeat):
            for name, run in runs.items():
                CPU.clear()
                times[name].append(run(i))
                cpu[name].append(sum(CPU))
            print(
                f"repetition {i + 1}/{args.repeat}: "
                + "  ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                flush=True,
            )
    median = {k: statistics.median(v) for k, v in times.items()}
    cpu_median = {k: statistics.median(v) for k, v in cpu.items()}
    steps = len(NOTEBOOKS)
    ratio = median["mlfactor"] / median["papermill"]
    figures = {
        "repeat": args.repeat,
        "median_s": {k: round(v, 3) for k, v in median.items()},
        "mlfactor_vs_papermill": round(ratio, 3),
        "papermill_vs_script": round(median["papermill"] / median["script"], 3),
        "mlfactor_vs_script": round(median["mlfactor"] / median["script"], 3),
        "overhead_per_step_s": {
            "mlfactor_over_papermill": round((median["mlfactor"] - median["papermill"]) / steps, 3),
            "papermill_over_script": round((median["papermill"] - median["script"]) / steps, 3),
        },
        "cpu_median_s": {k: round(v, 3) for k, v in cpu_median.items()},
        "cpu_mlfactor_vs_papermill": round(cpu_median["mlfactor"] / cpu_median["papermill"], 3),
        "target": TARGET,
        "within_target": ratio <= TARGET,
    }
    print()
    print(f"{'variant':<10} {'median':>9}   runs")
    for name, values in times.items():
        print(f"{name:<10} {median[name]:>8.2f}s   " + " ".join(f"{v:.2f}" for v in values))
    print()
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"mlfactor / papermill = {ratio:.3f}  (target <= {TARGET:.2f}: {verdict})")
    print(f"papermill / script   = {figures['papermill_vs_script']:.3f}")
    print(
        "CPU seconds (less sensitive to other load on the machine): "
        + "  ".join(f"{k} {v:.2f}" for k, v in cpu_median.items())
        + f"  mlfactor / papermill = {figures['cpu_mlfactor_vs_papermill']:.3f}"
    )
    print(f"mlfactor / script    = {figures['mlfactor_vs_script']:.3f}")
    per_step = figures["overhead_per_step_s"]
    print(
        f"overhead per step: mlfactor over papermill {per_step['mlfactor_over_papermill']:+.2f}s, "
        f"papermill over script {per_step['papermill_over_script']:+.2f}s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
