"""Operation records, states and transitions, names. No I/O.

A record is the Firestore document as a plain dict; the functions here decide
what a change writes (or that it writes nothing) and derive the public
``google.longrunning.Operation`` from a record. ``store.py`` runs them inside
transactions.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

MAX_NAME_LENGTH = 512
# RFC 3986 unreserved characters: what a name segment may hold once decoded.
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


class State(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


DONE_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})
CANCELLED_MESSAGE = "Operation was cancelled."
DEADLINE_MESSAGE = "The operation's deadline passed."
UNREADABLE_MESSAGE = "The operation's stored result is unreadable."

# The domain of every ErrorInfo the service writes (lib.core.errors uses the same).
ERROR_DOMAIN = "operations-service"

# ErrorInfo reasons of an operation that ended early (docs/architecture.md,
# "Cancel lifecycle"): why it ended, not only that it did.
CANCELLED_BY_REQUEST = "CANCELLED_BY_REQUEST"
CANCEL_FORCED = "CANCEL_FORCED"
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
# ErrorInfo reason of a stored record that cannot be rendered (written by an
# older version, or by hand): see ``unreadable_operation_json``.
RESULT_UNREADABLE = "RESULT_UNREADABLE"

# Timestamps a record may hold, rendered into metadata when present.
METADATA_TIMES = ("endTime", "cancelRequestTime", "cancelAcknowledgeTime", "deadline")


def utcnow() -> datetime:
    return datetime.now(UTC)


class InvalidName(ValueError):
    """A resource name that breaks the naming rules (a 400 at the edge)."""


def check_name(name: str) -> str:
    """Returns ``name`` if every segment is a non-empty run of unreserved
    characters other than ``.``/``..`` and the whole is at most MAX_NAME_LENGTH."""
    if not name:
        raise InvalidName("The resource name is empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"The resource name is longer than {MAX_NAME_LENGTH} characters.")
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidName("The resource name has an empty, '.' or '..' segment.")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidName(
                "The resource name may hold only letters, digits and '-._~' in each segment."
            )
    return name


def document_id(name: str) -> str:
    """The Firestore document id of an operation name.

    Injective because a checked name never contains '%': the only '%' in an id
    comes from an escaped '/'. Ids stay readable in the console.
    """
    return name.replace("/", "%2F")


def new_job(
    *,
    name: str,
    parent: str,
    target: str,
    kind: str,
    params: Mapping[str, Any],
    created_by: str,
    now: datetime,
) -> dict[str, Any]:
    """The document of a job that has just been accepted (QUEUED, attempt 0)."""
    return {
        "name": name,
        "parent": parent,
        "state": State.QUEUED.value,
        "done": False,
        "kind": kind,
        "params": dict(params),
        "verb": "create",
        "target": target,
        "statusMessage": "Queued.",
        "progressPercent": 0,
        "cancelRequested": False,
        "createdBy": created_by,
        "attempt": 0,
        "lease": None,
        "checkpoint": None,
        "createTime": now,
        "updateTime": now,
    }


# What a requested cancel records: the flag, when, who and why.
CANCEL_REQUEST_FIELDS = ("cancelRequested", "cancelRequestTime", "cancelRequestedBy",
                         "cancelReason")


def cancel_changes(record: Mapping[str, Any], *, principal: str, now: datetime,
                   retention: timedelta, reason: str = "") -> dict[str, Any] | None:
    """What a cancel writes, or None when it writes nothing.

    Queued: done now, CANCELLED (the worker will skip it). Running: the flag
    the worker listens to, with who asked, why and when. Done, or already
    requested: nothing (a repeated cancel changes none of the three).
    """
    if record.get("done"):
        return None
    request = {"cancelRequested": True, "cancelRequestTime": now,
               "cancelRequestedBy": principal, "cancelReason": reason}
    if record.get("state") == State.QUEUED.value:
        return {
            **cancelled_changes(now=now, retention=retention, info=cancel_info(request)),
            **request,
            "statusMessage": "Cancelled before it started.",
        }
    if record.get("cancelRequested"):
        return None
    return {**request, "statusMessage": "Cancelling.", "updateTime": now}


def error_record(code: int, message: str, reason: str | None = None,
                 metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An operation's stored error: a ``google.rpc.Status`` with, when ``reason``
    is given, one ``google.rpc.ErrorInfo`` in its details."""
    error: dict[str, Any] = {"code": int(code), "message": message}
    if reason:
        error["reason"] = reason
        error["metadata"] = {k: str(v) for k, v in (metadata or {}).items() if v}
    return error


def cancel_info(record: Mapping[str, Any]) -> dict[str, str]:
    """ErrorInfo metadata of a cancel: who asked and why, where known."""
    return {"requestedBy": str(record.get("cancelRequestedBy") or ""),
            "reason": str(record.get("cancelReason") or "")}


def succeeded_changes(response: Mapping[str, Any], *, now: datetime,
                      retention: timedelta) -> dict[str, Any]:
    return {
        **_finished(State.SUCCEEDED, now, retention),
        "response": dict(response),
        "progressPercent": 100,
        "statusMessage": "Succeeded.",
    }


def failed_changes(code: int, message: str, *, now: datetime,
                   retention: timedelta) -> dict[str, Any]:
    if code in (code_pb2.OK, code_pb2.CANCELLED):
        code = code_pb2.UNKNOWN  # a failure is never OK, and code 1 means cancelled
    return {
        **_finished(State.FAILED, now, retention),
        "error": {"code": code, "message": message},
        "statusMessage": f"Failed: {message}",
    }


