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
makes it: one outbox document per event, holding the message, in the
collection ``<operations collection>-events`` (the operation's own document
never changes for it: a done operation stays exactly as it ended). The process
that committed publishes the message and deletes the mark; the sweep
publishes marks left behind by a process that died in between.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lib.core import model, rendering

CANCEL_REQUESTED = "CANCEL_REQUESTED"
DONE = "DONE"
# In the order they are published when one change makes both (a queued
# operation cancelled: requested and done at once).
EVENT_TYPES = (CANCEL_REQUESTED, DONE)
OUTBOX_SUFFIX = "-events"


@dataclass(frozen=True)
class EventMessage:
    """One lifecycle event, as published (and as kept in the outbox)."""

    event_type: str
    operation: str
    data: bytes
    attributes: dict[str, str]

    @property
    def ordering_key(self) -> str:
        return self.operation


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


def message(record: Mapping[str, Any], event: str) -> EventMessage:
    """The message announcing ``event`` of the operation as ``record`` is now."""
    data = json.dumps(rendering.operation_json(record), separators=(",", ":")).encode()
    return EventMessage(event, str(record["name"]), data, attributes(record, event))


def outbox_id(message: EventMessage) -> str:
    """The outbox document of ``message``: one per (operation, event type)."""
    return f"{model.document_id(message.operation)}:{message.event_type}"


def outbox_document(message: EventMessage) -> dict[str, Any]:
    return {"operation": message.operation, "eventType": message.event_type,
            "data": message.data, "attributes": dict(message.attributes)}


def from_outbox(document: Mapping[str, Any]) -> EventMessage:
    return EventMessage(str(document["eventType"]), str(document["operation"]),
                        bytes(document["data"]), dict(document.get("attributes") or {}))


def in_order(messages: list[EventMessage]) -> list[EventMessage]:
    """By operation, and within one in the order its events happen."""
    return sorted(messages, key=lambda m: (m.operation, EVENT_TYPES.index(m.event_type)
                                           if m.event_type in EVENT_TYPES else len(EVENT_TYPES)))
