"""Firestore: the operations collection. Every transaction body lives here.

Transaction bodies read first, then write, and do nothing else: the client
re-runs them on contention. Each decides what to write with a pure function of
``lib.core.model``. Firestore's own exceptions stop here: callers see
``google.api_core.exceptions`` classes and the ``LeaseLost`` of this module.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import google.auth.exceptions
from google.api_core import exceptions, gapic_v1
from google.api_core import retry as retries
from google.cloud import firestore
from google.cloud.firestore_v1 import document as firestore_document
from google.cloud.firestore_v1 import watch as firestore_watch
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.services.firestore.transports import base as firestore_base

from lib.core import errors, model, telemetry
from lib.core import events as lifecycle

log = logging.getLogger("operations.store")

log = logging.getLogger("operations.store")

_ABORT_RETRIES = 6
# The collection of create request ids (AIP-155), next to the operations one.
REQUESTS_SUFFIX = "-requests"
# Each instance's cancel inbox, a subcollection of its lease document. An
# entry the instance did not live to delete goes when the sweep forgets the
# instance, or when a TTL policy on ``expireTime`` deletes it.
INBOX_SUFFIX = "-cancels"
INBOX_TTL = timedelta(days=1)
# A List call that reads on past its first chunk (its filter is checked in
# memory) stops once its further reads took this share of the first one's time.
SCAN_FURTHER_SHARE = 0.75


def request_key(principal: str, parent: str, request_id: str) -> str:
    """The document id of a create's ``requestId``: scoped to who asked and
    where, so another caller's identical id is another key."""
    scoped = json.dumps([principal, parent, request_id], separators=(",", ":"))
    return hashlib.sha256(scoped.encode()).hexdigest()


def continuation_changes(now: datetime) -> dict[str, Any]:
    """Back to QUEUED with the lease released and one more continuation counted
    (a server-side increment)."""
    return {"state": model.State.QUEUED.value, "lease": None,
            "continuations": firestore.Increment(1),
            "statusMessage": "Continuing in a new invocation.", "updateTime": now}


class DeleteResult(enum.Enum):
    NOT_FOUND = "not_found"
    DELETED = "deleted"


class CancelResult(enum.Enum):
    NOT_FOUND = "not_found"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    NOT_CANCELLABLE = "not_cancellable"  # not done, and its kind may not be cancelled


class LeaseLost(Exception):
    """The worker's lease is gone: it must write nothing more.

    ``deleted`` tells a deleted operation (its work goes on, unobserved:
    DeleteOperation does not cancel) from one that was taken over or finished
    by someone else (the handler must stop)."""

    def __init__(self, message: str, deleted: bool = False) -> None:
        super().__init__(message)
        self.deleted = deleted


@dataclass(frozen=True)
class Page:
    """One page of a list: the records, and where the next page starts (the
    last record returned, or the last document read when the scan limit
    stopped a filtered scan first: AIP-158 allows a short page); None at the end."""

    records: list[dict[str, Any]]
    next_after: tuple[datetime, str] | None = None

    @property
    def has_more(self) -> bool:
        return self.next_after is not None


@dataclass(frozen=True)
class Lease:
    owner: str
    token: int


@dataclass(frozen=True)
class Claim:
    """A running operation this worker holds the lease of."""

    record: dict[str, Any]
    lease: Lease


class Unsubscribe(Protocol):
    def __call__(self) -> None: ...


class Listener(Protocol):
    """A running query listener."""

    def wait_current(self, timeout: float) -> bool:
        """True once the listener had its first snapshot: from then on every
        change reaches it; False if that took longer than ``timeout``."""

    def alive(self) -> bool: ...
    def close(self) -> None: ...


class EventSink(Protocol):
    """Where lifecycle events go (lib.core.publisher.PubSubEventPublisher)."""

    def publish_events(self, messages: Sequence[lifecycle.EventMessage]) -> int:
        """Publishes ``messages`` in order; returns how many were published."""


