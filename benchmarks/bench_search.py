"""bench-search: docs-search served by `mlfactor serve`, with and without micro-batching.

Trains docs-search once on a temporary store (`mlfactor run pipelines/search.yaml`), registers
the same model a second time with batching off (``max_batch_size`` 1, alias ``unbatched``), then
for each: cold start (launch to first answer), and p50/p99 latency and throughput of one-query
/predict requests at concurrency 1 and 16 (keep-alive client threads, the labelled questions in
turn). Quality: recall@5 and MRR of the service over HTTP beside an exact brute-force search
over the same stored passage embeddings with torch's query embeddings, the physical limit (the
service searches exactly too, so any gap is the ONNX encoder's).

    make bench-search                       # or: .venv/bin/python benchmarks/bench_search.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench_serve import free_port, stop, tree_rss_mib

from mlfactor.settings import sandbox_environment

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
BIN = Path(sys.executable).parent
MODEL = "docs-search"


def train(env: dict[str, str], work: Path) -> dict[str, Any]:
    """Run the search pipeline once; return its summary line."""
    done = subprocess.run(
        [
            str(BIN / "mlfactor"),
            "run",
            str(PROJECT / "pipelines" / "search.yaml"),
            "--output-dir",
            str(work / "out"),
        ],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the search pipeline failed ({done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def register_unbatched(env: dict[str, str]) -> str:
    """Register docs-search v1's artifacts again with batching off, as alias ``unbatched``."""
    code = (
        "import mlflow\n"
        "from pathlib import Path\n"
        "from urllib.parse import urlparse\n"
        "from mlfactor.registry import set_alias\n"
        "from mlfactor.search.logging_model import log_search_model\n"
        "from mlfactor.settings import load_settings\n"
        "from mlfactor.tracking import connect, ensure_experiment\n"
        "s = load_settings(); c = connect(s); e = ensure_experiment(c, 'bench', s)\n"
        f"folder = Path(urlparse(c.get_model_version_download_uri({MODEL!r}, '1')).path) / 'artifacts'\n"
        "names = {'encoder': 'encoder.onnx', 'tokenizer': 'tokenizer.json', 'passages': 'passages.json',"
        " 'embeddings': 'embeddings.npy'}\n"
        "with mlflow.start_run(experiment_id=e):\n"
        f"    logged = log_search_model({{k: str(folder / v) for k, v in names.items()}}, "
        f"registered_name={MODEL!r}, client=c, max_batch_size=1)\n"
        f"set_alias(c, {MODEL!r}, 'unbatched', logged.version); print(logged.version)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def post(port: int, records: list[dict[str, Any]], conn: http.client.HTTPConnection | None = None) -> Any:
    """POST /predict; return the parsed answer (raises on a non-200)."""
    own = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    own.request("POST", "/predict", json.dumps({"records": records}), {"Content-Type": "application/json"})
    answer = own.getresponse()
    body = answer.read()
    if conn is None:
        own.close()
    if answer.status != 200:
        raise RuntimeError(f"/predict answered {answer.status}: {body[:300]!r}")
    return json.loads(body)


def start(env: dict[str, str], alias: str, logs: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    """Start `mlfactor serve` on ``alias``; return it, its port and the seconds to its first answer."""
    port = free_port()
    full = {**env, "PORT": str(port), "MLFACTOR_MODEL_NAME": MODEL, "MLFACTOR_MODEL_ALIAS": alias}
    began = time.monotonic()
    with (logs / f"{alias}.log").open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "mlfactor"), "serve"],
            env=full,
            cwd=PROJECT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    while time.monotonic() - began < 300:
        if process.poll() is not None:
            raise RuntimeError(f"mlfactor serve exited {process.returncode}; see {logs / f'{alias}.log'}")
        try:
            post(port, [{"query": "how do I roll back"}])
            return process, port, round(time.monotonic() - began, 2)
        except (OSError, RuntimeError):
            time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"mlfactor serve ({alias}) did not answer within 300 s")


