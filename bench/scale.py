"""Scale figures: many jobs in one worker process, cancelled at once.

A worker function of its own (``operations_worker`` under the
functions-framework CLI, ``THREADS=1100``, ``CANCEL_GRACE_SECONDS=2``, the
bench's kinds loaded) on the stack's emulator and collection. The bench seeds
QUEUED ``demo.countdown`` jobs with 60 s steps and POSTs each one's Pub/Sub
push body straight to the worker over a socket of its own (held open while
the job runs, as the Pub/Sub push is), then:

- ``concurrent_jobs``: operations RUNNING at once (a Firestore query);
- ``worker_threads_per_job`` / ``worker_rss_per_job_kib``: the worker process's
  ``Threads`` and ``VmRSS`` while they run, minus its idle figures, ÷ N;
- ``concurrent_cancel_ack_p99_ms``: all of them cancelled at once over HTTP
  (16 client threads); per operation ``cancelAcknowledgeTime`` -
  ``cancelRequestTime`` from the records;
- ``cancel_ack_p50_ms`` / ``cancel_ack_p99_ms``: the same with 100 jobs (run
  first, on the fresh worker, as is the forced-end round);
- ``forced_end_overshoot_p99_ms``: 20 ``bench.stubborn`` jobs that ignore their
  cancel; ``endTime`` - ``cancelAcknowledgeTime`` - the 2 s grace;
- ``firestore_writes_per_job_hour`` (and reads): 100 waiting jobs in a
  ``lib.jobs.worker.OperationWorker`` in the bench's own process, whose store's
  ``counter`` counts every read and write over a measured window.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from google.cloud.firestore_v1.base_query import FieldFilter

from bench.floor import _argv, function_pid
from bench.measure import percentile_or_none
from bench.stack import BenchStack, job_record, rss_kib
from lib.core import model
from lib.tools.localstack import REPO, Process, free_port, start_all

GRACE_SECONDS = 2.0
CANCEL_CLIENTS = 16
WORKER_THREADS = 1100
CLAIMS_IN_FLIGHT = 20  # pushes not yet running, as Pub/Sub's push flow control
PUSH_SECONDS = 90.0  # the pushing stops here, whatever runs by then is measured
DONE_SECONDS = 90.0  # after the cancels, jobs not done by then are counted, not waited for


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Threads for {pid}")


@dataclass
class ScaleWorker:
    """The worker function, and the pushes the bench makes to it as Pub/Sub
    would: one connection per delivery, held open while the job runs, and
    delivered again (exponential backoff) when the answer is not a 2xx."""

    stack: BenchStack
    process: Process | None = None
    topic: str = "bench-scale"
    redeliveries: int = 0
    _open: dict[socket.socket, tuple[str, int, int]] = field(default_factory=dict)
    _due: list[tuple[float, str, int, int]] = field(default_factory=list)
    _selector: selectors.DefaultSelector = field(default_factory=selectors.DefaultSelector)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _pump: threading.Thread | None = None

    def start(self) -> None:
        assert self.stack.functions is not None
        port = free_port()
        env = {**self.stack.functions.env, "THREADS": str(WORKER_THREADS),
               "CANCEL_GRACE_SECONDS": str(GRACE_SECONDS),
               "OPERATIONS_KIND_MODULES": "bench.kinds"}
        self.process = Process("scale worker",
                               _argv(REPO / "main.py", "operations_worker", "cloudevent", port),
                               port, env=env, log_path=self.stack.log_dir / "scale-worker.log")
        start_all([self.process], 60)
        self._pump = threading.Thread(target=self._run_pump, name="bench pushes", daemon=True)
        self._pump.start()

    def stop(self) -> None:
        self._stop.set()
        if self._pump is not None:
            self._pump.join(10)
        with self._lock:
            for sock in list(self._open):
                sock.close()
            self._open.clear()
        if self.process is not None:
            self.process.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return function_pid(self.process)

    def outstanding(self) -> int:
        with self._lock:
            return len(self._open) + len(self._due)

    def push(self, name: str, seq: int, tries: int = 0) -> None:
        """The push Pub/Sub makes, on a connection of its own."""
        assert self.process is not None and self.stack.emulators is not None
        project = self.stack.emulators.project
        body = json.dumps({
            "message": {"data": base64.b64encode(json.dumps({"name": name}).encode()).decode(),
                        "messageId": f"scale-{seq}",
                        "publishTime": model.utcnow().isoformat().replace("+00:00", "Z")},
            "subscription": f"projects/{project}/subscriptions/{self.topic}-push"}).encode()
        head = (f"POST /projects/{project}/topics/{self.topic} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{self.process.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        sock = socket.create_connection(("127.0.0.1", self.process.port), timeout=30)
        sock.sendall(head + body)
        sock.setblocking(False)
        with self._lock:
            self._open[sock] = (name, seq, tries)
            self._selector.register(sock, selectors.EVENT_READ)

    def _run_pump(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                registered = bool(self._open)
            events = self._selector.select(0.05) if registered else []
            if not registered:
                time.sleep(0.05)
            for key, _ in events:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    head = sock.recv(64)
                except BlockingIOError:
                    continue
                except OSError:
                    head = b""
                with self._lock:
                    self._selector.unregister(sock)
                    name, seq, tries = self._open.pop(sock)
                sock.close()
                if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                    # Pub/Sub's retry policy: exponential backoff, with jitter.
                    delay = min(32.0, 0.5 * 2 ** tries) * random.uniform(0.5, 1.5)
                    with self._lock:
                        self.redeliveries += 1
                        self._due.append((time.monotonic() + delay, name, seq, tries + 1))
            now = time.monotonic()
            with self._lock:
                due = [d for d in self._due if d[0] <= now]
                self._due = [d for d in self._due if d[0] > now]
            for _, name, seq, tries in due:
                self.push(name, seq, tries)


def _names(parent: str, prefix: str, count: int) -> list[str]:
    return [f"{parent}/operations/{prefix}-{i:05d}" for i in range(count)]


def _count(stack: BenchStack, parent: str, **equal: Any) -> int:
    query = stack.client.collection(stack.collection).where(
        filter=FieldFilter("parent", "==", parent))
    for key, value in equal.items():
        query = query.where(filter=FieldFilter(key, "==", value))
    return sum(1 for _ in query.select(["state"]).stream())


def _wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)
    return time.monotonic() - started


def _seed(stack: BenchStack, names: list[str], kind: str = "demo.countdown",
          params: dict[str, Any] | None = None) -> None:
    now = model.utcnow()
    records = []
    for name in names:
        record = job_record(name, now, kind=kind)
        if params is not None:
            record["params"] = params
        records.append(record)
    stack.seed(records)


def _cancel_all(stack: BenchStack, names: list[str]) -> int:
    """Cancels ``names`` over HTTP from 16 client threads, as clients do (409,
    503 and timeouts again, with backoff); returns how many never got a 200."""
    headers = stack.auth()

    def cancel(name: str) -> bool:
        for attempt in range(6):
            try:
                response = stack.session().post(f"{stack.url}/v1/{name}:cancel",
                                                headers=headers, timeout=30)
            except requests.RequestException:
                time.sleep(0.2 * 2 ** attempt)
                continue
            if response.status_code == 200:
                return True
            if response.status_code not in (409, 503):
                raise RuntimeError(f"cancel {name}: {response.status_code} "
                                   f"{response.text[:200]}")
            time.sleep(0.2 * 2 ** attempt)
        return False

    with ThreadPoolExecutor(CANCEL_CLIENTS) as pool:
        return sum(not ok for ok in pool.map(cancel, names))


def _records(stack: BenchStack, names: list[str]) -> list[dict[str, Any]]:
    refs = [stack.ref(name) for name in names]
    found = []
    for start in range(0, len(refs), 300):
        found += [s.to_dict() or {} for s in stack.client.get_all(refs[start:start + 300])]
    return found


def _ms(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() * 1e3


def _handled(worker: ScaleWorker, parent: str) -> set[str]:
    """Operations of ``parent`` whose handler the worker started (its log)."""
    assert worker.process is not None and worker.process.log_path is not None
    marker = f"{parent}/operations/"
    found = set()
    for line in worker.process.log_path.read_text(errors="replace").splitlines():
        if '"message": "running"' in line and marker in line:
            found.add(json.loads(line)["operation"])
    return found


def _wait_running(stack: BenchStack, worker: ScaleWorker, parent: str, count: int,
                  stall: float = 20.0, timeout: float = 240.0) -> int:
    """Waits until ``count`` handlers run, or none started for ``stall`` seconds."""
    started = last_change = time.monotonic()
    seen = -1
    while True:
        running = len(_handled(worker, parent))
        if running >= count:
            return running
        now = time.monotonic()
        if running != seen:
            seen, last_change = running, now
        elif now - last_change > stall or now - started > timeout:
            return running
        time.sleep(0.25)


def _round(stack: BenchStack, worker: ScaleWorker, parent: str, count: int,
           kind: str = "demo.countdown", params: dict[str, Any] | None = None,
           on_running: Callable[[], None] | None = None,
           figures: dict[str, float | None] | None = None) -> list[dict[str, Any]]:
    """Seeds ``count`` jobs, pushes them (at most ``CLAIMS_IN_FLIGHT`` not yet
    running), waits until all run, calls ``on_running``, cancels them all at
    once, waits until they are done; returns the records of the jobs whose
    handler ran."""
    names = _names(parent, "job", count)
    _seed(stack, names, kind, params)
    pushed = 0
    started = time.monotonic()
    while pushed < count and time.monotonic() - started < PUSH_SECONDS:
        running = len(_handled(worker, parent))
        while pushed < count and pushed - running < CLAIMS_IN_FLIGHT:
            worker.push(names[pushed], pushed)
            pushed += 1
        time.sleep(0.02)
    running = _wait_running(stack, worker, parent, count, stall=10.0, timeout=30.0)
    if on_running is not None:
        on_running()
    handled = sorted(_handled(worker, parent))
    if figures is not None:
        # Claimed (RUNNING under this instance) but no handler: the claim's
        # commit landed after the client gave up on it (see BENCHMARKS.md).
        figures["claims_orphaned"] = count - running
    failed = _cancel_all(stack, handled)  # the others never ran: nothing to cancel
    if figures is not None:
        figures["cancels_unanswered"] = failed
    wanted = set(handled)
    # Measured on those that ended; the rest are counted as not done.
    with contextlib.suppress(RuntimeError):
        _wait_for(f"{len(handled)} jobs done",
                  lambda: sum(1 for r in _records(stack, handled) if r.get("done"))
                  >= len(wanted), DONE_SECONDS)
    records = [r for r in _records(stack, handled) if r.get("done")]
    if figures is not None:
        figures["jobs_not_done_after_cancel"] = len(handled) - len(records)
    codes = {int((r.get("error") or {}).get("code", -1)) for r in records}
    if codes != {1}:
        raise RuntimeError(f"{parent}: expected every job to end code 1, got {codes}")
    return records


def concurrency(stack: BenchStack, jobs: int, ack_jobs: int, stubborn: int,
                figures: dict[str, float | None], progress: Callable[[str], None]) -> None:
    worker = ScaleWorker(stack)
    worker.start()
    try:
        # Warm up: one short job builds the Firestore client, the instance and
        # its listener; then the instance goes idle (its thread and listener stop).
        warm = _names("projects/bench-scale/locations/warm", "job", 1)
        _seed(stack, warm, params={"steps": 1, "stepSeconds": 0})
        worker.push(warm[0], 0)
        _wait_for("the warm-up job", lambda: worker.outstanding() == 0, 60)
        time.sleep(3.5)  # IDLE_LINGER_SECONDS (2 s), and a margin
        pid = worker.pid
        idle_threads, idle_rss = threads_of(pid), rss_kib(pid)
        seen: dict[str, float] = {}

        def sample() -> None:
            time.sleep(1.0)  # claims done, every handler in its first step
            seen["threads"], seen["rss"] = threads_of(pid), rss_kib(pid)
            seen["running"] = len(_handled(worker, f"projects/bench-scale/locations/n{jobs}"))

        progress(f"scale: cancel acknowledged, {ack_jobs} running jobs")
        records = _round(stack, worker, f"projects/bench-scale/locations/a{ack_jobs}", ack_jobs)
        acks = [_ms(r["cancelAcknowledgeTime"], r["cancelRequestTime"]) for r in records]
        figures.update(cancel_ack_p50_ms=percentile_or_none(acks, 50),
                       cancel_ack_p99_ms=percentile_or_none(acks, 99))

        progress(f"scale: forced end, {stubborn} stubborn jobs, grace {GRACE_SECONDS:g} s")
        records = _round(stack, worker, f"projects/bench-scale/locations/s{stubborn}", stubborn,
                         kind="bench.stubborn", params={"seconds": GRACE_SECONDS + 8})
        forced = [r for r in records
                  if (r.get("error") or {}).get("reason") == model.CANCEL_FORCED]
        # A job not forced ended when its handler returned (after ``seconds``):
        # its overshoot counts too, it is what the user waited.
        over = [_ms(r["endTime"], r["cancelAcknowledgeTime"]) - GRACE_SECONDS * 1e3
                for r in records]
        figures.update(forced_end_overshoot_p50_ms=percentile_or_none(over, 50),
                       forced_end_overshoot_p99_ms=percentile_or_none(over, 99),
                       forced_end_share=len(forced) / len(records) if records else None)
        progress(f"scale: {jobs} jobs at once in one worker process")
        records = _round(stack, worker, f"projects/bench-scale/locations/n{jobs}", jobs,
                         on_running=sample, figures=figures)
        acks = [_ms(r["cancelAcknowledgeTime"], r["cancelRequestTime"]) for r in records]
        figures.update(
            concurrent_jobs=seen["running"],
            concurrent_cancel_ack_p50_ms=percentile_or_none(acks, 50),
            concurrent_cancel_ack_p99_ms=percentile_or_none(acks, 99),
            worker_idle_threads=idle_threads,
            worker_threads_running=seen["threads"],
            worker_threads_per_job=(seen["threads"] - idle_threads) / max(1, seen["running"]),
            worker_idle_rss_mib=idle_rss / 1024,
            worker_rss_running_mib=seen["rss"] / 1024,
            worker_rss_per_job_kib=(seen["rss"] - idle_rss) / max(1, seen["running"]),
            concurrent_redeliveries=worker.redeliveries)

    finally:
        worker.stop()


def writes_per_job_hour(stack: BenchStack, jobs: int, window: float,
                        figures: dict[str, float | None],
                        progress: Callable[[str], None]) -> None:
    """Firestore reads and writes of waiting jobs, counted by the real store
    in a worker in this process (default settings: HEARTBEAT_SECONDS=5)."""
    from google.cloud import firestore

    from lib.core.config import Settings
    from lib.core.store import FirestoreOperationStore
    from lib.jobs.worker import OperationWorker

    assert stack.emulators is not None
    client = firestore.Client(project=stack.emulators.project)
    store = FirestoreOperationStore(client, stack.collection)
    settings = Settings(project=stack.emulators.project, collection=stack.collection)
    worker = OperationWorker(store, settings)
    parent = f"projects/bench-scale/locations/w{jobs}"
    names = _names(parent, "job", jobs)
    _seed(stack, names)  # one 60 s step: no progress write inside the window
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda n=name: outcomes.append(worker.run(n)),
                                daemon=True) for name in names]
    for thread in threads:
        thread.start()
    try:
        # Every claim counted, every handler in its step: only waiting from here.
        _wait_for(f"{jobs} running jobs in process",
                  lambda: worker.instance.running() >= jobs, 120)
        time.sleep(2.0)
        progress(f"writes per job-hour: {jobs} waiting jobs, {window:.0f} s window")
        reads, writes = store.counter.reads, store.counter.writes
        started = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - started
        reads, writes = store.counter.reads - reads, store.counter.writes - writes
    finally:
        _cancel_all(stack, names)
        for thread in threads:
            thread.join(60)
        client.close()
    job_hours = jobs * elapsed / 3600
    figures.update(firestore_writes_per_job_hour=writes / job_hours,
                   firestore_reads_per_job_hour=reads / job_hours,
                   cost_per_job_hour_usd=(writes * 0.18 + reads * 0.06) / 100_000 / job_hours)
