"""`make bench-batch`: peak memory of `mlfactor admin batch-score` against the size of the file it scores.

Registers an iris LogisticRegression in a fresh sqlite store, generates CSV
files of growing size (iris-like rows plus an id column), and scores each in a
fresh process that reports its own peak RSS (``ru_maxrss``). A baseline process
loads the model and scores one row. Bounded memory means the peak stays flat while the file
grows: the table prints peak RSS, peak above the baseline, and the ratio of
file size to that growth. Figures are also written as JSON (``--out``).

Usage: python benchmarks/bench_batch.py [--sizes-mb 10,40,160] [--chunk-rows 20000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from mlfactor.settings import sandbox_environment

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

REGISTER = """
import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from mlfactor.modeling import log_sklearn_model
from mlfactor.registry import set_alias
from mlfactor.settings import load_settings
from mlfactor.tracking import connect, ensure_experiment
settings = load_settings()
client = connect(settings)
frame = load_iris(as_frame=True).frame
x = frame.drop(columns=["target"])
x.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in x.columns]
with mlflow.start_run(experiment_id=ensure_experiment(client, "bench", settings)):
    logged = log_sklearn_model(LogisticRegression(max_iter=500).fit(x, frame["target"]), x,
                               registered_name="iris-classifier", client=client)
set_alias(client, "iris-classifier", "champion", logged.version)
"""

SCORE = """
import json, resource, sys, time
from pathlib import Path
from mlfactor.settings import load_settings
started = time.perf_counter()
settings = load_settings()
from mlfactor.admin.batch_score import batch_score
rows = batch_score(settings, Path(sys.argv[1]), Path(sys.argv[2]), chunk_rows=int(sys.argv[3])).rows
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
seconds = round(time.perf_counter() - started, 2)
print(json.dumps({"rows": rows, "peak_rss_mb": round(peak_mb, 1), "seconds": seconds}))
"""


def environment(folder: Path) -> dict[str, str]:
    """Environment of a fresh sqlite store inside ``folder``, telemetry off."""
    return {**sandbox_environment(folder, PROJECT, os.environ), "MLFACTOR_LOG_LEVEL": "WARNING"}


def write_csv(path: Path, size_mb: int, seed: int = 0) -> int:
    """Write iris-like rows until the file holds ``size_mb`` MiB; return the row count."""
    rng = np.random.default_rng(seed)
    target = size_mb * 1024 * 1024
    rows = 0
    block = 50_000
    with pacsv.CSVWriter(
        str(path), pa.schema([("id", pa.int64()), *((f, pa.float64()) for f in FEATURES)])
    ) as out:
        while path.stat().st_size < target if path.exists() else True:
            data = {"id": np.arange(rows, rows + block)}
            for feature, (low, high) in zip(
                FEATURES, [(4.3, 7.9), (2.0, 4.4), (1.0, 6.9), (0.1, 2.5)], strict=True
            ):
                data[feature] = np.round(rng.uniform(low, high, block), 1)
            out.write_table(pa.table(data))
            rows += block
    return rows


def run_json(code: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``code`` in a fresh Python and return the JSON object it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Measure, print the table and write the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="10,40,160", help="CSV sizes to score, in MiB")
    parser.add_argument("--chunk-rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_batch.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes_mb.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp)
        env = environment(folder)
        run_json(REGISTER + "print('{}')\n", [], env)
        tiny = folder / "tiny.csv"
        pacsv.write_csv(pa.table({"id": [0], **{f: [1.0] for f in FEATURES}}), str(tiny))
        baseline = run_json(SCORE, [str(tiny), str(folder / "tiny-out.csv"), str(args.chunk_rows)], env)
        results = []
        for size in sizes:
            source, target = folder / f"in-{size}.csv", folder / f"out-{size}.csv"
            rows = write_csv(source, size)
            measured = run_json(SCORE, [str(source), str(target), str(args.chunk_rows)], env)
            assert measured["rows"] == rows, (measured, rows)
            file_mb = source.stat().st_size / 2**20
            results.append(
                {
                    "file_mb": round(file_mb, 1),
                    "output_mb": round(target.stat().st_size / 2**20, 1),
                    **measured,
                    "above_baseline_mb": round(measured["peak_rss_mb"] - baseline["peak_rss_mb"], 1),
                    "rows_per_s": round(rows / max(measured["seconds"], 1e-9)),
                }
            )
            source.unlink()
            target.unlink()
    print(f"baseline (model loaded, one row scored): peak RSS {baseline['peak_rss_mb']} MiB")
    print(
        f"{'file MiB':>9} {'rows':>10} {'peak RSS MiB':>13} {'above base':>11} {'seconds':>8} {'rows/s':>9}"
    )
    for r in results:
        print(
            f"{r['file_mb']:>9} {r['rows']:>10} {r['peak_rss_mb']:>13} {r['above_baseline_mb']:>11} "
            f"{r['seconds']:>8} {r['rows_per_s']:>9}"
        )
    if len(results) >= 2:
        first, last, before = results[0], results[-1], results[-2]
        print(
            f"file grew x{last['file_mb'] / first['file_mb']:.1f}; peak RSS grew x"
            f"{last['peak_rss_mb'] / first['peak_rss_mb']:.2f} "
            f"({last['peak_rss_mb'] - first['peak_rss_mb']:+.1f} MiB)"
        )
        print(
            f"two largest files: file x{last['file_mb'] / before['file_mb']:.1f}, peak RSS "
            f"{last['peak_rss_mb'] - before['peak_rss_mb']:+.1f} MiB (bounded memory: flat once warmed up)"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "when": datetime.now(tz=UTC).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "chunk_rows": args.chunk_rows,
                "baseline": baseline,
                "results": results,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
