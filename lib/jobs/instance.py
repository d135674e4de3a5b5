"""One worker instance (a process): the jobs it runs, and the one thread and
one listener that look after all of them.

Per process, not per job:

- **Liveness.** One instance lease document, renewed with one write per
  heartbeat, keeps every job the process runs alive; each job keeps its own
  fencing token, so every job write stays fenced.
- **Cancels, by push.** A cancel of a running job also writes an entry in
  its instance's cancel inbox (under the instance lease document). One
  Firestore listener on that inbox dispatches each cancel to the job's
  context, and the instance then deletes the entries it has passed on, so
  the listener's set stays small. A read of the inbox each heartbeat is the
  fallback.
- **Takeovers.** Another worker can take a job only once this instance's
  lease has run out; when a renewal comes so late that it might have, every
  job is read again, and one taken over or ended elsewhere learns it lost
  its lease. (Its next write would fail on its fencing token anyway.)
- **Clocks.** The same thread keeps each job's deadline and grace clock: a
  handler that has not returned ``grace`` seconds after it saw its cancel is
  ended (CANCELLED, ``CANCEL_FORCED``), its cleanups run once, its writes are
  fenced off, and one WARNING says where its thread is stuck.

The listener and the thread run while the instance holds a job, and stop
once it has held none for ``IDLE_LINGER_SECONDS`` (so a steady stream of
short jobs does not open a listener per job).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import sysconfig
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions

from lib.core import errors, model, telemetry
from lib.core.config import Settings
from lib.core.store import Listener, OperationStore
from lib.jobs.running import DEADLINE, REQUEST, Cancellation, RunningJob, fields

log = logging.getLogger("operations.worker")

# A handler that stops promptly carries its acknowledgement in its final
# write; one still running this long after it saw the cancel gets its own.
ACK_WRITE_DELAY_SECONDS = 0.25
IDLE_LINGER_SECONDS = 2.0
# How often a job past its grace but inside ``ctx.shielded()`` is looked at.
SHIELDED_RECHECK_SECONDS = 0.1
# Frames skipped when naming where a handler is stuck: the standard library
# and the job context's own waits.
_NOT_THE_HANDLER = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"],
                    os.path.join(os.path.dirname(__file__), "running.py"))


def new_owner() -> str:
    """A unique id for this process: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WorkerInstance:
    """The jobs one process runs, their instance lease and their clocks."""

    def __init__(self, store: OperationStore, settings: Settings,
                 clock: Callable[[], datetime] = model.utcnow,
                 monotonic: Callable[[], float] = time.monotonic,
                 owner: str | None = None) -> None:
        self.owner = owner or new_owner()
        self._store = store
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._retention = timedelta(days=settings.retention_days)
        self._jobs: dict[str, RunningJob] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None
        self._renewed_at = float("-inf")
        self._lease_from = float("-inf")  # when the lease now held was written
        self._idle_since: float | None = None
        self._to_check: set[str] = set()
        self._claiming: set[str] = set()
        self._renew_lock = threading.Lock()
        self._acks: dict[str, float] = {}  # job name -> when its ack write is due
        self._passed_on: set[str] = set()  # inbox entries to delete
        self._early: dict[str, dict[str, Any]] = {}  # inbox entries of jobs being claimed
        # The earliest deadline or grace end of any job: the jobs' clocks are
        # only read again then (or on a heartbeat), not on every wake.
        self._clocks_due = float("inf")

    # Jobs come and go.

    def ensure_alive(self) -> None:
        """Renews the instance lease before a claim points a job at it, unless
        a heartbeat renewed it recently. Raises the store's error: a job must
        never point at an instance lease that is not there."""
        with self._renew_lock:  # one renewal for many concurrent first claims
            if self._monotonic() - self._renewed_at >= self._settings.heartbeat_seconds:
                self._renew_lease()

    def _renew_lease(self) -> None:
        """Renews the instance lease (the caller holds ``_renew_lock``). A
        renewal that lands half a lease or more after the one before it may
        have let the lease lapse: every job is then read again."""
        started = self._monotonic()
        self._store.renew_instance(self.owner, now=self._clock(),
                                   lease_seconds=self._settings.lease_seconds)
        self._renewed_at = self._monotonic()
        late = self._renewed_at - self._lease_from >= self._settings.lease_seconds / 2
        self._lease_from = started
        if late:
            with self._lock:
                self._to_check.update(self._jobs)
                jobs = len(self._jobs)
            if jobs:
                log.warning("instance lease renewed late; checking its jobs", extra=fields(
                    instance=self.owner, jobs=jobs))
                self._wake.set()

    def reserve(self, name: str) -> bool:
        """Marks ``name`` as being claimed here; False if this process already
        claims or runs it (a duplicate delivery to the same instance)."""
        with self._lock:
            if name in self._jobs or name in self._claiming:
                return False
            self._claiming.add(name)
            return True

    def unreserve(self, name: str) -> None:
        with self._lock:
            self._claiming.discard(name)
            if self._early.pop(name, None) is not None:
                self._passed_on.add(name)  # its claim failed: nobody here runs it

    def add(self, job: RunningJob) -> None:
        job.on_acknowledged = self._acknowledged
        with self._lock:
            self._jobs[job.name] = job
            early = self._early.pop(job.name, None)
            if job.deadline is not None:
                left = (job.deadline - self._clock()).total_seconds()
                self._clocks_due = min(self._clocks_due, self._monotonic() + left)
            start = self._thread is None
            if start:
                self._thread = threading.Thread(target=self._watch, name="worker instance",
                                                daemon=True)
        if start:
            if self._settings.cancel_listener:
                self._listener = self._store.watch_held(self.owner, self._on_change)
            assert self._thread is not None
            self._thread.start()
        if early is not None:
            self._take(job.name, early)
        self._wake.set()

    def remove(self, job: RunningJob) -> None:
        """Forgets a job (the instance's thread stops the listener once idle)."""
        with self._lock:
            if self._jobs.get(job.name) is job:
                del self._jobs[job.name]
            self._acks.pop(job.name, None)
        self._wake.set()

    def running(self) -> int:
        with self._lock:
            return len(self._jobs)

    # Notifications.

    def _on_change(self, name: str, entry: dict[str, Any] | None) -> None:
        """The listener: a cancel arrived in the inbox (None: an entry this
        instance deleted)."""
        if entry is not None:
            self._take(name, entry)

    def _take(self, name: str, entry: dict[str, Any]) -> None:
        """Passes an inbox entry (from the listener or the poll) on to its job,
        then deletes it. The entry of a job still being claimed here (the
        cancel committed after the claim, before the job was added) waits
        for it."""
        with self._lock:
            job = self._jobs.get(name)
            if job is None and name in self._claiming:
                self._early[name] = entry
                return
            self._passed_on.add(name)
        held = entry.get("lease") or {}
        if (job is not None and not job.finishing
                and (held.get("owner"), held.get("token")) == (job.lease.owner, job.lease.token)):
            job.request_cancel(Cancellation.requested(entry))
        self._wake.set()

    def _acknowledged(self, job: RunningJob) -> None:
        """The handler's context exposed a requested cancel: time it, and
        write it unless the handler's final write carries it."""
        cancellation, seen = job.cancellation, job.acknowledged_at
        telemetry.cancel_event("acknowledged", operation=job.name)
        if cancellation is not None and cancellation.requested_at and seen:
            latency = (seen - cancellation.requested_at).total_seconds() * 1000
            telemetry.record_cancel_ack(max(0.0, latency), kind=job.kind.name)
        with self._lock:
            self._acks[job.name] = self._monotonic() + ACK_WRITE_DELAY_SECONDS
            if job.grace_ends is not None:
                self._clocks_due = min(self._clocks_due, job.grace_ends)
        self._wake.set()

    # The instance's thread.

    def _watch(self) -> None:
        me = threading.current_thread()
        while True:
            now = self._monotonic()
            with self._lock:
                jobs = list(self._jobs.values())
                if jobs:
                    self._idle_since = None
                elif self._idle_since is None:
                    self._idle_since = now
                elif now - self._idle_since >= IDLE_LINGER_SECONDS:
                    if self._thread is me:
                        self._thread = None
                    listener, self._listener = self._listener, None
                    self._idle_since = None
                    break
            heartbeat = now - self._renewed_at >= self._settings.heartbeat_seconds
            if heartbeat:
                self._heartbeat(jobs)
            self._clear_inbox()
            checked = self._check_held()
            self._write_acks(now)
            if heartbeat or checked or now >= self._clocks_due:
                self._check_all_clocks(jobs)
            self._wake.wait(self._next_wake())
            self._wake.clear()
        if listener is not None:
            listener.close()

    def _next_wake(self) -> float:
        now = self._monotonic()
        due = [self._renewed_at + self._settings.heartbeat_seconds, self._clocks_due]
        if self._idle_since is not None:
            due.append(self._idle_since + IDLE_LINGER_SECONDS)
        with self._lock:
            due += self._acks.values()
        return max(0.0, min(due) - now)

    def _renew(self) -> None:
        try:
            with self._renew_lock:
                self._renew_lease()
        except exceptions.GoogleAPICallError as exc:
            log.warning("instance lease renewal failed; retrying", extra=fields(
                instance=self.owner, reason=errors.reason(exc)))

    def _heartbeat(self, jobs: list[RunningJob]) -> None:
        """Renews the instance lease; restarts a listener that died; polls for
        cancels (the listener's fallback)."""
        self._renew()
        if not jobs:
            return
        listener = self._listener
        if listener is not None and not listener.alive():
            # A cancel requested while it was down is found by the poll below.
            log.warning("cancel listener stopped; starting a new one",
                        extra=fields(instance=self.owner))
            self._listener = self._store.watch_held(self.owner, self._on_change)
            listener.close()
        try:
            entries = self._store.cancels_held(self.owner)
        except exceptions.GoogleAPICallError as exc:
            log.warning("cancel poll failed", extra=fields(instance=self.owner,
                                                           reason=errors.reason(exc)))
            return
        for entry in entries:
            if isinstance(entry.get("name"), str):
                self._take(entry["name"], entry)

    def _check_held(self) -> bool:
        """Reads again the jobs that may have been ended or taken over
        elsewhere while the instance lease may have lapsed; True if it read
        any."""
        with self._lock:
            names, self._to_check = self._to_check, set()
        names = {name for name in names
                 if (job := self._jobs.get(name)) is not None and not job.finishing}
        if not names:
            return False
        try:
            records = self._store.get_many(sorted(names))
        except exceptions.GoogleAPICallError:
            with self._lock:
                self._to_check.update(names)  # the next pass reads them again
            return False
        for name, record in records.items():
            job = self._jobs.get(name)
            if job is not None and not job.finishing:
                job.observe(record)
        return True

    def _clear_inbox(self) -> None:
        with self._lock:
            names, self._passed_on = self._passed_on, set()
        if not names:
            return
        try:
            self._store.clear_inbox(self.owner, sorted(names))
        except exceptions.GoogleAPICallError:
            with self._lock:
                self._passed_on.update(names)  # the next pass deletes them

    def _write_acks(self, now: float) -> None:
        with self._lock:
            due = [name for name, at in self._acks.items() if at <= now]
            for name in due:
                del self._acks[name]
        for name in due:
            job = self._jobs.get(name)
            if job is not None and not job.finishing:
                job.write_ack()

    def _check_all_clocks(self, jobs: list[RunningJob]) -> None:
        """Starts the cancel of a job past its deadline, ends one past its
        grace; notes when the next of them is due."""
        with self._lock:
            self._clocks_due = float("inf")  # what is noted meanwhile is kept
        due = float("inf")
        wall = self._clock()
        for job in jobs:
            if job.forced or job.returned:
                continue
            now = self._monotonic()
            if job.deadline is not None and job.cancellation is None and job.kind.cancellable:
                left = (job.deadline - wall).total_seconds()
                if left <= 0:
                    job.request_cancel(Cancellation(DEADLINE, requested_at=job.deadline))
                else:
                    due = min(due, now + left)
            if job.grace_ends is not None and not job.forced:
                if now < job.grace_ends:
                    due = min(due, job.grace_ends)
                elif job.is_shielded:
                    due = min(due, now + SHIELDED_RECHECK_SECONDS)
                else:
                    self._force_end(job)
        with self._lock:
            self._clocks_due = min(self._clocks_due, due)

    def _force_end(self, job: RunningJob) -> None:
        """The grace is over and the handler still runs: end the operation
        without it, fence it off, run its cleanups, say where it is stuck."""
        with job.lock:
            if job.returned or job.forced or job.cancellation is None:
                return
            job.forced = True
            job.lease_lost.set()  # no later progress, checkpoint or result of it
            cancellation = job.cancellation
        ack = job.unwritten_ack()

        def changes(record: Any) -> dict[str, Any]:
            now = self._clock()
            if cancellation.cause == DEADLINE:
                ended = model.deadline_changes(now=now, retention=self._retention,
                                               forced=True)
            else:
                ended = model.cancelled_changes(now=now, retention=self._retention,
                                                reason=model.CANCEL_FORCED,
                                                info=model.cancel_info(record))
            return {**ended, **ack}

        try:
            written = self._store.finish(job.name, job.lease, changes)
        except exceptions.GoogleAPICallError as exc:
            # The lease runs out while the handler is stuck; the sweep ends it.
            log.warning("forced end not written; the sweep will end it", extra=fields(
                operation=job.name, reason=errors.reason(exc)))
            written = False
        telemetry.cancel_event("forced", operation=job.name, cause=cancellation.cause)
        telemetry.record_forced(kind=job.kind.name)
        where = stuck_at(job.thread_id)
        log.warning("handler ignored its cancel past the grace; operation ended (forced)",
                    extra=fields(operation=job.name, kind=job.kind.name,
                                 graceSeconds=job.grace_seconds, stuckAt=where,
                                 cause=cancellation.cause, written=written))
        if written and cancellation.cause in (REQUEST, DEADLINE):
            # Cleanups may block like the handler did: never on this thread.
            threading.Thread(target=job.run_cleanups, name=f"on_cancel {job.name}",
                             daemon=True).start()


def stuck_at(thread_id: int) -> str:
    """``file:line`` of the innermost frame of a thread that is not the
    standard library (where the handler's own code is), or ``unknown``."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return "unknown"
    stack = traceback.extract_stack(frame)
    for entry in reversed(stack):
        if not entry.filename.startswith(_NOT_THE_HANDLER):
            return f"{entry.filename}:{entry.lineno}"
    last = stack[-1]
    return f"{last.filename}:{last.lineno}"