class OperationStore(Protocol):
    """What the service and the worker need from storage."""

    def get(self, name: str) -> dict[str, Any] | None: ...
    def create(self, record: Mapping[str, Any]) -> None: ...
    def discard_unstarted(self, name: str) -> dict[str, Any] | None: ...
    def create_once(self, record: Mapping[str, Any], *, request_key: str, now: datetime,
                    ttl: timedelta) -> tuple[dict[str, Any], bool]: ...
    def cancel(self, name: str, *, principal: str, now: datetime,
               retention: timedelta, reason: str = "",
               cancellable: Callable[[str], bool] | None = None) -> CancelResult: ...
    def claim(self, name: str, *, owner: str, now: datetime,
              retention: timedelta) -> Claim | None: ...
    def renew_instance(self, owner: str, *, now: datetime, lease_seconds: float) -> None: ...
    def update_running(self, name: str, lease: Lease, changes: Mapping[str, Any]) -> None: ...
    def release_for_continuation(self, name: str, lease: Lease, *, now: datetime) -> None: ...
    def finish(self, name: str, lease: Lease,
               changes: Callable[[Mapping[str, Any]], dict[str, Any]],
               instance_dead_at: datetime | None = None) -> bool: ...
    def delete(self, name: str, *, now: datetime) -> DeleteResult: ...
    def list_page(self, parent: str, *, matches: Callable[[Mapping[str, Any]], bool],
                  equalities: Mapping[str, Any], bounds: list[tuple[str, datetime]],
                  size: int, after: tuple[datetime, str] | None, now: datetime,
                  scan_limit: int = 1000) -> Page: ...
    def stale_running(self, now: datetime, limit: int) -> list[dict[str, Any]]: ...
    def stale_queued(self, updated_before: datetime, limit: int) -> list[dict[str, Any]]: ...
    def overdue_queued(self, now: datetime, limit: int) -> list[dict[str, Any]]: ...
    def end_overdue(self, name: str, *, now: datetime, retention: timedelta) -> bool: ...
    def forget_dead_instances(self, now: datetime, limit: int) -> int: ...
    def watch(self, name: str,
              on_change: Callable[[dict[str, Any] | None], None]) -> Unsubscribe: ...
    def watch_held(self, owner: str,
                   on_change: Callable[[str, dict[str, Any] | None], None]) -> Listener: ...
    def cancels_held(self, owner: str) -> list[dict[str, Any]]: ...
    def clear_inbox(self, owner: str, names: Sequence[str]) -> None: ...
    def get_many(self, names: Sequence[str]) -> dict[str, dict[str, Any] | None]: ...
    def pending_events(self, marked_before: datetime,
                       limit: int) -> list[lifecycle.EventMessage]: ...
    def deliver_events(self, messages: Sequence[lifecycle.EventMessage]) -> int: ...