def cancelled_changes(*, now: datetime, retention: timedelta,
                      reason: str = CANCELLED_BY_REQUEST,
                      info: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Ended by a cancel: code 1 with an ErrorInfo saying how (``reason``) and
    who asked and why (``info``, see ``cancel_info``)."""
    return {
        **_finished(State.CANCELLED, now, retention),
        "error": error_record(code_pb2.CANCELLED, CANCELLED_MESSAGE, reason, info),
        "statusMessage": "Cancelled." if reason != CANCEL_FORCED else "Cancelled (forced).",
    }


def deadline_changes(*, now: datetime, retention: timedelta,
                     forced: bool = False) -> dict[str, Any]:
    """Ended by its deadline: code 4 DEADLINE_EXCEEDED, never code 1 (``forced``:
    the handler did not stop within its grace and was ended without it)."""
    return {
        **_finished(State.FAILED, now, retention),
        "error": error_record(code_pb2.DEADLINE_EXCEEDED, DEADLINE_MESSAGE, DEADLINE_EXCEEDED,
                              {"forced": "true"} if forced else None),
        "statusMessage": "Deadline exceeded.",
    }


def _finished(state: State, now: datetime, retention: timedelta) -> dict[str, Any]:
    return {
        "state": state.value,
        "done": True,
        "lease": None,
        "updateTime": now,
        "endTime": now,
        "expireTime": now + retention,  # AIP-151 retention, for a Firestore TTL policy
    }


def is_expired(record: Mapping[str, Any], now: datetime) -> bool:
    """A finished operation past its retention is gone, even before TTL deletes it."""
    expire = record.get("expireTime")
    return bool(record.get("done")) and expire is not None and expire <= now


def to_operation(record: Mapping[str, Any]) -> operations_pb2.Operation:
    """The public ``google.longrunning.Operation`` of a record.

    Internal fields (lease, params, principals, checkpoint) never appear.
    """
    metadata = struct_pb2.Struct()
    metadata.update(
        {
            "createTime": _timestamp(record["createTime"]),
            "updateTime": _timestamp(record.get("updateTime") or record["createTime"]),
            "verb": record.get("verb", ""),
            "target": record.get("target", ""),
            "kind": record.get("kind", ""),
            "statusMessage": record.get("statusMessage", ""),
            "progressPercent": record.get("progressPercent", 0),
            "requestedCancellation": bool(record.get("cancelRequested")),
            "attempt": record.get("attempt", 0),
        }
    )
    for key in METADATA_TIMES:
        if record.get(key) is not None:
            metadata[key] = _timestamp(record[key])
    for key in ("cancelRequestedBy", "cancelReason"):
        if record.get("cancelRequested") and record.get(key):
            metadata[key] = str(record[key])  # an empty reason is no reason: left out
    operation = operations_pb2.Operation(name=record["name"], done=bool(record.get("done")))
    operation.metadata.Pack(metadata)
    if operation.done:
        error = record.get("error")
        if error:
            operation.error.CopyFrom(_status(error))
        else:
            response = struct_pb2.Struct()
            response.update(record.get("response") or {})
            operation.response.Pack(response)
    return operation


def _status(error: Mapping[str, Any]) -> status_pb2.Status:
    status = status_pb2.Status(code=int(error["code"]), message=str(error.get("message", "")))
    if error.get("reason"):
        info = error_details_pb2.ErrorInfo(
            reason=str(error["reason"]), domain=ERROR_DOMAIN,
            metadata={str(k): str(v) for k, v in (error.get("metadata") or {}).items()})
        status.details.add().Pack(info)
    return status


def operation_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """The proto3 JSON form of ``to_operation(record)``: the definition, which
    ``lib.core.rendering`` writes without the protobuf round trip."""
    return json_format.MessageToDict(to_operation(record))


def unreadable_operation_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a record that ``operation_json`` cannot render is shown as: a done
    operation with an INTERNAL error saying its stored result is unreadable,
    and whatever of its metadata still renders. Never raises.

    One such record (an older version wrote a response Struct cannot hold, say)
    must not fail every Get, Wait and List that meets it.
    """
    metadata = struct_pb2.Struct()
    for key in ("verb", "target", "kind", "statusMessage"):
        if _is_text(record.get(key)):
            metadata[key] = record[key]
    for key in ("createTime", "updateTime", "endTime"):
        value = record.get(key)
        if isinstance(value, datetime):
            try:
                metadata[key] = _timestamp(value)
            except (ValueError, OverflowError, TypeError):
                continue
    metadata["requestedCancellation"] = record.get("cancelRequested") is True
    attempt = record.get("attempt")
    metadata["attempt"] = attempt if isinstance(attempt, int) and 0 <= attempt < 2**53 else 0
    name = record.get("name")
    operation = operations_pb2.Operation(name=name if _is_text(name) else "", done=True)
    operation.metadata.Pack(metadata)
    operation.error.CopyFrom(_status(error_record(code_pb2.INTERNAL, UNREADABLE_MESSAGE,
                                                  RESULT_UNREADABLE)))
    return json_format.MessageToDict(operation)


def _is_text(value: Any) -> bool:
    """A string protobuf can hold (valid Unicode)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _timestamp(value: datetime) -> str:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp.ToJsonString()
