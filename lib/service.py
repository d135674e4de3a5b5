"""The use cases: get, cancel and create (list, delete and wait to come).

Callers have already been authenticated and authorized (``lib.api``); this
module decides what happens to operations, through the store.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions

from lib import errors, model
from lib.config import Settings
from lib.kinds import get_kind
from lib.model import utcnow
from lib.publisher import JobPublisher
from lib.store import CancelResult, OperationStore

log = logging.getLogger("operations.service")


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

    def get_operation(self, name: str) -> dict[str, Any]:
        record = self._store.get(name)
        if record is None or model.is_expired(record, self._clock()):
            raise not_found(name)
        return model.operation_json(record)

    def cancel_operation(self, name: str, principal: str) -> None:
        """DESIGN.md "Cancel semantics": one transaction; a repeat writes nothing."""
        result = self._store.cancel(name, principal=principal, now=self._clock(),
                                    retention=self._retention)
        if result is CancelResult.NOT_FOUND:
            raise not_found(name)
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
        record = model.new_job(
            name=f"{parent}/operations/{job_id}", parent=parent,
            target=f"{parent}/jobs/{job_id}", kind=kind.name, params=params,
            created_by=principal, now=self._clock(),
        )
        self._store.create(record)
        try:
            self._publisher.publish(record["name"])
        except exceptions.GoogleAPICallError:
            self._store.discard_unstarted(record["name"])
            raise
        log.info("job queued", extra={"json_fields": {"operation": record["name"],
                                                      "kind": kind.name}})
        return model.operation_json(record)

    def _not_yet(self, what: str) -> exceptions.GoogleAPICallError:
        return errors.error(exceptions.MethodNotImplemented, f"{what} is not implemented yet.")

    def list_operations(self, name: str, query: Mapping[str, str]) -> dict[str, Any]:
        raise self._not_yet("ListOperations")

    def delete_operation(self, name: str) -> None:
        raise self._not_yet("DeleteOperation")

    def wait_operation(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        raise self._not_yet("WaitOperation")
