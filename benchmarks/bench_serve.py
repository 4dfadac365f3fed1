"""`make bench-serve`: mlfactor's service against `mlflow models serve` and a minimal BentoML service.

One after the other on this machine, with the same registered model (an iris
LogisticRegression in a fresh sqlite store), each server is started, timed to
its first successful prediction (cold start), measured idle (RSS of its whole
process tree), then driven with wrk through the same ``/invocations``
``dataframe_split`` payloads (1 and 100 rows) at concurrency 1, 8 and 32;
loaded RSS is taken right after the heaviest run. Prints a table, the ratios
of mlfactor to each anchor and whether the issue's targets are met, and writes
the figures as JSON (``--out``).

Usage: python benchmarks/bench_serve.py [--duration 10] [--targets mlflow,minimal,mlfactor] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
BIN = Path(sys.executable).parent
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CONCURRENCY = (1, 8, 32)
ROW_COUNTS = (1, 100)
TARGETS = {
    "throughput_c32_vs_mlflow": 2.0,  # at least
    "p99_c32_vs_mlflow": 0.5,  # at most
    "cold_start_vs_mlflow": 0.6,  # at most
    "idle_rss_vs_mlflow": 1.0,  # at most
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def register_model(env: dict[str, str]) -> str:
    """Register the iris model as iris-classifier@champion in the store ``env`` names; return the version."""
    code = (
        "import mlflow\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from mlfactor.modeling import log_sklearn_model\n"
        "from mlfactor.registry import set_alias\n"
        "from mlfactor.settings import load_settings\n"
        "from mlfactor.tracking import connect, ensure_experiment\n"
        "s = load_settings(); c = connect(s); e = ensure_experiment(c, 'bench', s)\n"
        "f = load_iris(as_frame=True).frame; X = f.drop(columns=['target']); X.columns = "
        f"{FEATURES!r}\n"
        "m = LogisticRegression(max_iter=500).fit(X, f['target'])\n"
        "with mlflow.start_run(experiment_id=e):\n"
        "    logged = log_sklearn_model(m, X, registered_name='iris-classifier', client=c)\n"
        "set_alias(c, 'iris-classifier', 'champion', logged.version); print(logged.version)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def payload(rows: int) -> bytes:
    from sklearn.datasets import load_iris

    data = load_iris().data.tolist()
    body = {"dataframe_split": {"columns": FEATURES, "data": [data[i % len(data)] for i in range(rows)]}}
    return json.dumps(body).encode()


def post(port: int, body: bytes, timeout: float = 5) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def tree_rss_mib(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return round(total / 2**20, 1)


def command(target: str, port: int, env: dict[str, str]) -> tuple[list[str], dict[str, str], Path]:
    uri = "models:/iris-classifier@champion"
    if target == "mlflow":
        return (
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                uri,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env,
            PROJECT,
        )
    if target == "minimal":
        return (
            [
                str(BIN / "bentoml"),
                "serve",
                "minimal_bento:Minimal",
                "--working-dir",
                str(HERE),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            {**env, "MLFACTOR_MODEL_URI": uri},
            HERE,
        )
    workers = "2" if target == "mlfactor-2w" else "1"
    return [str(BIN / "mlfactor"), "serve"], {**env, "PORT": str(port), "MLFACTOR_WORKERS": workers}, PROJECT


def parse_wrk(text: str) -> dict[str, float]:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": ms(p50.group(1)) if p50 else 0.0,
        "p99_ms": ms(p99.group(1)) if p99 else 0.0,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
    }  # type: ignore[dict-item]


def run_wrk(port: int, lua: Path, concurrency: int, duration: float) -> dict[str, float]:
    threads = min(2, concurrency)
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-s",
            str(lua),
            f"http://127.0.0.1:{port}/invocations",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_wrk(done.stdout)


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def bench_target(
    target: str,
    env: dict[str, str],
    bodies: dict[int, bytes],
    luas: dict[int, Path],
    duration: float,
    logs: Path,
) -> dict[str, Any]:
    port = free_port()
    argv, full_env, cwd = command(target, port, env)
    log = logs / f"{target}.log"
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        cold = None
        first: Any = None
        while time.monotonic() - started < 180:
            if process.poll() is not None:
                raise RuntimeError(f"{target} exited {process.returncode}; see {log}")
            try:
                status, first = post(port, bodies[1], timeout=2)
                if status == 200:
                    cold = time.monotonic() - started
                    break
            except OSError:
                pass
            time.sleep(0.05)
        if cold is None:
            raise RuntimeError(f"{target} did not answer within 180 s; see {log}")
        time.sleep(3)
        idle = tree_rss_mib(process.pid)
        runs: dict[str, Any] = {}
        for rows in ROW_COUNTS:
            for concurrency in CONCURRENCY:
                run_wrk(port, luas[rows], concurrency, 2)  # warm-up
                runs[f"{rows}row_c{concurrency}"] = run_wrk(port, luas[rows], concurrency, duration)
                print(
                    f"  {target:12} {rows:>3}-row c={concurrency:<2} {runs[f'{rows}row_c{concurrency}']}",
                    flush=True,
                )
        loaded = tree_rss_mib(process.pid)
        return {
            "cold_start_s": round(cold, 2),
            "idle_rss_mib": idle,
            "loaded_rss_mib": loaded,
            "runs": runs,
            "first_answer": first,
        }
    finally:
        stop(process)


def print_report(results: dict[str, Any]) -> dict[str, Any]:
    names = list(results["targets"])
    print("\n| target | cold start s | idle RSS MiB | loaded RSS MiB |")
    print("|---|---|---|---|")
    for name in names:
        r = results["targets"][name]
        print(f"| {name} | {r['cold_start_s']} | {r['idle_rss_mib']} | {r['loaded_rss_mib']} |")
    print("\n| run | " + " | ".join(f"{n} rps / p50 / p99 ms" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for rows in ROW_COUNTS:
        for c in CONCURRENCY:
            key = f"{rows}row_c{c}"
            cells = []
            for name in names:
                run = results["targets"][name]["runs"][key]
                err = f" ({run['non_2xx']} non-2xx)" if run["non_2xx"] else ""
                cells.append(f"{run['rps']:.0f} / {run['p50_ms']:.1f} / {run['p99_ms']:.1f}{err}")
            print(f"| {rows} row, c={c} | " + " | ".join(cells) + " |")
    ratios: dict[str, Any] = {}
    ours = results["targets"].get("mlfactor")
    if ours:
        for anchor in ("mlflow", "minimal"):
            base = results["targets"].get(anchor)
            if not base:
                continue
            r: dict[str, float] = {}
            for rows in ROW_COUNTS:
                key = f"{rows}row_c32"
                r[f"throughput_{rows}row_c32"] = round(ours["runs"][key]["rps"] / base["runs"][key]["rps"], 2)
                r[f"p99_{rows}row_c32"] = round(ours["runs"][key]["p99_ms"] / base["runs"][key]["p99_ms"], 2)
            r["cold_start"] = round(ours["cold_start_s"] / base["cold_start_s"], 2)
            r["idle_rss"] = round(ours["idle_rss_mib"] / base["idle_rss_mib"], 2)
            ratios[anchor] = r
            print(f"\nmlfactor / {anchor}: " + ", ".join(f"{k} {v}x" for k, v in r.items()))
        if "mlflow" in ratios:
            m = ratios["mlflow"]
            checks = {
                "throughput at c=32 >= 2.0x mlflow (1 row)": m["throughput_1row_c32"]
                >= TARGETS["throughput_c32_vs_mlflow"],
                "throughput at c=32 >= 2.0x mlflow (100 rows)": m["throughput_100row_c32"]
                >= TARGETS["throughput_c32_vs_mlflow"],
                "p99 at c=32 <= 0.5x mlflow (1 row)": m["p99_1row_c32"] <= TARGETS["p99_c32_vs_mlflow"],
                "p99 at c=32 <= 0.5x mlflow (100 rows)": m["p99_100row_c32"] <= TARGETS["p99_c32_vs_mlflow"],
                "cold start <= 0.6x mlflow": m["cold_start"] <= TARGETS["cold_start_vs_mlflow"],
                "idle RSS <= mlflow": m["idle_rss"] <= TARGETS["idle_rss_vs_mlflow"],
            }
            print("\ntargets:")
            for label, ok in checks.items():
                print(f"  [{'met' if ok else 'MISSED'}] {label}")
            ratios["targets_met"] = checks
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    parser.add_argument(
        "--targets",
        default="mlflow,minimal,mlfactor",
        help="comma-separated: mlflow, minimal, mlfactor, mlfactor-2w",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: `sudo apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`.",
            file=sys.stderr,
        )
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFACTOR_", "MLFLOW_", "BENTOML_"))}
    env.update(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "MLFACTOR_ARTIFACT_ROOT": str(work / "artifacts"),
            "MLFACTOR_PROJECT_DIR": str(PROJECT),
            "MLFACTOR_LOG_FORMAT": "json",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "BENTOML_DO_NOT_TRACK": "true",
            "BENTOML_HOME": str(work / "bentoml"),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow models serve runs `uvicorn`
        }
    )
    version = register_model(env)
    bodies = {rows: payload(rows) for rows in ROW_COUNTS}
    luas = {}
    for rows, body in bodies.items():
        (work / f"{rows}.json").write_bytes(body)
        lua = work / f"{rows}.lua"
        lua.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'local f = io.open("{work / f"{rows}.json"}", "rb")\nwrk.body = f:read("*a")\nf:close()\n',
            encoding="utf-8",
        )
        luas[rows] = lua
    machine = {
        "cpus": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "model_version": version,
        "duration_s": args.duration,
        "targets": {},
    }
    print(
        f"bench-serve: model iris-classifier v{version}, wrk {args.duration:g} s per run, machine {machine}",
        flush=True,
    )
    for target in [t.strip() for t in args.targets.split(",") if t.strip()]:
        print(f"starting {target} ...", flush=True)
        results["targets"][target] = bench_target(target, env, bodies, luas, args.duration, work)
    answers = {json.dumps(r["first_answer"]) for r in results["targets"].values()}
    results["same_answer_everywhere"] = len(answers) == 1
    results["ratios"] = print_report(results)
    print(f"\nsame first answer from every target: {results['same_answer_everywhere']}; logs in {work}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
