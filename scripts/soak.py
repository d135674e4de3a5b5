"""``make soak``: the local stack under mixed load, with faults injected.

A separate process drives 32 concurrent clients (create, get, list, wait,
cancel, delete) for SOAK_SECONDS (default 200) while this one, on a schedule,
pauses the Firestore emulator for 10 s, pauses the Pub/Sub emulator for 10 s,
and kills the worker with SIGKILL and restarts it. Then it waits for every
operation to settle (the sweep recovers what the faults left), runs the
invariant checker, counts lost operations, writes ``bench/soak.json`` and
prints it. It exits 1 on any 5xx outside the injected outages, any invariant
violation or any lost operation.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lib.tools import devtoken  # noqa: E402
from lib.tools.localstack import (  # noqa: E402
    Emulators,
    Functions,
    Process,
    create_push_subscription,
    free_port,
    publish_tick,
    stack_env,
)

CLIENTS = 32
GRACE = 15.0  # seconds after an outage ends during which 5xx still count as its effect
PARENT = "projects/soak/locations/us"


def load(url: str, token: str, seconds: float, seed: int, out: Any) -> None:
    """The load process: CLIENTS threads of mixed requests, bounded in time."""
    import requests

    deadline = time.time() + seconds
    created: list[str] = []
    deleted: set[str] = set()
    lock = threading.Lock()
    records: list[tuple[float, float, str, int]] = []

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        while time.time() < deadline:
            with lock:
                known = list(created[-200:])
            action = rng.choices(["create", "get", "list", "wait", "cancel", "delete"],
                                 [1, 6, 2, 1, 2, 1])[0]
            if not known and action != "create":
                action = "create"
            name = rng.choice(known) if known else ""
            start = time.time()
            try:
                if action == "create":
                    params = {"steps": rng.randint(1, 5), "stepSeconds": rng.choice([0, 0.2, 1])}
                    response = session.post(f"{url}/v1/{PARENT}/jobs", timeout=60,
                                            json={"kind": "demo.countdown", "params": params})
                    if response.status_code == 200:
                        with lock:
                            created.append(response.json()["name"])
                elif action == "get":
                    response = session.get(f"{url}/v1/{name}", timeout=60)
                elif action == "list":
                    response = session.get(f"{url}/v1/{PARENT}/operations", timeout=60,
                                           params={"pageSize": 20, "filter": "done = true"})
                elif action == "wait":
                    response = session.post(f"{url}/v1/{name}:wait", json={"timeout": "1s"},
                                            timeout=60)
                elif action == "cancel":
                    response = session.post(f"{url}/v1/{name}:cancel", timeout=60)
                else:
                    response = session.delete(f"{url}/v1/{name}", timeout=60)
                    if response.status_code == 200:
                        with lock:
                            deleted.add(name)
                status = response.status_code
            except requests.RequestException:
                status = 0  # no answer at all: counted apart from statuses
            with lock:
                records.append((start, time.time(), action, status))

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    out.put({"records": records, "created": created, "deleted": sorted(deleted)})


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "200"))
    log_dir = REPO / ".dev" / "soak"
    dev_dir = log_dir / "dev"
    devtoken.ensure_dev_key(dev_dir)
    emulators = Emulators("demo-soak", free_port(), free_port(), log_dir)
    topic, http_port, worker_port, sweep_port = "jobs", free_port(), free_port(), free_port()
    collection = f"soak-{int(time.time())}"
    env = stack_env(os.environ, emulators, topic, {
        "AUTH_ISSUERS": devtoken.issuers_env(dev_dir), "OPERATIONS_COLLECTION": collection,
        "LEASE_SECONDS": "10", "HEARTBEAT_SECONDS": "2", "SWEEP_QUEUED_AFTER_SECONDS": "20",
        "WAIT_MAX_SECONDS": "5", "LOG_LEVEL": "WARNING", "MAX_ATTEMPTS": "5"})
    # One local worker process stands for an autoscaled fleet: give it the
    # threads to keep up with the load (functions-framework's default is 8).
    functions = Functions(env, http_port, worker_port, log_dir, sweep_port=sweep_port,
                          worker_env={"THREADS": "32"})
    faults: list[dict[str, Any]] = []
    print(f"soak: {seconds:.0f} s of load at {CLIENTS} clients; logs in {log_dir}", flush=True)
    emulators.start()
    try:
        project = emulators.project
        create_push_subscription(
            emulators, topic, f"http://127.0.0.1:{worker_port}/projects/{project}/topics/{topic}")
        create_push_subscription(
            emulators, "sweep",
            f"http://127.0.0.1:{sweep_port}/projects/{project}/topics/sweep")
        functions.start()
        url = f"http://127.0.0.1:{http_port}"
        token = devtoken.mint(dev_dir=dev_dir, ttl=3600)
        results: Any = multiprocessing.Queue()
        loader = multiprocessing.Process(target=load, args=(url, token, seconds, 7, results))
        started = time.time()
        loader.start()
        stop_ticks = threading.Event()
        ticker = threading.Thread(target=_tick, args=(emulators, stop_ticks), daemon=True)
        ticker.start()
        schedule = [(0.15, "firestore paused", lambda: _pause(emulators.processes[0], 10)),
                    (0.45, "pubsub paused", lambda: _pause(emulators.processes[1], 10)),
                    (0.75, "worker killed", lambda: _kill_and_restart(functions))]
        for at, what, inject in schedule:
            time.sleep(max(0.0, started + at * seconds - time.time()))
            begin = time.time()
            print(f"soak: t={begin - started:5.1f}s {what}", flush=True)
            inject()
            faults.append({"fault": what, "start": begin, "end": time.time()})
        outcome = results.get(timeout=seconds + 300)
        loader.join()
        print("soak: load done; waiting for every operation to settle", flush=True)
        lost, unsettled = _settle(emulators, collection, outcome, timeout=240)
        stop_ticks.set()
        summary = _summary(outcome, faults, started, lost, unsettled,
                           _invariants(emulators, collection), seconds)
    finally:
        functions.stop()
        emulators.stop()
    path = REPO / "bench" / "soak.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    ok = not (summary["5xx_outside_outages"] or summary["invariant_violations"]
              or summary["operations_lost"] or summary["operations_unsettled"]
              or summary["no_answer_outside_outages"])
    print(f"soak: {'PASS' if ok else 'FAIL'} (written to {path})")
    return 0 if ok else 1


def _pause(process: Process, seconds: float) -> None:
    process.pause()
    try:
        time.sleep(seconds)
    finally:
        process.resume()


def _kill_and_restart(functions: Functions) -> None:
    worker = functions.processes[1]
    assert worker.popen is not None
    os.killpg(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait()
    worker.popen = None
    time.sleep(2)
    worker.start()
    worker.wait_ready(f"http://127.0.0.1:{worker.port}/", 60)


def _tick(emulators: Emulators, stop: threading.Event) -> None:
    """Cloud Scheduler's part: a sweep tick every 10 s."""
    while not stop.wait(10):
        with contextlib.suppress(OSError):  # Pub/Sub paused: the next tick will do
            publish_tick(emulators, "sweep")


