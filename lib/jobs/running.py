"""A running job as its handler sees it (``lib.kinds.JobContext``), and the
state the worker instance keeps about it: the cancel, when the handler saw
it, the grace clock, and the fence that stops a forced handler's writes.

The cancel lifecycle (docs/architecture.md, "Cancel lifecycle"): a cancel is
*requested* (by a caller, the deadline, or a lost lease), *acknowledged* when
the handler's context first exposes it (at once, or when a shielded section
exits), and *ended* when the handler returns or, after the grace, when the
worker instance forces the end.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.api_core import exceptions

from lib.core import model, results
from lib.core.config import Settings
from lib.core.store import Claim, LeaseLost, OperationStore
from lib.kinds import Kind

log = logging.getLogger("operations.worker")

REQUEST = "request"
DEADLINE = "deadline"
LEASE_LOST = "lease_lost"


@dataclass(frozen=True)
class Cancellation:
    """Why a handler is asked to stop (``ctx.cancellation``).

    Attributes:
        cause: ``"request"`` (a caller's cancel), ``"deadline"`` (the
            operation's deadline passed) or ``"lease_lost"`` (another worker
            took the operation over, or it ended without this one).
        reason: the caller's ``X-Goog-Request-Reason``, when given.
        requested_by: the principal who cancelled, when known.
        requested_at: when the cancel (or the deadline) happened.
    """

    cause: str
    reason: str = ""
    requested_by: str = ""
    requested_at: datetime | None = None

    @classmethod
    def requested(cls, record: Mapping[str, Any]) -> Cancellation:
        return cls(REQUEST, str(record.get("cancelReason") or ""),
                   str(record.get("cancelRequestedBy") or ""), record.get("cancelRequestTime"))

    @property
    def message(self) -> str:
        return model.DEADLINE_MESSAGE if self.cause == DEADLINE else model.CANCELLED_MESSAGE


class RunningJob:
    """The JobContext a handler gets, and the worker's record of the run."""

    def __init__(self, store: OperationStore, claim: Claim, kind: Kind, settings: Settings,
                 clock: Callable[[], datetime], monotonic: Callable[[], float]) -> None:
        record = claim.record
        self.name: str = record["name"]
        self.kind = kind
        self.record: Mapping[str, Any] = record
        self.lease = claim.lease
        self.deadline: datetime | None = record.get("deadline")
        self.cancelled = threading.Event()
        self.cancellation: Cancellation | None = None
        self.lease_lost = threading.Event()  # the fence: this run writes nothing more
        self.state: Mapping[str, Any] = dict(record.get("checkpoint") or {})
        self.acknowledged_at: datetime | None = None
        self.ack_written = False
        self.grace_ends: float | None = None
        self.forced = False
        self.returned = False
        self.finishing = False
        self.thread_id = threading.get_ident()
        self.lock = threading.RLock()
        self._store = store
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._held: Cancellation | None = None  # a cancel waiting for a shield to exit
        self._shields = 0
        self._pending: dict[str, Any] = {}
        self._last_write = float("-inf")
        self._write_lock = threading.Lock()
        self._cleanups: list[Callable[[], None]] = []
        self._cleaned_up = False
        self._slice_ends = monotonic() + settings.slice_seconds
        self.on_acknowledged: Callable[[RunningJob], None] = lambda _job: None

    @property
    def grace_seconds(self) -> float:
        own = self.kind.cancel_grace_seconds
        return self._settings.cancel_grace_seconds if own is None else own

    # The handler's API.

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set() and not self._shields:
            raise exceptions.Cancelled(self._stop_message())

    def sleep(self, seconds: float) -> None:
        if self._shields:
            time.sleep(seconds)  # a shielded section is not cut short
            return
        if self.cancelled.wait(seconds):
            raise exceptions.Cancelled(self._stop_message())

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Holds a cancel until the block exits; the grace clock starts then."""
        with self.lock:
            self._shields += 1
        try:
            yield
        finally:
            with self.lock:
                self._shields -= 1
                if not self._shields:
                    if self._held is not None:
                        self._expose(self._held)
                    elif self.cancellation is not None:
                        self.grace_ends = self._monotonic() + self.grace_seconds

    @property
    def is_shielded(self) -> bool:
        return self._shields > 0

    def report_progress(self, percent: int, message: str | None = None) -> None:
        # What cannot be stored is the handler's error, at its call (ValueError).
        changes: dict[str, Any] = {"progressPercent": max(0, min(100, int(percent)))}
        if message is not None:
            changes["statusMessage"] = results.check_status_message(message)
        self._queue(changes)
        self._flush()

    def checkpoint(self, state: Mapping[str, Any]) -> None:
        saved = results.check_checkpoint(state)
        self.state = dict(saved)
        self._queue({"checkpoint": dict(saved)})
        if self._monotonic() >= self._slice_ends and not self.cancelled.is_set():
            self._flush(force=True)
            if not self.lease_lost.is_set() and not self._pending:
                raise SliceEnded  # only once the checkpoint is saved
        self._flush()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        self._cleanups.append(callback)

    # The worker's side.

    def request_cancel(self, cancellation: Cancellation) -> None:
        """A cancel reached this job (listener, poll, deadline or lost lease).
        The first one wins; inside a shielded section it waits for the exit."""
        with self.lock:
            if self.cancellation is not None or self._held is not None or self.returned:
                return
            if self._shields and cancellation.cause != LEASE_LOST:
                self._held = cancellation
                return
            self._expose(cancellation)

    def _expose(self, cancellation: Cancellation) -> None:
        self._held = None
        self.cancellation = cancellation
        self.acknowledged_at = self._clock()
        self.grace_ends = self._monotonic() + self.grace_seconds
        self.cancelled.set()
        if cancellation.cause == REQUEST:
            self.on_acknowledged(self)

    def observe(self, record: Mapping[str, Any] | None) -> None:
        """The document as it is now (listener, poll, or a read after the
        document left this instance's set).

        Deleted: nothing can be written any more, but DeleteOperation does not
        cancel, so the handler is not stopped. Ended or taken over by someone
        else: the handler stops. Cancel requested: the handler is told.
        """
        if record is None:
            self.lease_lost.set()
            return
        held = record.get("lease") or {}
        if record.get("done") or (held.get("owner"), held.get("token")) != (
                self.lease.owner, self.lease.token):
            self.lose_lease(LeaseLost("ended or taken over elsewhere"))
        elif record.get("cancelRequested"):
            self.request_cancel(Cancellation.requested(record))

    def lose_lease(self, lost: LeaseLost) -> None:
        self.lease_lost.set()
        if not lost.deleted:
            self.request_cancel(Cancellation(LEASE_LOST, requested_at=self._clock()))

    def run_cleanups(self) -> None:
        """Runs the on_cancel callbacks, once."""
        with self.lock:
            if self._cleaned_up:
                return
            self._cleaned_up = True
        for callback in self._cleanups:
            try:
                callback()
            except Exception:
                log.exception("on_cancel callback failed", extra=fields(operation=self.name))

    def note_retry(self, attempt: int, error: str, delay: float) -> None:
        """Records a retry: the attempt count and why, visible in metadata."""
        self._queue({"attempt": attempt,
                     "statusMessage": f"Retrying in {delay:g}s after: {error}"[:1024]})
        self._flush(force=True)

    def unwritten_ack(self) -> dict[str, Any]:
        """``cancelAcknowledgeTime`` if no write has carried it yet (then the
        caller's write does, and it is marked written)."""
        with self.lock:
            if self.acknowledged_at is None or self.ack_written or (
                    self.cancellation is None or self.cancellation.cause != REQUEST):
                return {}
            self.ack_written = True
            return {"cancelAcknowledgeTime": self.acknowledged_at}

    def write_ack(self) -> None:
        """The acknowledgement as its own fenced write (for a handler that has
        not ended soon after it saw the cancel)."""
        ack = self.unwritten_ack()
        if ack and not self.lease_lost.is_set():
            self._queue({**ack, "updateTime": self._clock()})
            self._flush(force=True)

    def _stop_message(self) -> str:
        return self.cancellation.message if self.cancellation else model.CANCELLED_MESSAGE

    def _queue(self, changes: Mapping[str, Any]) -> None:
        """Adds to the next write (the handler's thread and the instance's
        thread both do)."""
        with self._write_lock:
            self._pending.update(changes)

    def _flush(self, force: bool = False) -> None:
        """Writes pending progress/checkpoint, at most once per throttle interval."""
        with self._write_lock:
            interval = self._settings.progress_min_interval_seconds
            due = self._monotonic() - self._last_write >= interval
            if not self._pending or not (due or force) or self.lease_lost.is_set():
                return
            changes, self._pending = {**self._pending, "updateTime": self._clock()}, {}
            self._last_write = self._monotonic()
            try:
                self._store.update_running(self.name, self.lease, changes)
            except LeaseLost as lost:
                self.lose_lease(lost)
            except exceptions.GoogleAPICallError:
                # Progress is not the job: keep it for the next write rather
                # than fail the handler on the store's trouble.
                self._pending = {**changes, **self._pending}  # still under the lock
                log.warning("progress write failed; will retry", extra=fields(operation=self.name))


class SliceEnded(BaseException):
    """Raised at a checkpoint once the invocation's time slice is used up.

    A BaseException, so a handler's ``except Exception`` does not swallow it.
    """


def fields(**values: Any) -> dict[str, Any]:
    """Structured log fields (``lib.core.logs``)."""
    return {"json_fields": values}
