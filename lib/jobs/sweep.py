"""The recovery sweep: what a dead worker or a lost message left behind.

Run every minute (Cloud Scheduler → Pub/Sub → ``operations_sweep``; a timer in
the local stack). For RUNNING operations whose worker instance's lease expired
it ends those whose cancel was requested (CANCELLED, ``CANCEL_FORCED``: the
handler never stopped by itself) or whose deadline passed (code 4), fails
those that have used up their attempts, and re-publishes the rest (the next
claim takes them over, fenced by a new lease token). It ends QUEUED
operations past their deadline, re-publishes QUEUED operations whose message
seems lost, and forgets dead instances nothing points at any more.
Re-publishing is always safe: a claim is idempotent.
It also publishes lifecycle events still marked pending a while after their
change committed (the process that committed died before publishing them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions
from google.rpc import code_pb2

from lib.core import errors, model
from lib.core.config import Settings
from lib.core.publisher import JobPublisher
from lib.core.store import Lease, OperationStore

log = logging.getLogger("operations.sweep")
BATCH = 500
# The process that commits a change publishes its events within milliseconds;
# a mark older than this was left behind.
PENDING_EVENTS_AGE = timedelta(seconds=30)


class RecoverySweep:
    def __init__(self, store: OperationStore, publisher: JobPublisher, settings: Settings,
                 clock: Callable[[], datetime] = model.utcnow) -> None:
        self._store = store
        self._publisher = publisher
        self._settings = settings
        self._clock = clock
        self._retention = timedelta(days=settings.retention_days)

    def tick(self) -> None:
        """One scheduled pass. A store that cannot be read now skips this pass
        with a warning (the next tick, a minute later, runs it): an old tick
        redelivered would only pile up behind the new ones."""
        try:
            self.run()
        except exceptions.GoogleAPICallError as exc:
            log.warning("sweep skipped; the next tick runs it", extra={"json_fields": {
                "reason": errors.reason(exc)}})

    def run(self) -> dict[str, int]:
        """One pass; returns what it did, by outcome."""
        now = self._clock()
        report = {"republished": 0, "cancelled": 0, "failed": 0, "requeued": 0,
                  "deadline": 0, "errors": 0, "events": 0}
        for record in self._store.stale_running(now, BATCH):
            try:
                outcome = self._recover(record, now)
            except exceptions.GoogleAPICallError as exc:
                # One operation the store could not change (its document
                # locked by a worker frozen mid-transaction, say) must not
                # stop the pass: the next sweep tries it again.
                log.warning("sweep could not recover an operation", extra={"json_fields": {
                    "operation": record["name"], "reason": errors.reason(exc)}})
                outcome = "errors"
            report[outcome] += 1
        for record in self._store.overdue_queued(now, BATCH):
            # A claim ends it too; this is for a message that comes late or never.
            ended = self._store.end_overdue(record["name"], now=now, retention=self._retention)
            report["deadline"] += int(ended)
        stale = now - timedelta(seconds=self._settings.sweep_queued_after_seconds)
        for record in self._store.stale_queued(stale, BATCH):
            report["requeued" if self._publish(record["name"]) else "errors"] += 1
        self._store.forget_dead_instances(now, BATCH)
        report["events"] = self._publish_pending_events(now)
        log.info("sweep done", extra={"json_fields": report})
        return report

    def _recover(self, record: dict[str, Any], now: datetime) -> str:
        name = record["name"]
        lease = Lease(record["lease"]["owner"], record["lease"]["token"])

        def end(changes: Callable[[Mapping[str, Any]], dict[str, Any]]) -> bool:
            return self._store.finish(name, lease, changes, instance_dead_at=now)

        if record.get("cancelRequested"):
            # Its worker died without stopping the handler: a forced end.
            done = end(lambda current: model.cancelled_changes(
                now=self._clock(), retention=self._retention, reason=model.CANCEL_FORCED,
                info=model.cancel_info(current)))
            return "cancelled" if done else "errors"
        deadline = record.get("deadline")
        if deadline is not None and deadline <= now:
            done = end(lambda _current: model.deadline_changes(
                now=self._clock(), retention=self._retention, forced=True))
            return "deadline" if done else "errors"
        tries = int(record.get("attempt", 0)) - int(record.get("continuations", 0))
        if tries >= self._settings.max_attempts:
            message = f"Gave up after {tries} attempts; the last worker was lost."
            done = end(lambda _current: model.failed_changes(
                code_pb2.ABORTED, message, now=self._clock(), retention=self._retention))
            return "failed" if done else "errors"
        return "republished" if self._publish(name) else "errors"

    def _publish_pending_events(self, now: datetime) -> int:
        """Publishes events left marked; returns how many were published."""
        pending = self._store.pending_events(now - PENDING_EVENTS_AGE, BATCH)
        return self._store.deliver_events(pending) if pending else 0

    def _publish(self, name: str) -> bool:
        try:
            self._publisher.publish(name)
            return True
        except exceptions.GoogleAPICallError:
            log.warning("sweep could not re-publish", extra={"json_fields": {"operation": name}})
            return False