def _client(emulators: Emulators) -> Any:
    os.environ.update(emulators.env())
    from google.cloud import firestore

    return firestore.Client(project=emulators.project)


def _settle(emulators: Emulators, collection: str, outcome: dict[str, Any],
            timeout: float) -> tuple[list[str], list[tuple[str, str]]]:
    """Waits until every created, undeleted operation is done; returns the ones
    missing (lost) and the ones still not done at the timeout."""
    from lib.core import model
    client = _client(emulators)
    expected = set(outcome["created"]) - set(outcome["deleted"])
    deadline = time.time() + timeout
    while True:
        docs = {d.id: d.to_dict() for d in client.collection(collection).stream()}
        missing = [n for n in expected if model.document_id(n) not in docs]
        pending = [(n, docs[model.document_id(n)]["state"]) for n in expected
                   if model.document_id(n) in docs and not docs[model.document_id(n)]["done"]]
        if not pending or time.time() > deadline:
            return sorted(missing), sorted(pending)
        time.sleep(2)


def _invariants(emulators: Emulators, collection: str) -> list[dict[str, Any]]:
    from datetime import timedelta

    from lib.tools.invariants import check_collection

    report = check_collection(_client(emulators), collection, datetime.now(UTC),
                              timedelta(seconds=30))
    return [v if isinstance(v, dict) else v.__dict__ for v in report.violations]


def _summary(outcome: dict[str, Any], faults: list[dict[str, Any]], started: float,
             lost: list[str], unsettled: list[tuple[str, str]],
             violations: list[dict[str, Any]],
             seconds: float) -> dict[str, Any]:
    def in_outage(start: float, end: float) -> bool:
        return any(start <= f["end"] + GRACE and end >= f["start"] for f in faults)

    records = outcome["records"]
    statuses = Counter(str(status) for _, _, _, status in records)
    by_action = Counter(action for _, _, action, _ in records)
    server_errors = [r for r in records if r[3] >= 500]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": seconds,
        "clients": CLIENTS,
        "requests": len(records),
        "requests_per_second": round(len(records) / seconds, 1),
        "by_action": dict(by_action),
        "status_counts": dict(sorted(statuses.items())),
        "faults_injected": [{"fault": f["fault"], "at_s": round(f["start"] - started, 1),
                             "lasted_s": round(f["end"] - f["start"], 1)} for f in faults],
        "5xx_inside_outages": sum(1 for r in server_errors if in_outage(r[0], r[1])),
        "5xx_outside_outages": sum(1 for r in server_errors if not in_outage(r[0], r[1])),
        "5xx_outside_outages_detail": [
            {"at_s": round(r[0] - started, 1), "took_s": round(r[1] - r[0], 1),
             "action": r[2], "status": r[3]}
            for r in server_errors if not in_outage(r[0], r[1])][:20],
        "no_answer_outside_outages": sum(1 for r in records
                                         if r[3] == 0 and not in_outage(r[0], r[1])),
        "operations_created": len(outcome["created"]),
        "operations_deleted": len(outcome["deleted"]),
        "operations_lost": len(lost),
        "operations_unsettled": len(unsettled),
        "unsettled_by_state": dict(Counter(state for _, state in unsettled)),
        "invariant_violations": len(violations),
        "violations": violations[:20],
        "lost": lost[:20],
        "unsettled": [name for name, _ in unsettled[:20]],
    }


if __name__ == "__main__":
    sys.exit(main())