def load(port: int, questions: list[str], concurrency: int, seconds: float) -> dict[str, float]:
    """``concurrency`` keep-alive clients posting one question each, for ``seconds``; latency figures."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = offset
        mine: list[float] = []
        while time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                post(port, [{"query": questions[i % len(questions)]}], conn)
                mine.append(time.perf_counter() - began)
            except (OSError, RuntimeError, http.client.HTTPException):
                with lock:
                    errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            i += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else 0.0,
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else 0.0,
        "requests": len(latencies),
        "errors": errors[0],
    }


def quality(port: int, env: dict[str, str]) -> dict[str, Any]:
    """recall@5 and MRR over HTTP beside the exact search with torch query embeddings."""
    from mlflow.tracking import MlflowClient

    from mlfactor.search.corpus import Passage
    from mlfactor.search.evaluate import MRR_DEPTH, answerable, load_queries, score_rankings
    from mlfactor.search.export import load_reference_encoder
    from mlfactor.search.index import PassageIndex

    uri = env["MLFLOW_TRACKING_URI"]
    folder = (
        Path(urlparse(MlflowClient(uri, uri).get_model_version_download_uri(MODEL, "1")).path) / "artifacts"
    )
    import numpy as np

    passages = [Passage.from_dict(p) for p in json.loads((folder / "passages.json").read_text())]
    index = PassageIndex(passages, np.load(folder / "embeddings.npy"))
    queries = answerable(load_queries(), passages)
    served = post(port, [{"query": q.query, "k": MRR_DEPTH} for q in queries])["predictions"]
    service = score_rankings(queries, [[Passage.from_dict(h) for h in row["results"]] for row in served])
    reference = load_reference_encoder().encode([q.query for q in queries])
    exact = index.search(reference.vectors, [MRR_DEPTH] * len(queries))
    limit = score_rankings(queries, [[passages[h.index] for h in row] for row in exact])
    return {
        "queries": len(queries),
        "passages": len(passages),
        "service": {
            "recall_at_5": round(service.recall_at_k, 3),
            "mrr": round(service.mrr, 3),
            "top1": round(service.top1, 3),
        },
        "exact_torch": {
            "recall_at_5": round(limit.recall_at_k, 3),
            "mrr": round(limit.mrr, 3),
            "top1": round(limit.top1, 3),
        },
    }


def main() -> int:
    """Run the benchmark, print the figures and write them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load run (default 5)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        work = Path(tmp)
        env = sandbox_environment(work, PROJECT, dict(os.environ))
        env.update(
            {
                "MLFACTOR_LOG_FORMAT": "json",
                "BENTOML_DO_NOT_TRACK": "true",
                "MLFLOW_DISABLE_TELEMETRY": "true",
            }
        )
        began = time.monotonic()
        summary = train(env, work)
        train_s = round(time.monotonic() - began, 1)
        register_unbatched(env)
        from mlfactor.search.evaluate import load_queries

        questions = [q.query for q in load_queries()]
        results: dict[str, Any] = {}
        figures_quality: dict[str, Any] = {}
        for alias, label in (("champion", "batched"), ("unbatched", "unbatched")):
            process, port, cold = start(env, alias, work)
            try:
                row: dict[str, Any] = {"cold_start_s": cold, "idle_rss_mib": tree_rss_mib(process.pid)}
                for concurrency in (1, 16):
                    load(port, questions, concurrency, 1.0)  # warm-up
                    row[f"c{concurrency}"] = load(port, questions, concurrency, args.duration)
                if alias == "champion":
                    figures_quality = quality(port, env)
                results[label] = row
            finally:
                stop(process)
    report = {
        "benchmark": "bench-search",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "train_s": train_s,
        "passages": summary["outputs"]["embed"]["passages"],
        "serving": results,
        "quality": figures_quality,
    }
    print(
        f"bench-search: docs-search ({report['passages']} passages), "
        f"trained in {train_s} s, {report['machine']}"
    )
    print(
        f"{'':12}{'cold start':>11}{'c=1 p50':>9}{'p99':>8}{'req/s':>8}{'c=16 p50':>10}{'p99':>8}{'req/s':>8}"
    )
    for label, row in results.items():
        one, many = row["c1"], row["c16"]
        print(
            f"{label:12}{row['cold_start_s']:>10.2f}s{one['p50_ms']:>7.1f}ms{one['p99_ms']:>6.1f}ms{one['rps']:>8.1f}"
            f"{many['p50_ms']:>8.1f}ms{many['p99_ms']:>6.1f}ms{many['rps']:>8.1f}"
        )
    if "batched" in results and "unbatched" in results:
        ratio = results["batched"]["c16"]["rps"] / max(results["unbatched"]["c16"]["rps"], 0.1)
        print(f"batching at c=16: {ratio:.2f}x the throughput")
        report["batching_speedup_c16"] = round(ratio, 2)
    q = figures_quality
    print(
        f"quality on {q['queries']} labelled questions: recall@5 {q['service']['recall_at_5']:.3f}, MRR "
        f"{q['service']['mrr']:.3f} (service, ONNX) vs {q['exact_torch']['recall_at_5']:.3f} / "
        f"{q['exact_torch']['mrr']:.3f} (exact brute-force search, torch embeddings: the limit)"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
