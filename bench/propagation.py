"""propagation_p50_ms / propagation_p99_ms / propagation_poll_p50_ms.

From the moment the bench receives the 200 of a cancel sent over HTTP to the
running HTTP function, to the moment a running handler sees ``ctx.cancelled``.
The handler runs in a ``lib.jobs.worker.OperationWorker`` inside this process, on
the same emulator and collection as the stack, so both instants are read from
one clock (``time.perf_counter``). The handler is the bench's own kind,
``bench.wait``: it waits on ``ctx.cancelled`` and notes when it wakes.

With the listener (production default) the cancel arrives by the Firestore
``on_snapshot`` push (one query listener per worker instance); without it,
by the heartbeat's poll (every
``POLL_HEARTBEAT_SECONDS``), and the cancel is sent at a random phase of it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions

from bench.measure import percentile
from bench.stack import BenchStack, job_record
from lib import kinds
from lib.core import model
from lib.core.config import Settings
from lib.core.store import FirestoreOperationStore, Listener
from lib.jobs.worker import OperationWorker

KIND = "bench.wait"
POLL_HEARTBEAT_SECONDS = 1.0
HANDLER_TIMEOUT_SECONDS = 30.0


@dataclass
class Trial:
    """One job: when its handler started, when the cancel's response arrived
    and when the handler saw the cancel."""

    started: threading.Event = field(default_factory=threading.Event)
    sent_at: float | None = None
    response_at: float | None = None
    cancelled_at: float | None = None
    outcome: str | None = None


_TRIALS: dict[str, Trial] = {}
_registered = threading.Lock()


def _register_kind() -> None:
    with _registered:
        if KIND in kinds.registered():
            return

        @kinds.register(KIND)
        def wait_for_cancel(ctx: kinds.JobContext, params: dict[str, Any]) -> dict[str, Any]:
            trial = _TRIALS[ctx.name]  # type: ignore[attr-defined]  # RunningJob.name
            trial.started.set()
            if ctx.cancelled.wait(HANDLER_TIMEOUT_SECONDS):
                trial.cancelled_at = time.perf_counter()
                raise exceptions.Cancelled(model.CANCELLED_MESSAGE)
            return {"timedOut": True}


class ObservedStore(FirestoreOperationStore):
    """The real store, keeping the instance listeners it starts, so a cancel
    is never sent before the listener is current."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listeners: list[Listener] = []

    def watch_held(self, owner: str,
                   on_change: Callable[[str, dict[str, Any] | None], None]) -> Listener:
        listener = super().watch_held(owner, on_change)
        self.listeners.append(listener)
        return listener


def _listening(store: ObservedStore, timeout: float) -> bool:
    """True once the instance's listener exists and is current."""
    deadline = time.monotonic() + timeout
    while not store.listeners:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return store.listeners[-1].wait_current(max(0.0, deadline - time.monotonic()))


def run(stack: BenchStack, *, listener: bool, trials: int, concurrency: int,
        label: str) -> tuple[list[float], list[float]]:
    """Per cancel, in ms: cancel response received → handler sees it (the
    figure), and cancel request sent → handler sees it."""
    _register_kind()
    settings = Settings(
        project=stack.emulators.project if stack.emulators else "",
        collection=stack.collection,
        cancel_listener=listener,
        heartbeat_seconds=Settings.heartbeat_seconds if listener else POLL_HEARTBEAT_SECONDS,
    )
    store = ObservedStore(stack.client, stack.collection)
    worker = OperationWorker(store, settings)
    headers = stack.auth()
    jitter = 0.05 if listener else POLL_HEARTBEAT_SECONDS

    def trial(i: int) -> tuple[float, float]:
        name = f"projects/bench/locations/us/operations/prop-{label}-{i:04d}"
        record = _TRIALS[name] = Trial()
        store.create(job_record(name, model.utcnow(), kind=KIND))

        def run_job() -> None:
            record.outcome = worker.run(name)

        runner = threading.Thread(target=run_job, name=f"bench worker {i}", daemon=True)
        runner.start()
        # The first job's claim starts the instance's listener; a job claimed
        # alongside it may start its handler before the listener exists.
        if not record.started.wait(30) or (listener and not _listening(store, 30)):
            raise RuntimeError(f"{name}: the handler or its listener did not start")
        time.sleep(random.uniform(0, jitter))
        record.sent_at = time.perf_counter()
        response = stack.session().post(f"{stack.url}/v1/{name}:cancel", headers=headers,
                                        timeout=30)
        record.response_at = time.perf_counter()
        if response.status_code != 200:
            raise RuntimeError(f"cancel {name}: {response.status_code} {response.text[:200]}")
        runner.join(HANDLER_TIMEOUT_SECONDS + 30)
        if record.outcome != "cancelled" or record.cancelled_at is None:
            raise RuntimeError(f"{name}: ended {record.outcome!r}, not cancelled")
        return ((record.cancelled_at - record.response_at) * 1e3,
                (record.cancelled_at - record.sent_at) * 1e3)

    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(trial, range(trials)))
    return [r[0] for r in results], [r[1] for r in results]


def summarize(listener: tuple[list[float], list[float]],
              poll: tuple[list[float], list[float]]) -> dict[str, float]:
    """The figures, and how often the handler saw the cancel before its response
    reached the client (a negative delay: the push beat the HTTP response)."""
    (listener_ms, listener_sent_ms), (poll_ms, _) = listener, poll
    return {
        "propagation_p50_ms": percentile(listener_ms, 50),
        "propagation_p99_ms": percentile(listener_ms, 99),
        "propagation_poll_p50_ms": percentile(poll_ms, 50),
        "propagation_poll_p99_ms": percentile(poll_ms, 99),
        "propagation_before_response_share": sum(v < 0 for v in listener_ms) / len(listener_ms),
        "propagation_from_send_p50_ms": percentile(listener_sent_ms, 50),
        "propagation_from_send_p99_ms": percentile(listener_sent_ms, 99),
    }
