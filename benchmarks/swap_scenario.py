"""The swap scenario of `make bench-serve`: load at concurrency 16 while the alias moves twice.

``mlfactor serve`` follows ``iris-classifier@champion`` (``MLFACTOR_FOLLOW_INTERVAL``,
default 2 s) with a webhook secret set. Sixteen keep-alive clients post
``/predict`` without pause and record every answer. The alias then moves
twice: first to the candidate version with nothing but polling to notice it,
then back with a signed MLflow webhook delivery right after the move (signed
by MLflow's own signing function, as an ``mlflow server`` would send it).
Printed: failed requests (goal 0), answers whose body and
``x-mlfactor-model-version`` header disagree or name an unknown version
(goal 0), and seconds from each move to the first answer from the new
version (goals: interval + 2 s by polling, under 2 s by webhook).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

CLIENTS = 16
SECRET = "bench-webhook-secret"  # noqa: S105 - the benchmark's throwaway webhook secret
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@dataclass
class Answers:
    """Every answer the clients saw: (monotonic time, status, body version, header version)."""

    seen: list[tuple[float, int, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first_from(self, version: str, after: float) -> float | None:
        """Monotonic time of the first answer from ``version`` after ``after``."""
        with self.lock:
            found = (t for t, code, body, _ in self.seen if t >= after and code == 200 and body == version)
            return next(found, None)


def _client(port: int, answers: Answers, stop: threading.Event) -> None:
    body = json.dumps({"records": [ROW]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        try:
            conn.request("POST", "/predict", body, {"content-type": "application/json"})
            answer = conn.getresponse()
            data = answer.read()
            version = json.loads(data)["model"]["version"] if answer.status == 200 else ""
            header = answer.getheader("x-mlfactor-model-version", "")
            record = (time.monotonic(), answer.status, version, header)
            with answers.lock:
                answers.seen.append(record)
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            with answers.lock:
                answers.errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()


def _deliver_webhook(port: int, name: str, alias: str, version: str) -> int:
    """POST a signed ``model_version_alias.created`` delivery, as MLflow 3 sends it."""
    from mlflow.webhooks.delivery import _generate_hmac_signature

    payload = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": {"name": name, "alias": alias, "version": version},
        }
    )
    delivery_id, stamp = f"bench-{time.time_ns()}", str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "x-mlflow-delivery-id": delivery_id,
        "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": _generate_hmac_signature(SECRET, delivery_id, stamp, payload),
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/hooks/mlflow", payload, headers)
    status = conn.getresponse().status
    conn.close()
    return status


def _wait_for(answers: Answers, version: str, after: float, limit: float) -> float | None:
    deadline = after + limit
    while time.monotonic() < deadline:
        first = answers.first_from(version, after)
        if first is not None:
            return round(first - after, 2)
        time.sleep(0.05)  # the clients record answers as they come; nothing else to wait on
    return None


def run_swap(port: int, env: dict[str, str], versions: tuple[str, str], interval: float) -> dict[str, Any]:
    """Drive the started service through both moves; return the figures (and print them)."""
    from mlfactor.registry import set_alias
    from mlfactor.settings import load_settings
    from mlfactor.tracking import connect

    old, new = versions
    client = connect(load_settings(env))
    answers, stop = Answers(), threading.Event()
    threads = [threading.Thread(target=_client, args=(port, answers, stop)) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(2)  # steady load before the first move
    set_alias(client, "iris-classifier", "champion", new)
    moved = time.monotonic()
    by_polling = _wait_for(answers, new, moved, interval + 30)
    time.sleep(2)
    set_alias(client, "iris-classifier", "champion", old)
    moved_back = time.monotonic()
    hook_status = _deliver_webhook(port, "iris-classifier", "champion", old)
    by_webhook = _wait_for(answers, old, moved_back, interval + 30)
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    with answers.lock:
        failed = sum(1 for _, status, _, _ in answers.seen if status != 200) + len(answers.errors)
        mixed = sum(1 for _, s, body, head in answers.seen if s == 200 and not (body == head in versions))
        total = len(answers.seen) + len(answers.errors)
    figures = {
        "clients": CLIENTS,
        "interval_s": interval,
        "requests": total,
        "failed": failed,
        "mixed_or_unknown_version": mixed,
        "webhook_status": hook_status,
        "seconds_to_new_version_by_polling": by_polling,
        "seconds_to_new_version_by_webhook": by_webhook,
        "first_errors": answers.errors[:3],
    }
    goals = {
        "no failed request": failed == 0,
        "no mixed or unknown version": mixed == 0,
        f"polling: new version within interval + 2 s ({interval + 2:g} s)": by_polling is not None
        and by_polling <= interval + 2,
        "webhook: new version within 2 s": by_webhook is not None and by_webhook < 2,
    }
    print(f"\nswap scenario ({CLIENTS} clients, MLFACTOR_FOLLOW_INTERVAL={interval:g}): {figures}")
    for label, ok in goals.items():
        print(f"  [{'met' if ok else 'MISSED'}] {label}")
    figures["goals_met"] = goals
    return figures
