"""The worker: claim an operation, run its kind's handler, honor cancellation,
finalize.

Cancellation reaches a running handler by push: a Firestore listener on the
operation document sets ``cancelled`` as soon as ``cancelRequested`` turns
true. The heartbeat that renews the lease reads the document too, so a dead
listener only makes cancellation slower, never lost. Every write after the
claim is fenced by the lease token: a worker that lost its lease writes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions
from google.rpc import code_pb2

from lib import errors, model, telemetry
from lib.config import Settings
from lib.kinds import registered
from lib.model import utcnow
from lib.publisher import JobPublisher
from lib.store import Claim, Lease, LeaseLost, OperationStore

log = logging.getLogger("operations.worker")

_FINISH_TRIES = 5

# Handler failures worth another try: anything unexpected, and these codes.
_TRANSIENT = (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded)


class SliceEnded(BaseException):
    """Raised at a checkpoint once the invocation's time slice is used up.

    A BaseException, so a handler's ``except Exception`` does not swallow it.
    """


class Redeliver(Exception):
    """This delivery could not be processed now (the store unavailable, or
    the operation locked): the function answers 503 so that Pub/Sub delivers
    the message again, with its backoff. Logged as a warning, not a crash."""


def job_name(cloud_event: Any) -> str | None:
    """The operation name in a Pub/Sub ``messagePublished`` event, or None."""
    try:
        data = cloud_event.data["message"]["data"]
        payload = json.loads(base64.b64decode(data, validate=True))
        return model.check_name(payload["name"])
    except (KeyError, TypeError, ValueError, binascii.Error, RecursionError):
        return None


class RunningJob:
    """The JobContext a handler gets (see ``lib.kinds.JobContext``)."""

    def __init__(self, store: OperationStore, claim: Claim, settings: Settings,
                 clock: Callable[[], datetime], monotonic: Callable[[], float]) -> None:
        self.name: str = claim.record["name"]
        self.cancelled = threading.Event()
        self.lease_lost = threading.Event()
        self.state: Mapping[str, Any] = dict(claim.record.get("checkpoint") or {})
        self._store = store
        self._lease = claim.lease
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._pending: dict[str, Any] = {}
        self._last_write = float("-inf")
        self._write_lock = threading.Lock()
        self._cleanups: list[Callable[[], None]] = []
        self._cleaned_up = False
        self._slice_ends = monotonic() + settings.slice_seconds
        if claim.record.get("cancelRequested"):
            self.cancelled.set()

    # The handler's API.

    def raise_if_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise exceptions.Cancelled(model.CANCELLED_MESSAGE)

    def sleep(self, seconds: float) -> None:
        if self.cancelled.wait(seconds):
            raise exceptions.Cancelled(model.CANCELLED_MESSAGE)

    def report_progress(self, percent: int, message: str | None = None) -> None:
        self._pending["progressPercent"] = max(0, min(100, int(percent)))
        if message is not None:
            self._pending["statusMessage"] = str(message)[:1024]
        self._flush()

    def checkpoint(self, state: Mapping[str, Any]) -> None:
        self.state = dict(state)
        self._pending["checkpoint"] = dict(state)
        if self._monotonic() >= self._slice_ends and not self.cancelled.is_set():
            self._flush(force=True)
            if not self.lease_lost.is_set() and not self._pending:
                raise SliceEnded  # only once the checkpoint is saved
        self._flush()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        self._cleanups.append(callback)

    # The worker's side.

    def observe(self, record: Mapping[str, Any] | None) -> None:
        """Listener and heartbeat callback: the document as it is now.

        Deleted: nothing can be written any more, but DeleteOperation does not
        cancel, so the handler is not stopped. Finished by someone else (the
        sweep) or cancel requested: the handler stops.
        """
        if record is None:
            self.lease_lost.set()
        elif record.get("done"):
            self.lease_lost.set()
            self.cancelled.set()
        elif record.get("cancelRequested"):
            self.cancelled.set()

    def lose_lease(self, lost: LeaseLost) -> None:
        self.lease_lost.set()
        if not lost.deleted:
            self.cancelled.set()  # another worker runs it now, or it is done: stop

    def run_cleanups(self) -> None:
        """Runs the on_cancel callbacks, once."""
        if self._cleaned_up:
            return
        self._cleaned_up = True
        for callback in self._cleanups:
            try:
                callback()
            except Exception:
                log.exception("on_cancel callback failed", extra=_fields(operation=self.name))

    def note_retry(self, attempt: int, error: str, delay: float) -> None:
        """Records a retry: the attempt count and why, visible in metadata."""
        self._pending.update(attempt=attempt,
                             statusMessage=f"Retrying in {delay:g}s after: {error}"[:1024])
        self._flush(force=True)

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
                self._store.update_running(self.name, self._lease, changes)
            except LeaseLost as lost:
                self.lose_lease(lost)
            except exceptions.GoogleAPICallError:
                # Progress is not the job: keep it for the next write rather
                # than fail the handler on the store's trouble.
                self._pending = {**changes, **self._pending}
                log.warning("progress write failed; will retry", extra=_fields(operation=self.name))


class OperationWorker:
    """Runs operations named by Pub/Sub messages."""

    def __init__(self, store: OperationStore, settings: Settings,
                 publisher: JobPublisher | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic,
                 owner: str | None = None) -> None:
        self._store = store
        self._publisher = publisher
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._retention = timedelta(days=settings.retention_days)

    def handle_message(self, cloud_event: Any) -> None:
        name = job_name(cloud_event)
        if name is None:
            # Acknowledged, never retried: no redelivery can make it valid.
            log.warning("dropped a message without a valid operation name")
            return
        try:
            with telemetry.continued_from(cloud_event.data["message"].get("attributes")):
                self.run(name)
        except exceptions.GoogleAPICallError as exc:
            log.warning("delivery failed; Pub/Sub will deliver it again", extra=_fields(
                operation=name, reason=errors.reason(exc)))
            raise Redeliver(name) from exc

    @telemetry.traced_run
    def run(self, name: str) -> str:
        """Claims and runs ``name``; returns what happened (for logs and tests)."""
        claim = self._store.claim(name, owner=self._owner, now=self._clock(),
                                  lease_seconds=self._settings.lease_seconds)
        if claim is None:
            log.info("nothing to run: missing, done or held by another worker",
                     extra=_fields(operation=name))
            return "skipped"
        telemetry.claimed(claim.record)
        job = RunningJob(self._store, claim, self._settings, self._clock, self._monotonic)
        stop = threading.Event()
        unsubscribe = (self._store.watch(name, job.observe)
                       if self._settings.cancel_listener else None)
        heartbeat = threading.Thread(target=self._heartbeat, args=(job, claim.lease, stop),
                                     name=f"heartbeat {name}", daemon=True)
        heartbeat.start()
        log.info("running", extra=_fields(operation=name, attempt=claim.record["attempt"]))
        try:
            outcome = self._run_with_retries(job, claim.record)
        finally:
            stop.set()
            if unsubscribe is not None:
                unsubscribe()
            heartbeat.join()
        return self._finish(job, claim.lease, outcome)

    def _run_with_retries(self, job: RunningJob, record: Mapping[str, Any]) -> dict[str, Any]:
        """Runs the handler; retries an unexpected failure with exponential
        backoff (waiting on the cancel event) up to MAX_ATTEMPTS tries."""
        attempt = int(record["attempt"])
        tries = 1
        while True:
            outcome = self._run_handler(job, record)
            if not outcome.pop("retryable", False) or tries >= self._settings.max_attempts:
                return outcome
            delay = self._settings.retry_backoff_seconds * 2 ** (tries - 1)
            tries += 1
            attempt += 1
            job.note_retry(attempt, outcome["error"][1], delay)
            if job.cancelled.wait(delay) or job.lease_lost.is_set():
                return {"cancelled": True}

    def _run_handler(self, job: RunningJob, record: Mapping[str, Any]) -> dict[str, Any]:
        kind = registered().get(record.get("kind", ""))
        if kind is None:
            message = f"Kind {record.get('kind')!r} is not served by this worker."
            return {"error": (code_pb2.UNIMPLEMENTED, message)}
        try:
            job.raise_if_cancelled()
            response = kind.handler(job, dict(record.get("params") or {}))
            return {"response": dict(response or {})}
        except exceptions.Cancelled as exc:
            if job.cancelled.is_set():
                return {"cancelled": True}
            # Nobody asked: a call the handler made was cancelled. Code 1 on the
            # operation means "cancelled by request", so this is a failure.
            return {"error": (code_pb2.CANCELLED, exc.message)}
        except SliceEnded:
            return {"continue": True}
        except exceptions.GoogleAPICallError as exc:
            code = exc.grpc_status_code.value[0] if exc.grpc_status_code else code_pb2.UNKNOWN
            return {"error": (code, exc.message), "retryable": isinstance(exc, _TRANSIENT)}
        except Exception:
            log.exception("handler failed", extra=_fields(operation=job.name))
            return {"error": (code_pb2.INTERNAL, "The job failed with an internal error."),
                    "retryable": True}

    def _continue(self, job: RunningJob, lease: Lease) -> str:
        """Ends this slice: back to QUEUED with the checkpoint saved, lease
        released, and a message for the next invocation to resume it."""
        try:
            self._store.release_for_continuation(job.name, lease, now=self._clock())
        except LeaseLost:
            return "lease_lost"
        if self._publisher is None:
            log.warning("no publisher: the sweep will re-publish this continuation",
                        extra=_fields(operation=job.name))
            return "continued"
        try:
            self._publisher.publish(job.name)
        except exceptions.GoogleAPICallError:
            log.warning("continuation not published; the sweep will re-publish it",
                        extra=_fields(operation=job.name))
        log.info("slice ended; continuing", extra=_fields(operation=job.name))
        return "continued"

    def _finish(self, job: RunningJob, lease: Lease, outcome: dict[str, Any]) -> str:
        if "continue" in outcome and not job.cancelled.is_set():
            return self._continue(job, lease)
        if job.cancelled.is_set() and not job.lease_lost.is_set():
            job.run_cleanups()
        written: list[str] = []

        def changes(record: Mapping[str, Any]) -> dict[str, Any]:
            # A cancel that committed before this transaction wins (DESIGN.md:
            # a running operation that is cancelled ends with code 1).
            now = self._clock()
            if record.get("cancelRequested") or "cancelled" in outcome:
                written[:] = ["cancelled"]
                return model.cancelled_changes(now=now, retention=self._retention)
            if "error" in outcome:
                written[:] = ["failed"]
                code, message = outcome["error"]
                return model.failed_changes(code, message, now=now, retention=self._retention)
            written[:] = ["succeeded"]
            return model.succeeded_changes(outcome["response"], now=now, retention=self._retention)

        if not self._finish_with_retries(job, lease, changes):
            if self._store.get(job.name) is None:
                log.info("deleted while running: result discarded",
                         extra=_fields(operation=job.name))
                return "deleted"
            log.warning("lease lost: the result was not written", extra=_fields(operation=job.name))
            return "lease_lost"
        if written == ["cancelled"]:
            job.run_cleanups()  # a cancel that landed after the handler returned
        log.info("finished", extra=_fields(operation=job.name, outcome=written[0]))
        return written[0]

    def _finish_with_retries(self, job: RunningJob, lease: Lease,
                             changes: Callable[[Mapping[str, Any]], dict[str, Any]]) -> bool:
        """The result of finished work is worth a few tries if the store is
        briefly unavailable; after that the error reaches Pub/Sub, which
        redelivers, and the sweep recovers the operation once the lease expires."""
        for attempt in range(_FINISH_TRIES):
            try:
                return self._store.finish(job.name, lease, changes)
            except (exceptions.ServiceUnavailable, exceptions.Aborted):
                if attempt == _FINISH_TRIES - 1:
                    raise
                log.warning("finalize failed; retrying", extra=_fields(operation=job.name))
                time.sleep(min(8.0, 0.5 * 2 ** attempt))
        return False

    def _heartbeat(self, job: RunningJob, lease: Lease, stop: threading.Event) -> None:
        """Renews the lease and polls for a cancel (the listener's fallback)."""
        while not stop.wait(self._settings.heartbeat_seconds):
            try:
                record = self._store.renew(job.name, lease, now=self._clock(),
                                           lease_seconds=self._settings.lease_seconds)
            except LeaseLost as lost:
                job.lose_lease(lost)
                return
            except exceptions.GoogleAPICallError:
                log.warning("lease renewal failed; retrying", extra=_fields(operation=job.name))
                continue
            job.observe(record)


def _fields(**values: Any) -> dict[str, Any]:
    return {"json_fields": values}
