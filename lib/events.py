"""Lifecycle events: which changes of an operation are announced, and the
message that announces them. No I/O.

Contract (README.md, "Observe it"): one message on ``OPERATIONS_EVENTS_TOPIC``
per ``CANCEL_REQUESTED`` and per ``DONE``. Attributes ``eventType``,
``operation``, ``kind``, ``state`` and, once the operation is done, ``code``
(its ``google.rpc.Code``, 0 when it succeeded); ``traceparent`` when the
operation was created inside a trace. Data: the Operation's JSON. Ordering key:
the operation name. Delivery is at least once: consumers dedupe on
(``operation``, ``eventType``).

The store marks an event pending in the same transaction as the change that
makes it (``pendingEvents.<TYPE>``: when it was marked); the process that
committed publishes it and clears the mark; the sweep publishes marks left
behind by a process that died in between.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lib import model

CANCEL_REQUESTED = "CANCEL_REQUESTED"
DONE = "DONE"
# In the order they are published when one change makes both (a queued
# operation cancelled: requested and done at once).
EVENT_TYPES = (CANCEL_REQUESTED, DONE)
# The document field holding the marks: {eventType: time marked}.
PENDING_FIELD = "pendingEvents"


def events_for(before: Mapping[str, Any], changes: Mapping[str, Any]) -> list[str]:
    """The events that writing ``changes`` over the record ``before`` makes.

    Each happens at most once in an operation's life: the cancel request that
    flips ``cancelRequested`` and the change that makes it ``done``.
    """
    after = {**before, **changes}
    events = []
    if after.get("cancelRequested") and not before.get("cancelRequested"):
        events.append(CANCEL_REQUESTED)
    if after.get("done") and not before.get("done"):
        events.append(DONE)
    return events


def pending(record: Mapping[str, Any]) -> list[str]:
    """The events marked pending on ``record``, in publishing order."""
    marks = record.get(PENDING_FIELD) or {}
    return [event for event in EVENT_TYPES if event in marks]


def attributes(record: Mapping[str, Any], event: str) -> dict[str, str]:
    """The message attributes of ``event`` for the operation ``record``."""
    values = {
        "eventType": event,
        "operation": str(record["name"]),
        "kind": str(record.get("kind", "")),
        "state": str(record.get("state", "")),
    }
    if record.get("done"):
        values["code"] = str(int((record.get("error") or {}).get("code", 0)))
    if record.get("traceContext"):
        values["traceparent"] = str(record["traceContext"])
    return values


def message(record: Mapping[str, Any], event: str) -> tuple[bytes, dict[str, str]]:
    """``(data, attributes)`` of the message announcing ``event``."""
    data = json.dumps(model.operation_json(record), separators=(",", ":")).encode()
    return data, attributes(record, event)
