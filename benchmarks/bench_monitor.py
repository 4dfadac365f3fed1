"""`make bench-monitor`: throughput and statistical behaviour of `monitor drift` and `experiment report`.

1. Events per second (CPU time, one core) of the drift check and of the
   experiment join, on JSON-lines files like the service writes.
2. 1 000 A/A experiments read daily for 30 days: false-positive rate of the
   always-valid mSPRT interval beside a naive daily z-test at the same level.
3. Power for a 5-point accuracy lift (0.80 -> 0.85) at 10 000 events per arm,
   read once at the end and read daily on the way there.
4. Drift: per daily batch of live events, a shift of one feature starting on
   a known day; detection delay (days) and false-alarm rate before the shift.

Evidently and gbstats are not dependencies; when one happens to be installed
its verdict on the same drift data is printed beside ours.

Usage: python benchmarks/bench_monitor.py [--events 200000] [--experiments 1000] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlfactor.monitoring.drift import check_drift
from mlfactor.monitoring.events import EventLine, read_events
from mlfactor.monitoring.experiment import analyse_experiment
from mlfactor.monitoring.profile import profile_frame
from mlfactor.monitoring.sequential import Moments, compare_means, naive_z_test

ALPHA = 0.05
COLOURS = ["red", "green", "blue"]


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1.0, n),
            "b": rng.normal(5.0, 2.0, n),
            "c": rng.exponential(1.0, n),
            "d": rng.uniform(0, 10, n),
            "colour": rng.choice(COLOURS, n, p=[0.5, 0.3, 0.2]),
        }
    )


def throughput(events: int, folder: Path) -> dict[str, float]:
    """CPU events per second of the drift check and of the experiment report, read from files."""
    rng = np.random.default_rng(0)
    profile = profile_frame(_frame(rng, 10_000))
    frame = _frame(rng, events).round(4)
    drift_file = folder / "drift.jsonl"
    with drift_file.open("w") as out:
        for i, row in enumerate(frame.to_dict("records")):
            event = {"schema_version": 1, "event": "prediction", "timestamp": "2026-12-02T06:00:00.000+00:00",
                     "request_id": f"r{i}", "model_name": "m", "model_version": "1", "variant": "champion",
                     "inputs": [row], "outputs": [1], "latency_ms": 1.2}  # fmt: skip
            out.write(json.dumps(event) + "\n")
    started = time.process_time()
    check_drift(read_events([str(drift_file)]), profile=profile)
    drift_rate = events / (time.process_time() - started)
    ab_file = folder / "ab.jsonl"
    with ab_file.open("w") as out:
        for i in range(events // 2):
            variant = "champion" if i % 2 else "challenger"
            out.write(json.dumps({"schema_version": 1, "event": "prediction", "request_id": f"r{i}",
                                  "variant": variant, "model_name": "m", "model_version": "1",
                                  "outputs": [1]}) + "\n")  # fmt: skip
            out.write(json.dumps({"schema_version": 1, "event": "feedback", "request_id": f"r{i}",
                                  "label": int(rng.random() < 0.8)}) + "\n")  # fmt: skip
    started = time.process_time()
    analyse_experiment(read_events([str(ab_file)]), weights=(("champion", 50), ("challenger", 50)))
    ab_rate = (events // 2 * 2) / (time.process_time() - started)
    return {"drift_events_per_s": drift_rate, "experiment_events_per_s": ab_rate}


def _moments(successes: np.ndarray, n: int) -> list[Moments]:
    p = successes / n
    return [Moments(n, float(x), float(x * (1 - x))) for x in p]


def sequential(experiments: int, days: int = 30, per_day: int = 334) -> dict[str, float]:
    """A/A false positives with daily peeks (ours vs naive) and power for a 5-point lift."""
    rng = np.random.default_rng(1)
    results: dict[str, float] = {}
    for name, lift in (("aa", 0.0), ("lift", 0.05)):
        a = rng.binomial(per_day, 0.80, size=(experiments, days)).cumsum(axis=1)
        b = rng.binomial(per_day, 0.80 + lift, size=(experiments, days)).cumsum(axis=1)
        ours = naive = final = 0
        for e in range(experiments):
            hit_ours = hit_naive = False
            for d in range(days):
                n = per_day * (d + 1)
                (x,), (y,) = _moments(a[e, d : d + 1], n), _moments(b[e, d : d + 1], n)
                hit_ours = hit_ours or compare_means(x, y, alpha=ALPHA).significant
                hit_naive = hit_naive or naive_z_test(x, y) < ALPHA
            final += compare_means(x, y, alpha=ALPHA).significant
            ours += hit_ours
            naive += hit_naive
        results[f"{name}_msprt_daily"] = ours / experiments
        results[f"{name}_naive_daily"] = naive / experiments
        results[f"{name}_msprt_final"] = final / experiments
    results["events_per_arm"] = per_day * days
    return results


def drift_delay(streams: int, days: int = 15, shift_day: int = 5, per_day: int = 500) -> dict[str, Any]:
    """Per shift size: mean detection delay in days and the false-alarm rate before the shift."""
    rng = np.random.default_rng(2)
    out: dict[str, Any] = {}
    for shift in (0.1, 0.25, 1.0):
        delays, alarms, quiet_days = [], 0, 0
        for _ in range(streams):
            profile = profile_frame(_frame(rng, 5000))
            found = None
            for day in range(days):
                batch = _frame(rng, per_day, shift if day >= shift_day else 0.0)
                events = [EventLine("sim", i, {"event": "prediction", "inputs": [row]})
                          for i, row in enumerate(batch.to_dict("records"))]  # fmt: skip
                drifted = check_drift(events, profile=profile, alpha=ALPHA).drift
                if day < shift_day:
                    quiet_days += 1
                    alarms += drifted
                elif drifted and found is None:
                    found = day - shift_day
            delays.append(found if found is not None else math.inf)
        detected = [d for d in delays if math.isfinite(d)]
        out[f"shift_{shift}_sigma"] = {
            "detected": len(detected) / streams,
            "mean_delay_days": float(np.mean(detected)) if detected else None,
            "false_alarm_rate": alarms / quiet_days,
        }
    out["events_per_day"] = per_day
    return out


def others() -> dict[str, str]:
    """Whether Evidently / gbstats are importable here (verdicts printed only then)."""
    return {
        name: ("installed: compare by hand" if importlib.util.find_spec(name) else "not installed (skipped)")
        for name in ("evidently", "gbstats")
    }


def main() -> None:
    """Run every part and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        speed = throughput(args.events, Path(folder))
    print(f"drift check:       {speed['drift_events_per_s']:,.0f} events/s = "
          f"{speed['drift_events_per_s'] * 60 / 1e6:.2f} M/min (CPU, one core)")  # fmt: skip
    print(f"experiment report: {speed['experiment_events_per_s']:,.0f} events/s = "
          f"{speed['experiment_events_per_s'] * 60 / 1e6:.2f} M/min")  # fmt: skip
    seq = sequential(args.experiments)
    print(f"A/A, {args.experiments} experiments peeked daily for 30 days: false-positive rate "
          f"mSPRT {seq['aa_msprt_daily']:.1%} vs naive z-test {seq['aa_naive_daily']:.1%} "
          f"(level {ALPHA:.0%})")  # fmt: skip
    print(f"power, 0.80 -> 0.85 at {seq['events_per_arm']:,} per arm: mSPRT {seq['lift_msprt_final']:.1%} "
          f"(read at the end), {seq['lift_msprt_daily']:.1%} (read daily)")  # fmt: skip
    drift = drift_delay(args.streams)
    for key, value in drift.items():
        if isinstance(value, dict):
            delay = "-" if value["mean_delay_days"] is None else f"{value['mean_delay_days']:.2f}"
            print(f"drift {key} ({drift['events_per_day']} events/day): "
                  f"detected {value['detected']:.0%}, mean delay {delay} days, "
                  f"false alarms {value['false_alarm_rate']:.1%} of quiet days")  # fmt: skip
    for name, status in others().items():
        print(f"{name}: {status}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
                  "python": platform.python_version(), "throughput": speed, "sequential": seq,
                  "drift": drift}  # fmt: skip
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
