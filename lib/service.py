"""The use cases: get, list, cancel, delete, wait, and the example jobs.create.

Callers have already been authenticated and authorized (``lib.api``); this
module decides what happens to operations, through the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions
from google.longrunning import operations_pb2
from google.protobuf import duration_pb2, json_format

from lib import errors, listing, model, pagination, telemetry
from lib.config import Settings
from lib.kinds import get_kind
from lib.model import utcnow
from lib.publisher import JobPublisher
from lib.store import CancelResult, DeleteResult, OperationStore

log = logging.getLogger("operations.service")


def page_token_key(settings: Settings) -> bytes:
    """The page-token signing key: PAGE_TOKEN_SECRET, shared by every instance."""
    secret = settings.page_token_secret
    if secret is None:
        log.warning("PAGE_TOKEN_SECRET is not set: page tokens are signed with a key "
                    "derived from the project and collection, which others can derive too")
        secret = f"{settings.project}/{settings.collection}"
    return hashlib.sha256(secret.encode()).digest()


def not_found(name: str) -> exceptions.GoogleAPICallError:
    return errors.error(exceptions.NotFound, f"Operation {name} was not found.",
                        "OPERATION_NOT_FOUND", name=name)


class OperationsService:
    """The Operations API and the example ``jobs.create`` host method."""

    def __init__(self, store: OperationStore, publisher: JobPublisher, settings: Settings,
                 clock: Callable[[], datetime] = utcnow,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._new_id = new_id
        self._retention = timedelta(days=settings.retention_days)
        self._wait_max = settings.wait_max_seconds
        self._token_key = page_token_key(settings)

    def get_operation(self, name: str) -> dict[str, Any]:
        return model.operation_json(self._live_record(name))

    def _live_record(self, name: str) -> dict[str, Any]:
        """The operation's record; NOT_FOUND when missing or past its retention."""
        record = self._store.get(name)
        if record is None or model.is_expired(record, self._clock()):
            raise not_found(name)
        return record

    def cancel_operation(self, name: str, principal: str) -> None:
        """DESIGN.md "Cancel semantics": one transaction; a repeat writes nothing."""
        self._link_to_creation(name)
        result = self._store.cancel(name, principal=principal, now=self._clock(),
                                    retention=self._retention)
        if result is CancelResult.NOT_FOUND:
            raise not_found(name)
        if result is CancelResult.CHANGED:
            telemetry.cancel_event("requested", requested_by=principal)
            telemetry.record_cancel_requested()
        log.info("cancel requested" if result is CancelResult.CHANGED else "cancel: no change",
                 extra={"json_fields": {"operation": name}})

    def create_job(self, parent: str, body: Mapping[str, Any], principal: str) -> dict[str, Any]:
        """Writes the QUEUED operation, then tells the worker.

        If the publish fails, the operation is deleted again (unless something
        already touched it) and the caller gets 503: no orphan is left behind.
        """
        unknown = sorted(set(body) - {"kind", "params"})
        if unknown:
            raise errors.invalid_argument(f"Unknown field {unknown[0]!r} in the job.",
                                          "INVALID_JOB")
        kind = get_kind(body.get("kind"))
        params = kind.validate(body.get("params"))
        job_id = self._new_id()
        try:
            model.check_name(f"{parent}/operations/{job_id}")
        except model.InvalidName:
            raise errors.invalid_argument(
                f"The parent is too long: an operation name may hold at most "
                f"{model.MAX_NAME_LENGTH} characters.", "INVALID_NAME") from None
        record = model.new_job(
            name=f"{parent}/operations/{job_id}", parent=parent,
            target=f"{parent}/jobs/{job_id}", kind=kind.name, params=params,
            created_by=principal, now=self._clock(),
        )
        trace_context = telemetry.current_traceparent()
        if trace_context:
            record["traceContext"] = trace_context  # later requests link to this trace
        self._store.create(record)
        try:
            self._publisher.publish(record["name"])
        except exceptions.GoogleAPICallError:
            self._store.discard_unstarted(record["name"])
            raise
        telemetry.record_created(kind.name)
        log.info("job queued", extra={"json_fields": {"operation": record["name"],
                                                      "kind": kind.name}})
        return model.operation_json(record)

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
            bounds=selection.create_time_bounds(), size=size, after=after, now=self._clock())
        response = operations_pb2.ListOperationsResponse(
            operations=[model.to_operation(record) for record in page.records])
        if page.has_more:
            last = page.records[-1]
            response.next_page_token = pagination.encode_page_token(
                {"createTime": last["createTime"], "id": model.document_id(last["name"])},
                parent=parent, filter_text=filter_text, key=self._token_key)
        return json_format.MessageToDict(response)

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
            return model.operation_json(record)
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
        return model.operation_json(latest[0])

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
        timeout = body["timeout"]
        duration = duration_pb2.Duration()
        try:
            if not isinstance(timeout, str):
                raise ValueError("not a string")
            duration.FromJsonString(timeout)
        except ValueError:
            raise errors.invalid_argument(
                'timeout must be a Duration string such as "10s" or "2.5s".',
                "INVALID_DURATION") from None
        seconds = duration.ToTimedelta().total_seconds()
        if seconds < 0:
            raise errors.invalid_argument("timeout may not be negative.", "INVALID_DURATION")
        return min(seconds, self._wait_max)  # longer waits are capped, not refused