class AccessCounter:
    """Counts document reads and writes (benchmarks and cost figures)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reads = 0
        self.writes = 0

    def add(self, reads: int = 0, writes: int = 0) -> None:
        with self._lock:
            self.reads += reads
            self.writes += writes


def bound_deadlines(client: firestore.Client, seconds: float) -> None:
    """Gives every unary Firestore call ``client`` makes a deadline of ``seconds``
    and a retry on transient codes only, within that deadline.

    The generated defaults are 60-300 s per call, retried, and the transaction
    calls (begin, commit, rollback) take no per-call timeout at all, so a
    stalled Firestore would hold a request for minutes. The streams (Listen,
    Write) keep theirs: a listener lives as long as it is needed.
    """
    transport = client._firestore_api._transport
    streams = {transport.listen, transport.write}
    retry = retries.Retry(initial=0.05, maximum=1.0, multiplier=2.0, timeout=seconds,
                          predicate=retries.if_transient_error)
    for method in list(transport._wrapped_methods):
        if method in streams:
            continue
        transport._wrapped_methods[method] = gapic_v1.method.wrap_method(
            method, default_retry=retry, default_timeout=seconds,
            client_info=firestore_base.DEFAULT_CLIENT_INFO)


class FirestoreOperationStore:
    """OperationStore on a Firestore collection (one document per operation)."""

    def __init__(self, client: firestore.Client, collection: str,
                 deadline_seconds: float | None = None,
                 abort_retries: int = _ABORT_RETRIES,
                 events: EventSink | None = None) -> None:
        if deadline_seconds is not None:
            bound_deadlines(client, deadline_seconds)
        self._client = client
        self._events = events  # None: lifecycle events are off, nothing is marked
        self._abort_retries = abort_retries
        self._collection = client.collection(collection)
        # One document per worker instance (process): its lease. The jobs it
        # runs point at it (``lease.owner``), so one write per heartbeat keeps
        # all of them alive; each job keeps its own fencing token.
        self._instances = client.collection(f"{collection}-instances")
        # Under each instance document, its cancel inbox: an entry per cancel
        # of a job it runs, written in the cancel's transaction and deleted
        # by the instance once it has passed the cancel on. The instance
        # listens to this small set, not to the operations.
        self._inbox_id = f"{collection}{INBOX_SUFFIX}"
        # Lifecycle events waiting to be published (lib/core/events.py).
        self._outbox = client.collection(collection + lifecycle.OUTBOX_SUFFIX)
        self._requests = client.collection(collection + REQUESTS_SUFFIX)
        self.counter = AccessCounter()

    def _ref(self, name: str) -> firestore.DocumentReference:
        return self._collection.document(model.document_id(name))

    def _inbox(self, owner: str) -> firestore.CollectionReference:
        return self._instances.document(owner).collection(self._inbox_id)

    def get(self, name: str) -> dict[str, Any] | None:
        with _translated():
            snapshot = self._ref(name).get()
        self.counter.add(reads=1)
        return _record(snapshot)

    def create(self, record: Mapping[str, Any]) -> None:
        # A create is one atomic commit with an exists=false precondition: it
        # needs no transaction of its own.
        with _translated():
            self._ref(record["name"]).create(dict(record))
        self.counter.add(writes=1)

    def create_once(self, record: Mapping[str, Any], *, request_key: str, now: datetime,
                    ttl: timedelta) -> tuple[dict[str, Any], bool]:
        """Creates ``record`` unless ``request_key`` already made an operation
        that is still there: then returns that one. (record, created).

        One transaction writes the key (kept ``ttl``, for a TTL policy on its
        ``expireTime``) and the operation together, so two concurrent first
        calls make exactly one operation. A new key costs one read.
        """
        return self._run(_create_once, self._ref(record["name"]),
                         self._requests.document(request_key), dict(record), now, ttl)

    def discard_unstarted(self, name: str) -> dict[str, Any] | None:
        """Deletes a job that no worker has touched (its publish failed).

        Returns None when the document is gone (deleted now, or before), else
        the record as it is: a worker claimed it (``attempt`` > 0) or it moved
        on from QUEUED, so it exists and was kept.
        """
        result: dict[str, Any] | None = self._run(_discard_unstarted, self._ref(name))
        return result

    def cancel(self, name: str, *, principal: str, now: datetime,
               retention: timedelta, reason: str = "",
               cancellable: Callable[[str], bool] | None = None) -> CancelResult:
        """Requests the cancel in one transaction, recording who asked and why.

        ``cancellable(kind)`` False refuses it (NOT_CANCELLABLE) unless the
        operation is done, decided on the same read.
        """
        return self._run(_cancel, self._ref(name), principal, now, retention, reason,
                         cancellable, self._inbox)

    def claim(self, name: str, *, owner: str, now: datetime,
              retention: timedelta) -> Claim | None:
        """QUEUED (or RUNNING under a dead instance) → RUNNING under ``owner``,
        with a new fencing token. None when there is nothing to run: missing,
        done, held by a live instance, or past its deadline (then ended so)."""
        return self._run(_claim, self._ref(name), self._instances, owner, now, retention)

    def renew_instance(self, owner: str, *, now: datetime, lease_seconds: float) -> None:
        """Extends the lease of every job ``owner`` runs: one write."""
        expires = now + timedelta(seconds=lease_seconds)
        with _translated():
            self._instances.document(owner).set(
                {"owner": owner, "expireTime": expires,
                 # For a Firestore TTL policy: a dead instance's document goes too.
                 "deleteTime": expires + timedelta(days=1)})
        self.counter.add(writes=1)

    def update_running(self, name: str, lease: Lease, changes: Mapping[str, Any]) -> None:
        self._run(_update_running, self._ref(name), lease, dict(changes))

    def release_for_continuation(self, name: str, lease: Lease, *, now: datetime) -> None:
        """The slice ended: the next invocation resumes from the checkpoint."""
        self.update_running(name, lease, continuation_changes(now))

    def finish(self, name: str, lease: Lease,
               changes: Callable[[Mapping[str, Any]], dict[str, Any]],
               instance_dead_at: datetime | None = None) -> bool:
        """Writes ``changes(record)`` if ``lease`` still holds the operation (and,
        with ``instance_dead_at``, only if the holder's instance lease had
        expired by then: the sweep never ends the work of a live worker)."""
        instances = self._instances if instance_dead_at is not None else None
        return self._run(_finish, self._ref(name), lease, changes, instances, instance_dead_at)

    def delete(self, name: str, *, now: datetime) -> DeleteResult:
        return self._run(_delete, self._ref(name), now)

    def list_page(self, parent: str, *, matches: Callable[[Mapping[str, Any]], bool],
                  equalities: Mapping[str, Any], bounds: list[tuple[str, datetime]],
                  size: int, after: tuple[datetime, str] | None, now: datetime,
                  scan_limit: int = 1000) -> Page:
        """Up to ``size`` live operations of ``parent`` that ``matches``, newest
        first, strictly after the ``(createTime, document id)`` cursor.

        Keyset pagination: the cursor goes into the query (``start_after``), so
        page 200 costs what page 1 costs. Equalities and createTime bounds run
        in Firestore; ``matches`` re-checks everything in memory, reading on in
        chunks while the filter rejects documents. A call that has to read on
        stops once those further reads have taken ``SCAN_FURTHER_SHARE`` of
        its first read's time (so it answers in well under twice the time of
        a page Firestore filters), or at ``scan_limit`` documents (or
        ``size + 1``, if larger): a filter that matches little then gives a
        short page that continues.
        """
        query = self._collection.where(filter=FieldFilter("parent", "==", parent))
        for path, value in equalities.items():
            query = query.where(filter=FieldFilter(path, "==", value))
        for op, value in bounds:
            query = query.where(filter=FieldFilter("createTime", op, value))
        query = (query.order_by("createTime", direction=firestore.Query.DESCENDING)
                 .order_by("__name__", direction=firestore.Query.DESCENDING))
        found: list[dict[str, Any]] = []
        budget = max(scan_limit, size + 1)
        chunk = size + 1
        cursor = after
        stop_at: float | None = None
        while True:
            page = query
            if cursor is not None:
                page = page.start_after({"createTime": cursor[0],
                                         "__name__": self._collection.document(cursor[1])})
            started = time.monotonic()
            with _translated():
                snapshots = list(page.limit(chunk).stream())
            took = time.monotonic() - started
            if stop_at is None:
                stop_at = started + (1 + SCAN_FURTHER_SHARE) * took
            self.counter.add(reads=max(1, len(snapshots)))
            budget -= len(snapshots)
            for snapshot in snapshots:
                record = snapshot.to_dict() or {}
                if matches(record) and not model.is_expired(record, now):
                    found.append(record)
                    if len(found) > size:
                        last_found = found[size - 1]
                        return Page(found[:size], (last_found["createTime"],
                                                   model.document_id(last_found["name"])))
            if len(snapshots) < chunk:
                return Page(found)
            last = snapshots[-1]
            cursor = (last.get("createTime"), last.id)
            # The next chunk is what the time left reads at this chunk's pace.
            fits = int(len(snapshots) * (stop_at - time.monotonic()) / max(took, 1e-6))
            if budget <= 0 or fits < 1:
                return Page(found, cursor)  # a short page that continues the scan
            chunk = min(chunk * 2, 1000, budget, fits)

    def stale_running(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """RUNNING operations whose instance lease expired: their worker is gone."""
        dead = self._query(self._instances.where(
            filter=FieldFilter("expireTime", "<", now)).limit(limit))
        records: list[dict[str, Any]] = []
        for instance in dead:
            query = (self._collection.where(filter=FieldFilter("lease.owner", "==",
                                                               instance["owner"]))
                     .where(filter=FieldFilter("state", "==", "RUNNING")).limit(limit))
            records += self._query(query)
            if len(records) >= limit:
                break
        return records[:limit]

    def forget_dead_instances(self, now: datetime, limit: int) -> int:
        """Deletes expired instance documents that no operation points at any
        more (their jobs were claimed by others or ended); returns how many."""
        forgotten = 0
        for instance in self._query(self._instances.where(
                filter=FieldFilter("expireTime", "<", now)).limit(limit)):
            held = self._collection.where(filter=FieldFilter(
                "lease.owner", "==", instance["owner"])).limit(1)
            if not self._query(held) and self._run(
                    _forget_instance, self._instances.document(instance["owner"]), now):
                forgotten += 1
                # Inbox entries of jobs that others took over: nobody reads them.
                left = self._query(self._inbox(instance["owner"]).limit(limit))
                if left:
                    self.clear_inbox(instance["owner"], [entry["name"] for entry in left])
        return forgotten

    def overdue_queued(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """QUEUED operations past their deadline: they end without running."""
        query = (self._collection.where(filter=FieldFilter("state", "==", "QUEUED"))
                 .where(filter=FieldFilter("deadline", "<", now)).limit(limit))
        return self._query(query)

    def end_overdue(self, name: str, *, now: datetime, retention: timedelta) -> bool:
        """Ends a QUEUED operation past its deadline (code 4); False if it is
        not (any more) both."""
        return self._run(_end_overdue, self._ref(name), now, retention)

    def stale_queued(self, updated_before: datetime, limit: int) -> list[dict[str, Any]]:
        """QUEUED operations, new or continuing, unclaimed for longer than a
        publish should take."""
        query = (self._collection.where(filter=FieldFilter("state", "==", "QUEUED"))
                 .where(filter=FieldFilter("updateTime", "<", updated_before)).limit(limit))
        return self._query(query)

    def _query(self, query: Any) -> list[dict[str, Any]]:
        with _translated():
            records = [snapshot.to_dict() for snapshot in query.stream()]
        self.counter.add(reads=max(1, len(records)))
        return records

    def watch(self, name: str, on_change: Callable[[dict[str, Any] | None], None]) -> Unsubscribe:
        """Calls ``on_change`` with the document (None once deleted) on every change."""

        def on_snapshot(snapshots: list[Any], _changes: Any, _read_time: Any) -> None:
            for snapshot in snapshots:
                on_change(_record(snapshot))
            if not snapshots:
                on_change(None)

        watch = self._ref(name).on_snapshot(on_snapshot)
        return watch.unsubscribe

    def watch_held(self, owner: str,
                   on_change: Callable[[str, dict[str, Any] | None], None]) -> Listener:
        """One listener for the cancels of the operations ``owner`` holds (its
        cancel inbox): ``on_change(name, record)`` with the cancel's fields and
        the lease it was requested under; ``record`` None once the entry is
        gone (``clear_inbox``).

        The inbox, not the operations: the client re-sorts a listener's whole
        result set in Python on every change, and the Firestore emulator
        evaluates a listener's query against every write to its collection
        (measured: 5-20 times fewer transactions per second on the operations
        while a query listener on them was open). A takeover needs the
        instance lease to lapse; the instance checks its jobs when that may
        have happened (``WorkerInstance``).
        """

        current = threading.Event()

        def on_snapshot(_snapshots: list[Any], changes: list[Any], _read_time: Any) -> None:
            current.set()
            for change in changes:
                record = change.document.to_dict() or {}
                name = record.get("name")
                if isinstance(name, str):
                    on_change(name, None if change.type.name == "REMOVED" else record)

        query = self._inbox(owner).where(filter=FieldFilter("cancelRequested", "==", True))
        return _QueryListener(_UnorderedWatch.for_query(query, on_snapshot,
                                                        firestore_document.DocumentSnapshot),
                              current)

    def cancels_held(self, owner: str) -> list[dict[str, Any]]:
        """The listener's fallback: ``owner``'s cancel inbox, read once
        (usually empty: one read). The inbox is written in each cancel's own
        transaction, so it holds every cancel of a job ``owner`` runs that
        the instance has not passed on yet."""
        return self._query(self._inbox(owner))

    def clear_inbox(self, owner: str, names: Sequence[str]) -> None:
        """Deletes ``owner``'s inbox entries of ``names`` (cancels it has
        passed on), in batched writes."""
        inbox = self._inbox(owner)
        for start in range(0, len(names), 500):
            batch = self._client.batch()
            for name in names[start:start + 500]:
                batch.delete(inbox.document(model.document_id(name)))
            with _translated():
                batch.commit()
        self.counter.add(writes=len(names))

    def get_many(self, names: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """The records of ``names`` (None for those that are gone), in one
        batched read."""
        with _translated():
            snapshots = list(self._client.get_all([self._ref(name) for name in names]))
        self.counter.add(reads=max(1, len(snapshots)))
        found: dict[str, dict[str, Any] | None] = dict.fromkeys(names)
        for snapshot in snapshots:
            record = _record(snapshot)
            if record is not None:
                found[record["name"]] = record
        return found

    def _run(self, body: Callable[..., Any], ref: firestore.DocumentReference, *args: Any) -> Any:
        """Runs a transaction body; counts its reads and writes.

        Retries are ours, not the client's: python-firestore retries an aborted
        commit at once, so two transactions that deadlocked on one document
        (a cancel and a progress write, say) collide again and again; and it
        does not retry a read that Firestore aborted (a lock held by a client
        that died mid-transaction ends that way), nor a transaction Firestore
        expired. Here all are retried with jittered exponential backoff, then
        surface as 409 ABORTED.
        """
        for attempt in range(self._abort_retries + 1):
            transaction = self._client.transaction(max_attempts=1)
            outbox = _Outbox(self._outbox if self._events is not None else None)
            token = _outbox.set(outbox)
            try:
                with _translated():
                    result, writes = body(transaction, ref, *args)
                break
            except exceptions.Aborted:
                if attempt == self._abort_retries:
                    raise
                time.sleep(min(1.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))
            finally:
                _outbox.reset(token)
        self.counter.add(reads=1, writes=writes)
        if outbox.committed:
            self._committed_events(outbox.committed)
        return result

    # Lifecycle events (lib/core/events.py): marked in the transaction that makes
    # them, published after its commit by the process that committed.

    def _committed_events(self, messages: list[lifecycle.EventMessage]) -> None:
        for message in messages:
            if message.event_type == lifecycle.DONE:
                telemetry.record_ended(message.attributes["kind"],
                                       int(message.attributes.get("code", 0)))
        if self._events is not None:
            self.counter.add(writes=len(messages))  # the marks, in the same commit
            self.deliver_events(messages)

    def pending_events(self, marked_before: datetime,
                       limit: int) -> list[lifecycle.EventMessage]:
        """Events marked before ``marked_before`` and not yet published (the
        process that marked them died, or their publish failed)."""
        query = self._outbox.where(
            filter=FieldFilter("markedAt", "<", marked_before)).limit(limit)
        with _translated():
            found = [lifecycle.from_outbox(snapshot.to_dict() or {}) for snapshot in query.stream()]
        self.counter.add(reads=max(1, len(found)))
        return lifecycle.in_order(found)

    def deliver_events(self, messages: Sequence[lifecycle.EventMessage]) -> int:
        """Publishes ``messages`` (in order within each operation) and deletes
        the marks of those published; returns how many were published."""
        if self._events is None:
            return 0
        published = 0
        by_operation: dict[str, list[lifecycle.EventMessage]] = {}
        for message in messages:
            by_operation.setdefault(message.operation, []).append(message)
        for batch in by_operation.values():
            try:
                count = self._events.publish_events(batch)
            except Exception as exc:
                # The change is committed: its caller must not fail for this.
                log.warning("events not published; the sweep will publish them", extra={
                    "json_fields": {"operation": batch[0].operation,
                                    "error": type(exc).__name__}})
                continue
            published += count
            for message in batch[:count]:
                try:
                    with _translated():
                        self._outbox.document(lifecycle.outbox_id(message)).delete()
                    self.counter.add(writes=1)
                except exceptions.GoogleAPICallError as exc:
                    # Published but still marked: the sweep publishes it
                    # again, and consumers dedupe on (operation, eventType).
                    log.warning("event mark not cleared", extra={"json_fields": {
                        "operation": message.operation, "reason": errors.reason(exc)}})
        return published


class _UnorderedWatch(firestore_watch.Watch):
    """A query listener that orders its result set by document path alone.

    python-firestore re-sorts a listener's whole result set on every
    snapshot with the query's comparator, which builds protobuf messages on
    each comparison (tens of microseconds); the instance never reads the
    order, and a burst of cancels made that sort the worker's busiest code.
    """

    def __init__(self, document_reference: Any, firestore: Any, target: Any, _comparator: Any,
                 snapshot_callback: Any, document_snapshot_cls: Any) -> None:
        super().__init__(document_reference, firestore, target, _by_path, snapshot_callback,
                         document_snapshot_cls)


def _by_path(first: Any, second: Any) -> int:
    a, b = first.reference._document_path, second.reference._document_path
    return (a > b) - (a < b)


class _QueryListener:
    """A Firestore Watch as a Listener. A stream the client cannot resume
    (an error it does not retry, a message it cannot parse) closes the Watch;
    ``alive`` then says so, and the owner starts a new one."""

    def __init__(self, watch: Any, current: threading.Event) -> None:
        self._watch = watch
        self._current = current

    def wait_current(self, timeout: float) -> bool:
        return self._current.wait(timeout)

    def alive(self) -> bool:
        return not self._watch._closed

    def close(self) -> None:
        self._watch.unsubscribe()


def _record(snapshot: Any) -> dict[str, Any] | None:
    """The document as a record, None when there is none."""
    return snapshot.to_dict() if snapshot.exists else None


@dataclass
class _Outbox:
    """The events one transaction attempt marks (in ``collection``, when
    events are on), published once it commits."""

    collection: firestore.CollectionReference | None
    committed: list[lifecycle.EventMessage] = field(default_factory=list)


_outbox: ContextVar[_Outbox | None] = ContextVar("operations_outbox", default=None)


def _update_state(transaction: firestore.Transaction, ref: firestore.DocumentReference,
                  record: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
    """``transaction.update(ref, changes)``, and in the same commit a mark in
    the outbox for each lifecycle event the change makes."""
    transaction.update(ref, dict(changes))
    outbox = _outbox.get()
    types = lifecycle.events_for(record, changes)
    if not types or outbox is None:
        return
    after = {**record, **changes}
    for event in types:
        message = lifecycle.message(after, event)
        outbox.committed.append(message)
        if outbox.collection is not None:
            transaction.set(outbox.collection.document(lifecycle.outbox_id(message)),
                            {**lifecycle.outbox_document(message),
                             "markedAt": firestore.SERVER_TIMESTAMP})


def _live_record(snapshot: Any, now: datetime) -> dict[str, Any] | None:
    """The record, None when missing or past its retention (as good as gone)."""
    record = _record(snapshot)
    return None if record is None or model.is_expired(record, now) else record


# Transaction bodies: each returns (result, number of writes).


@firestore.transactional
def _cancel(transaction: firestore.Transaction, ref: firestore.DocumentReference,
            principal: str, now: datetime, retention: timedelta, reason: str,
            cancellable: Callable[[str], bool] | None,
            inbox: Callable[[str], firestore.CollectionReference]) -> tuple[CancelResult, int]:
    record = _live_record(ref.get(transaction=transaction), now)
    if record is None:
        return CancelResult.NOT_FOUND, 0
    if (not record.get("done") and cancellable is not None
            and not cancellable(str(record.get("kind", "")))):
        return CancelResult.NOT_CANCELLABLE, 0
    changes = model.cancel_changes(record, principal=principal, now=now, retention=retention,
                                   reason=reason)
    if changes is None:
        return CancelResult.UNCHANGED, 0
    _update_state(transaction, ref, record, changes)
    after = {**record, **changes}
    lease = after.get("lease") or {}
    if after.get("done") or not lease.get("owner"):
        return CancelResult.CHANGED, 1
    # Running: the holder's instance hears of it through its inbox.
    transaction.set(inbox(lease["owner"]).document(model.document_id(after["name"])), {
        "name": after["name"], "lease": lease,
        **{field: after[field] for field in model.CANCEL_REQUEST_FIELDS},
        "expireTime": now + INBOX_TTL})
    return CancelResult.CHANGED, 2


@firestore.transactional
def _create_once(transaction: firestore.Transaction, ref: firestore.DocumentReference,
                 key_ref: firestore.DocumentReference, record: dict[str, Any], now: datetime,
                 ttl: timedelta) -> tuple[tuple[dict[str, Any], bool], int]:
    key = _record(key_ref.get(transaction=transaction))
    if key is not None and isinstance(key.get("expireTime"), datetime) \
            and key["expireTime"] > now and isinstance(key.get("operation"), str):
        first = ref.parent.document(model.document_id(key["operation"]))
        existing = _live_record(first.get(transaction=transaction), now)
        if existing is not None:
            return (existing, False), 0
        # Its operation is gone (its publish failed, or it was deleted): the
        # request is new again.
    transaction.set(key_ref, {"operation": record["name"], "createTime": now,
                              "expireTime": now + ttl})
    transaction.create(ref, record)
    return (record, True), 2


@firestore.transactional
def _discard_unstarted(transaction: firestore.Transaction,
                       ref: firestore.DocumentReference) -> tuple[dict[str, Any] | None, int]:
    record = _record(ref.get(transaction=transaction))
    if record is None:
        return None, 0
    if record.get("state") != model.State.QUEUED.value or record.get("attempt"):
        return record, 0  # claimed (or done): it exists and is kept
    transaction.delete(ref)
    return None, 1


@firestore.transactional
def _claim(transaction: firestore.Transaction, ref: firestore.DocumentReference,
           instances: firestore.CollectionReference, owner: str, now: datetime,
           retention: timedelta) -> tuple[Claim | None, int]:
    record = _record(ref.get(transaction=transaction))
    if record is None or record.get("done"):
        return None, 0
    lease = record.get("lease") or {}
    if record.get("state") == model.State.RUNNING.value and lease and lease["owner"] != owner:
        holder = _record(instances.document(lease["owner"]).get(transaction=transaction))
        if holder is not None and holder["expireTime"] > now:
            return None, 0  # a live instance runs it: a duplicate delivery does no work
    # Held by this very instance, which runs no such job (the worker checks
    # first): an earlier claim whose commit landed after its caller gave up.
    # Taken again, with a new token, rather than left RUNNING while we live.
    deadline = record.get("deadline")
    if deadline is not None and deadline <= now:
        _update_state(transaction, ref, record,
                      model.deadline_changes(now=now, retention=retention))
        return None, 1
    token = int(lease.get("token", 0)) + 1
    changes = {
        "state": model.State.RUNNING.value,
        "attempt": int(record.get("attempt", 0)) + 1,
        "lease": {"owner": owner, "token": token},
        "claimTime": now,
        "statusMessage": "Running.",
        "updateTime": now,
    }
    _update_state(transaction, ref, record, changes)
    return Claim(record={**record, **changes}, lease=Lease(owner, token)), 1


@firestore.transactional
def _end_overdue(transaction: firestore.Transaction, ref: firestore.DocumentReference,
                 now: datetime, retention: timedelta) -> tuple[bool, int]:
    record = _record(ref.get(transaction=transaction))
    if (record is None or record.get("state") != model.State.QUEUED.value
            or record.get("deadline") is None or record["deadline"] > now):
        return False, 0
    _update_state(transaction, ref, record,
                      model.deadline_changes(now=now, retention=retention))
    return True, 1


@firestore.transactional
def _forget_instance(transaction: firestore.Transaction, ref: firestore.DocumentReference,
                     now: datetime) -> tuple[int, int]:
    instance = _record(ref.get(transaction=transaction))
    if instance is None or instance["expireTime"] >= now:
        return 0, 0  # renewed meanwhile: it is alive after all
    transaction.delete(ref)
    return 1, 1


@firestore.transactional
def _delete(transaction: firestore.Transaction, ref: firestore.DocumentReference,
            now: datetime) -> tuple[DeleteResult, int]:
    record = _live_record(ref.get(transaction=transaction), now)
    if record is None:
        return DeleteResult.NOT_FOUND, 0
    transaction.delete(ref)
    return DeleteResult.DELETED, 1


def _held(snapshot: Any, lease: Lease) -> dict[str, Any]:
    """The record if ``lease`` still holds it; LeaseLost otherwise."""
    record = _record(snapshot)
    if record is None:
        raise LeaseLost("the operation was deleted", deleted=True)
    if record.get("done"):
        raise LeaseLost("the operation is done")
    held = record.get("lease") or {}
    if held.get("owner") != lease.owner or held.get("token") != lease.token:
        raise LeaseLost("another worker holds the lease")
    return record


@firestore.transactional
def _update_running(transaction: firestore.Transaction, ref: firestore.DocumentReference,
                    lease: Lease, changes: dict[str, Any]) -> tuple[None, int]:
    _held(ref.get(transaction=transaction), lease)
    transaction.update(ref, changes)
    return None, 1


@firestore.transactional
def _finish(transaction: firestore.Transaction, ref: firestore.DocumentReference, lease: Lease,
            changes: Callable[[Mapping[str, Any]], dict[str, Any]],
            instances: firestore.CollectionReference | None,
            instance_dead_at: datetime | None) -> tuple[bool, int]:
    try:
        record = _held(ref.get(transaction=transaction), lease)
    except LeaseLost:
        return False, 0  # done by someone else, deleted, or taken over: write nothing
    if instances is not None and instance_dead_at is not None:
        holder = _record(instances.document(lease.owner).get(transaction=transaction))
        if holder is not None and holder["expireTime"] > instance_dead_at:
            return False, 0  # the worker renewed its lease after all: it is alive
    _update_state(transaction, ref, record, changes(record))
    return True, 1


# CANCELLED: the call was cut off on the way (the emulator answers an
# overloaded call "call already cancelled"); nothing says a retry would fail.
_UNAVAILABLE = (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable, exceptions.RetryError,
                exceptions.Cancelled)


def _store_unavailable() -> exceptions.GoogleAPICallError:
    return errors.error(exceptions.ServiceUnavailable,
                        "The operations store is unavailable; retry.", "STORE_UNAVAILABLE")


def _contention(message: str = "Too much contention on this operation; retry."
                ) -> exceptions.GoogleAPICallError:
    return errors.error(exceptions.Aborted, message, "CONTENTION")


def translate(exc: Exception) -> Exception:
    """The exception callers see for a failure of a Firestore call.

    UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED (and a retry that ran out of time): 503
    STORE_UNAVAILABLE, which the HTTP edge answers with Retry-After. ABORTED,
    an expired transaction, and the ValueError python-firestore's
    @transactional ends in when it gives up on an aborted commit: 409
    CONTENTION. ALREADY_EXISTS (a create on a taken id): 409, for the caller
    to handle. Everything else (PERMISSION_DENIED or UNAUTHENTICATED for the
    function's own credentials, FAILED_PRECONDITION for a missing index with
    its console URL, the ValueError of the encoder on a value it cannot
    encode, ...) is the service's fault, not the caller's: a generic 500 that
    says nothing of the cause, which is logged here instead. Errors this
    service raised itself (its ErrorInfo domain) and anything that is not a
    failure of the call (LeaseLost, a bug's TypeError...) pass unchanged.
    """
    if isinstance(exc, exceptions.GoogleAPICallError) and exc.domain == errors.DOMAIN:
        return exc  # already ours (raised inside a transaction body)
    if isinstance(exc, _UNAVAILABLE):
        return _store_unavailable()
    if isinstance(exc, exceptions.Aborted):
        return _contention()
    if isinstance(exc, exceptions.AlreadyExists):
        return errors.error(exceptions.AlreadyExists, "The operation already exists.",
                            "ALREADY_EXISTS")
    if isinstance(exc, ValueError):
        # python-firestore's @transactional ends in a ValueError when it gives
        # up on an aborted commit, and when its rollback fails after a call
        # that timed out ("no transaction ID"): the cause tells which.
        if isinstance(exc.__cause__ or exc.__context__, _UNAVAILABLE):
            return _store_unavailable()
        if "transaction" in str(exc).lower():
            return _contention()
    elif isinstance(exc, exceptions.InvalidArgument) and "transaction" in str(exc).lower():
        # Firestore closed the transaction under us (it expires one whose
        # client stalled, after 60 s idle): like an abort, the body runs again
        # in a new one.
        return _contention("The store transaction expired; retry.")
    elif not isinstance(exc, exceptions.GoogleAPIError | google.auth.exceptions.GoogleAuthError):
        return exc
    _log_internal(exc)
    return errors.internal_error()


def _log_internal(exc: Exception) -> None:
    """Logs a store failure that becomes a generic 500: its status and reason
    (the index URL of a FAILED_PRECONDITION included), never a value's text."""
    if isinstance(exc, exceptions.GoogleAPICallError):
        fields = {"status": errors.status_name(exc), "reason": exc.reason or "",
                  "detail": str(exc.message)[:1000]}
    else:  # the encoder's ValueError may quote a stored value, google-auth's a token
        fields = {"status": "INTERNAL", "reason": type(exc).__name__, "detail": ""}
    log.error("Firestore call failed", extra={"json_fields": {"store_error": fields}})


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Maps Firestore's failures to the api-core classes callers handle (``translate``)."""
    try:
        yield
    except Exception as exc:
        translated = translate(exc)
        if translated is exc:
            raise
        raise translated from exc
