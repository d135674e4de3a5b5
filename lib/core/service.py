"""The use cases: get, list, cancel, delete, wait, and the example jobs.create.

Callers have already been authenticated and authorized (``lib.edge.api``); this
module decides what happens to operations, through the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions
from google.protobuf import duration_pb2

from lib.core import errors, listing, logs, model, pagination, rendering, telemetry
from lib.core.config import Settings
from lib.core.model import utcnow
from lib.core.publisher import JobPublisher
from lib.core.store import CancelResult, DeleteResult, OperationStore, request_key
from lib.kinds import get_kind, is_cancellable

log = logging.getLogger("operations.service")
# AIP-155: a request id is a UUID, in its canonical 8-4-4-4-12 hex form.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
REQUEST_ID_TTL = timedelta(hours=24)


def page_token_key(settings: Settings) -> bytes:
    """The page-token signing key: PAGE_TOKEN_SECRET, shared by every instance."""
    secret = settings.page_token_secret
    if secret is None:
        log.warning("PAGE_TOKEN_SECRET is not set: page tokens are signed with a key "
                    "derived from the project and collection, which others can derive too")
        secret = f"{settings.project}/{settings.collection}"
    return hashlib.sha256(secret.encode()).digest()


def render(record: Mapping[str, Any]) -> dict[str, Any]:
    """The operation's JSON; a record that cannot be rendered (a response that
    Struct cannot hold, written by an older version) is shown as a done
    operation with an INTERNAL error instead of failing the request, and
    logged once, with its name."""
    try:
        return rendering.operation_json(record)
    except Exception as exc:  # any record, any failure: a read must still answer
        log.warning("stored operation is unreadable; shown as failed", extra={"json_fields": {
            "operation": str(record.get("name", ""))[:model.MAX_NAME_LENGTH],
            "cause": type(exc).__name__}})
        return model.unreadable_operation_json(record)


def not_found(name: str) -> exceptions.GoogleAPICallError:
    return errors.error(exceptions.NotFound, f"Operation {name} was not found.",
                        "OPERATION_NOT_FOUND", name=name)


class OperationsService:
    """The Operations API and the example ``jobs.create`` host method."""

    def __init__(self, store: OperationStore, publisher: JobPublisher, settings: Settings,
                 clock: Callable[[], datetime] = utcnow,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 cancellable: Callable[[str], bool] = is_cancellable) -> None:
        self._store = store
        self._cancellable = cancellable
        self._publisher = publisher
        self._clock = clock
        self._new_id = new_id
        self._retention = timedelta(days=settings.retention_days)
        self._wait_max = settings.wait_max_seconds
        self._scan_limit = settings.list_scan_limit
        self._max_timeout = settings.max_operation_timeout_seconds
        self._token_key = page_token_key(settings)

    def get_operation(self, name: str) -> dict[str, Any]:
        return render(self._live_record(name))

    def _live_record(self, name: str) -> dict[str, Any]:
        """The operation's record; NOT_FOUND when missing or past its retention."""
        record = self._store.get(name)
        if record is None or model.is_expired(record, self._clock()):
            raise not_found(name)
        return record

    def cancel_operation(self, name: str, principal: str, reason: str = "") -> None:
        """Cancel semantics (README "The API"): one transaction that records who
        asked, why and when; a repeat writes nothing."""
        self._link_to_creation(name)
        result = self._store.cancel(name, principal=principal, now=self._clock(),
                                    retention=self._retention, reason=reason,
                                    cancellable=self._cancellable)
        if result is CancelResult.NOT_FOUND:
            raise not_found(name)
        if result is CancelResult.CHANGED:
            telemetry.cancel_event("requested", requested_by=principal)
            telemetry.record_cancel_requested()
        if result is CancelResult.NOT_CANCELLABLE:
            # google.longrunning: "If the server doesn't support this method,
            # it returns google.rpc.Code.UNIMPLEMENTED."
            log.info("cancel refused: kind not cancellable",
                     extra={"json_fields": {"operation": name, "requestedBy": principal,
                                            "reason": reason}})
            raise errors.error(exceptions.MethodNotImplemented,
                               f"Operation {name} cannot be cancelled: its kind runs to "
                               "the end once started.", "CANCEL_NOT_SUPPORTED", name=name)
        # The audit line of the cancel: who asked and why, whatever it changed.
        logs.info(log, "cancel requested" if result is CancelResult.CHANGED
                  else "cancel: no change",
                  {"operation": name, "requestedBy": principal, "reason": reason})

    def create_job(self, parent: str, body: Mapping[str, Any], principal: str, *,
                   operation_template: str | None = None,
                   target_template: str | None = None) -> dict[str, Any]:
        """Writes the QUEUED operation, then tells the worker.

        Args:
            parent: where the operation lives (policy and List see this).
            body: ``{"kind", "params", "requestId"?, "timeout"?}``. A
                ``requestId`` seen from ``principal`` on ``parent`` within
                24 h returns the operation it made, and starts nothing.
            principal: who asks.
            operation_template: the new operation's name, ``{id}`` to fill in
                (default ``{parent}/operations/{id}``).
            target_template: the job's resource name, ``{id}`` to fill in.

        If the publish fails, the operation is deleted again and the caller
        gets 503: no orphan is left behind. Unless a worker already claimed it
        (the message got through after all): then it exists and runs, and the
        caller gets it. See ``_after_failed_publish``.
        """
        unknown = sorted(set(body) - {"kind", "params", "requestId", "timeout"})
        if unknown:
            raise errors.invalid_argument(f"Unknown field {unknown[0]!r} in the job.",
                                          "INVALID_JOB")
        kind = get_kind(body.get("kind"))
        params = kind.validate(body.get("params"))
        timeout = self._operation_timeout(body.get("timeout"))
        request_id = _request_id(body.get("requestId"))
        job_id = self._new_id()
        name = (operation_template or f"{parent}/operations/{{id}}").replace("{id}", job_id)
        try:
            model.check_name(name)
        except model.InvalidName:
            raise errors.invalid_argument(
                f"The parent is too long: an operation name may hold at most "
                f"{model.MAX_NAME_LENGTH} characters.", "INVALID_NAME") from None
        now = self._clock()
        record = model.new_job(
            name=name, parent=parent,
            target=(target_template or f"{parent}/jobs/{{id}}").replace("{id}", job_id),
            kind=kind.name, params=params, created_by=principal, now=now,
        )
        trace_context = telemetry.current_traceparent()
        if trace_context:
            record["traceContext"] = trace_context  # later requests link to this trace
        if timeout is not None:
            record["deadline"] = now + timeout
        if request_id is None:
            self._store.create(record)
        else:
            record, created = self._store.create_once(
                record, request_key=request_key(principal, parent, request_id), now=now,
                ttl=REQUEST_ID_TTL)
            if not created:
                log.info("job create repeated: the request id's operation is returned",
                         extra={"json_fields": {"operation": record["name"],
                                                "requestId": request_id}})
                return render(record)
        try:
            self._publisher.publish(record["name"])
        except exceptions.GoogleAPICallError as failure:
            return render(self._after_failed_publish(record, failure))
        telemetry.record_created(kind.name)
        log.info("job queued", extra={"json_fields": {"operation": record["name"],
                                                      "kind": kind.name}})
        return render(record)

    def _after_failed_publish(self, record: dict[str, Any],
                              failure: exceptions.GoogleAPICallError) -> dict[str, Any]:
        """The record to answer with once the publish failed, or ``failure``
        (503: nothing was created) when the operation is really gone.

        Discarded: gone, so 503 is the truth. Kept because a worker claimed it:
        it exists and runs. The discard failed: re-read; only a document that
        is not there is "nothing was created". If even the re-read fails the
        document is there as far as anyone knows (a QUEUED job the sweep
        re-publishes), so it is answered as created.
        """
        name = record["name"]
        fields = {"operation": name, "reason": errors.reason(failure)}
        try:
            current = self._store.discard_unstarted(name)
        except exceptions.GoogleAPICallError as exc:
            log.warning("publish failed and the discard failed too; re-reading",
                        extra={"json_fields": {**fields, "discard": errors.reason(exc)}})
            try:
                current = self._store.get(name)
            except exceptions.GoogleAPICallError:
                log.warning("publish failed and the job could not be re-read; it stays "
                            "queued for the sweep", extra={"json_fields": fields})
                return record
        if current is None:
            log.warning("publish failed; the job was discarded", extra={"json_fields": fields})
            raise failure
        log.info("publish failed but the job exists (a worker has it)",
                 extra={"json_fields": fields})
        return current

    def list_operations(self, parent: str, query: Mapping[str, str]) -> dict[str, Any]:
        """AIP-158 pages of AIP-160-filtered operations of ``parent``, newest first."""
        partial = query.get("returnPartialSuccess", "false").lower()
        if partial not in ("true", "false"):
            raise errors.invalid_argument("returnPartialSuccess must be true or false.",
                                          "INVALID_ARGUMENT")
        if partial == "true":
            raise errors.error(exceptions.MethodNotImplemented,
                               "returnPartialSuccess is not supported: every list is complete.")
        size = pagination.page_size(query.get("pageSize"))
        filter_text = query.get("filter", "")
        selection = listing.parse_filter(filter_text)
        after = None
        if query.get("pageToken"):
            cursor = pagination.decode_page_token(query["pageToken"], parent=parent,
                                               filter_text=filter_text, key=self._token_key)
            after = (cursor["createTime"], cursor["id"])
        page = self._store.list_page(
            parent, matches=selection.matches, equalities=selection.equalities(),
            bounds=selection.create_time_bounds(), size=size, after=after, now=self._clock(),
            scan_limit=self._scan_limit)
        # The proto3 JSON of a ListOperationsResponse, one operation at a time,
        # so that one unreadable record does not fail the page.
        response: dict[str, Any] = {}
        if page.records:
            response["operations"] = [render(record) for record in page.records]
        if page.next_after is not None:
            created, document = page.next_after
            response["nextPageToken"] = pagination.encode_page_token(
                {"createTime": created, "id": document},
                parent=parent, filter_text=filter_text, key=self._token_key)
        return response

    def delete_operation(self, name: str) -> None:
        """Forgets the operation. Its work is not cancelled (google.longrunning):
        the worker runs on and ends quietly, writing nothing."""
        self._link_to_creation(name)
        if self._store.delete(name, now=self._clock()) is DeleteResult.NOT_FOUND:
            raise not_found(name)
        log.info("deleted", extra={"json_fields": {"operation": name}})

    def wait_operation(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Returns once the operation is done, or at the timeout, with its latest
        state. A document listener wakes it, not a sleep loop."""
        timeout = self._wait_timeout(name, body)
        record = self._live_record(name)
        telemetry.link_operation(record)
        if record.get("done") or timeout <= 0:
            return render(record)
        latest: list[dict[str, Any] | None] = [record]
        settled = threading.Event()

        def on_change(current: dict[str, Any] | None) -> None:
            latest[0] = current
            if current is None or current.get("done"):
                settled.set()

        unsubscribe = self._store.watch(name, on_change)
        try:
            settled.wait(timeout)
        finally:
            unsubscribe()
        if latest[0] is None:
            raise not_found(name)  # deleted while we waited
        return render(latest[0])

    def _link_to_creation(self, name: str) -> None:
        """Links the current span to the operation's creation: one more read,
        made only while traces are recorded, and never a reason to fail."""
        if telemetry.tracing():
            with contextlib.suppress(exceptions.GoogleAPICallError):
                telemetry.link_operation(self._store.get(name))

    def _wait_timeout(self, name: str, body: Mapping[str, Any]) -> float:
        unknown = sorted(set(body) - {"name", "timeout"})
        if unknown or body.get("name", name) != name:
            raise errors.invalid_argument(
                'A wait body may only hold "timeout" (and the operation\'s own "name").',
                "INVALID_WAIT_BODY")
        if body.get("timeout") is None:
            return self._wait_max
        seconds = _duration(body["timeout"]).total_seconds()
        if seconds < 0:
            raise errors.invalid_argument("timeout may not be negative.", "INVALID_DURATION")
        return min(seconds, self._wait_max)  # longer waits are capped, not refused

    def _operation_timeout(self, value: Any) -> timedelta | None:
        """A create's ``timeout``: positive, at most MAX_OPERATION_TIMEOUT (refused,
        not capped: the caller asked for a deadline it would not get)."""
        if value is None:
            return None
        timeout = _duration(value)
        if timeout <= timedelta(0):
            raise errors.invalid_argument("timeout must be positive.", "INVALID_DURATION")
        if timeout.total_seconds() > self._max_timeout:
            raise errors.invalid_argument(
                f"timeout may be at most {self._max_timeout:g}s (MAX_OPERATION_TIMEOUT).",
                "INVALID_DURATION", limit=f"{self._max_timeout:g}s")
        return timeout


def _request_id(value: Any) -> str | None:
    """A create's ``requestId``: a UUID (AIP-155), lowercased; None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise errors.invalid_argument(
            "requestId must be a UUID such as 5f1b4c9e-9b7a-4d8e-8f51-3c2a0c1d7e42.",
            "INVALID_REQUEST_ID")
    return value.lower()


def _duration(value: Any) -> timedelta:
    """A ``google.protobuf.Duration`` JSON string; InvalidArgument otherwise."""
    duration = duration_pb2.Duration()
    try:
        if not isinstance(value, str):
            raise ValueError("not a string")
        duration.FromJsonString(value)
    except ValueError:
        raise errors.invalid_argument(
            'timeout must be a Duration string such as "10s" or "2.5s".',
            "INVALID_DURATION") from None
    return duration.ToTimedelta()
