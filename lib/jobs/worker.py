"""The worker: claim an operation, run its kind's handler, honor cancellation,
finalize.

A Pub/Sub message names an operation; the claim (a transaction) makes it
RUNNING under this process's instance lease with a new fencing token. The
process's ``WorkerInstance`` pushes a cancel to the handler's context within
milliseconds, keeps its deadline and grace clocks, and forces the end of a
handler that ignores its cancel. Every write after the claim is fenced by the
token: a worker that lost its lease, or whose handler was forced, writes
nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions
from google.rpc import code_pb2

from lib.core import errors, model, results, telemetry
from lib.core.config import Settings
from lib.core.model import utcnow
from lib.core.publisher import JobPublisher
from lib.core.store import Lease, LeaseLost, OperationStore
from lib.jobs.instance import WorkerInstance
from lib.jobs.running import DEADLINE, LEASE_LOST, RunningJob, SliceEnded, fields
from lib.kinds import registered

log = logging.getLogger("operations.worker")

_FINISH_TRIES = 5

# Handler failures worth another try: anything unexpected, and these codes.
_TRANSIENT = (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded)

__all__ = ["OperationWorker", "Redeliver", "SliceEnded", "job_name"]


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
        self._retention = timedelta(days=settings.retention_days)
        self.instance = WorkerInstance(store, settings, clock, monotonic, owner)

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
            log.warning("delivery failed; Pub/Sub will deliver it again", extra=fields(
                operation=name, reason=errors.reason(exc)))
            raise Redeliver(name) from exc

    @telemetry.traced_run
    def run(self, name: str) -> str:
        """Claims and runs ``name``; returns what happened (for logs and tests):
        ``skipped``, ``succeeded``, ``failed``, ``cancelled``, ``deadline``,
        ``forced``, ``continued``, ``lease_lost`` or ``deleted``."""
        if not self.instance.reserve(name):
            log.info("nothing to run: this process runs it already", extra=fields(operation=name))
            return "skipped"
        try:
            self.instance.ensure_alive()
            claim = self._store.claim(name, owner=self.instance.owner, now=self._clock(),
                                      retention=self._retention)
            kind = registered().get(claim.record.get("kind", "")) if claim else None
            job = (RunningJob(self._store, claim, kind, self._settings, self._clock,
                              self._monotonic) if claim and kind else None)
            if job is not None:
                self.instance.add(job)
        finally:
            self.instance.unreserve(name)
        if claim is None:
            log.info("nothing to run: missing, done, past its deadline or held by a live worker",
                     extra=fields(operation=name))
            return "skipped"
        telemetry.claimed(claim.record)
        if job is None:
            return self._finish_unrunnable(name, claim.lease, claim.record.get("kind"))
        try:
            if claim.record.get("cancelRequested"):
                job.observe(claim.record)
            log.info("running", extra=fields(operation=name, attempt=claim.record["attempt"]))
            outcome = self._run_with_retries(job, claim.record)
            return self._finish(job, outcome)
        finally:
            self.instance.remove(job)

    def _run_with_retries(self, job: RunningJob, record: Mapping[str, Any]) -> dict[str, Any]:
        """Runs the handler; retries an unexpected failure with exponential
        backoff (waiting on the cancel event) up to MAX_ATTEMPTS tries."""
        attempt = int(record["attempt"])
        tries = 1
        while True:
            outcome = self._run_handler(job, record)
            if not outcome.pop("retryable", False) or tries >= self._settings.max_attempts:
                break
            delay = self._settings.retry_backoff_seconds * 2 ** (tries - 1)
            tries += 1
            attempt += 1
            job.note_retry(attempt, outcome["error"][1], delay)
            if job.cancelled.wait(delay) or job.lease_lost.is_set():
                outcome = {"cancelled": True}
                break
        with job.lock:
            # From here a cancel is too late to change the outcome: what the
            # handler returned is written, and its cleanups do not run.
            job.returned = True
        return outcome

    def _run_handler(self, job: RunningJob, record: Mapping[str, Any]) -> dict[str, Any]:
        try:
            job.raise_if_cancelled()
            response = job.kind.handler(job, dict(record.get("params") or {}))
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
            log.exception("handler failed", extra=fields(operation=job.name))
            return {"error": (code_pb2.INTERNAL, "The job failed with an internal error."),
                    "retryable": True}
        try:
            return {"response": results.check_response(response)}
        except results.UnstorableValue as exc:
            # Never retried: running the handler again cannot make it fit.
            log.warning("the job's response cannot be stored", extra=fields(
                operation=job.name, problem=str(exc)))
            return {"error": (code_pb2.INTERNAL, str(exc))}

    def _finish(self, job: RunningJob, outcome: dict[str, Any]) -> str:
        """Writes the outcome, fenced by the lease, unless the handler was
        forced (its end is written already) or its lease is gone."""
        if job.forced:
            log.info("a forced handler returned; its outcome is discarded",
                     extra=fields(operation=job.name))
            return "forced"
        cancellation = job.cancellation
        stopped = cancellation is not None and cancellation.cause != LEASE_LOST
        if "continue" in outcome and not stopped:
            return self._continue(job)
        if stopped and not job.lease_lost.is_set():
            job.run_cleanups()
        ack = job.unwritten_ack()
        written: list[str] = []

        def changes(record: Mapping[str, Any]) -> dict[str, Any]:
            now = self._clock()
            if stopped and cancellation is not None and cancellation.cause == DEADLINE:
                written[:] = ["deadline"]
                ended = model.deadline_changes(now=now, retention=self._retention)
            elif stopped:
                written[:] = ["cancelled"]
                ended = model.cancelled_changes(now=now, retention=self._retention,
                                                info=model.cancel_info(record))
            elif "error" in outcome:
                written[:] = ["failed"]
                code, message = outcome["error"]
                ended = model.failed_changes(code, message, now=now, retention=self._retention)
            elif "cancelled" in outcome:
                written[:] = ["lease_lost"]  # stopped because the lease was lost
                ended = model.cancelled_changes(now=now, retention=self._retention,
                                                info=model.cancel_info(record))
            else:
                # Too late is too late: a cancel that committed after the
                # handler returned does not discard its result.
                written[:] = ["succeeded"]
                ended = model.succeeded_changes(outcome["response"], now=now,
                                                retention=self._retention)
            return {**ended, **ack}

        job.finishing = True
        if not self._finish_with_retries(job, changes):
            if self._store.get(job.name) is None:
                log.info("deleted while running: result discarded",
                         extra=fields(operation=job.name))
                return "deleted"
            log.warning("lease lost: the result was not written", extra=fields(operation=job.name))
            return "lease_lost"
        log.info("finished", extra=fields(operation=job.name, outcome=written[0]))
        return written[0]

    def _finish_unrunnable(self, name: str, lease: Lease, kind: Any) -> str:
        message = f"Kind {kind!r} is not served by this worker."
        self._store.finish(name, lease, lambda _record: model.failed_changes(
            code_pb2.UNIMPLEMENTED, message, now=self._clock(), retention=self._retention))
        log.warning("unknown kind", extra=fields(operation=name, kind=str(kind)))
        return "failed"

    def _continue(self, job: RunningJob) -> str:
        """Ends this slice: back to QUEUED with the checkpoint saved, lease
        released, and a message for the next invocation to resume it."""
        job.finishing = True
        try:
            self._store.release_for_continuation(job.name, job.lease, now=self._clock())
        except LeaseLost:
            return "lease_lost"
        if self._publisher is None:
            log.warning("no publisher: the sweep will re-publish this continuation",
                        extra=fields(operation=job.name))
            return "continued"
        try:
            self._publisher.publish(job.name)
        except exceptions.GoogleAPICallError:
            log.warning("continuation not published; the sweep will re-publish it",
                        extra=fields(operation=job.name))
        log.info("slice ended; continuing", extra=fields(operation=job.name))
        return "continued"

    def _finish_with_retries(self, job: RunningJob,
                             changes: Callable[[Mapping[str, Any]], dict[str, Any]]) -> bool:
        """The result of finished work is worth a few tries if the store is
        briefly unavailable; after that the error reaches Pub/Sub, which
        redelivers, and the sweep recovers the operation once the lease expires."""
        for attempt in range(_FINISH_TRIES):
            try:
                return self._store.finish(job.name, job.lease, changes)
            except (exceptions.ServiceUnavailable, exceptions.Aborted):
                if attempt == _FINISH_TRIES - 1:
                    raise
                log.warning("finalize failed; retrying", extra=fields(operation=job.name))
                time.sleep(min(8.0, 0.5 * 2 ** attempt))
        return False
