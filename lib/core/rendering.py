"""An operation's JSON, written straight from its record.

``model.to_operation`` builds the public ``google.longrunning.Operation`` and
``model.operation_json`` renders it with protobuf's ``json_format``: that pair
is the definition. Going through protobuf costs more CPU than the rest of a
Get together, so ``operation_json`` here writes the same JSON directly for the
values Firestore hands back (strings, numbers, booleans, null, maps, arrays,
timestamps) and leaves anything else to protobuf, failures included.
tests/unit/test_rendering.py holds the two side by side over generated records.

The same JSON means: the same fields, values and number types (a Struct number
is a double: ``1`` is written ``1.0``), in the same order, except within a map
(a Struct's fields, ErrorInfo's metadata): protobuf orders a map by a hash
seeded per process, so its order was never fixed; here it is the record's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf import struct_pb2
from google.rpc import error_details_pb2

from lib.core import model

_TYPE_URL_PREFIX = "type.googleapis.com/"
_STRUCT = _TYPE_URL_PREFIX + struct_pb2.Struct.DESCRIPTOR.full_name
_ERROR_INFO = _TYPE_URL_PREFIX + error_details_pb2.ErrorInfo.DESCRIPTOR.full_name
_EXACT_INT = 2**53  # a double holds every integer up to here exactly
_INT32 = 2**31
_MAX_DEPTH = 32  # Firestore nests maps 20 deep at most


class _Unusual(Exception):
    """A value this module does not render itself: protobuf does."""


def operation_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """The proto3 JSON form of ``model.to_operation(record)``
    (``model.operation_json``), raising what it raises."""
    try:
        return _operation(record)
    except Exception:  # anything unusual: protobuf renders it, or fails, as it always did
        return model.operation_json(record)


def _operation(record: Mapping[str, Any]) -> dict[str, Any]:
    created = _timestamp(record["createTime"])
    metadata = {
        "createTime": created,
        "updateTime": _timestamp(record["updateTime"]) if record.get("updateTime") else created,
        "verb": _value(record.get("verb", "")),
        "target": _value(record.get("target", "")),
        "kind": _value(record.get("kind", "")),
        "statusMessage": _value(record.get("statusMessage", "")),
        "progressPercent": _value(record.get("progressPercent", 0)),
        "requestedCancellation": bool(record.get("cancelRequested")),
        "attempt": _value(record.get("attempt", 0)),
    }
    for key in model.METADATA_TIMES:
        if record.get(key) is not None:
            metadata[key] = _timestamp(record[key])
    for key in ("cancelRequestedBy", "cancelReason"):
        if record.get("cancelRequested") and record.get(key):
            metadata[key] = _text(str(record[key]))
    name = _text(record["name"])
    if not name:
        raise _Unusual("proto3 JSON leaves an empty name out")
    operation: dict[str, Any] = {"name": name, "metadata": {"@type": _STRUCT, "value": metadata}}
    if record.get("done"):
        operation["done"] = True
        error = record.get("error")
        if error:
            operation["error"] = _status(error)
        else:
            response = record.get("response") or {}
            if type(response) is not dict:
                raise _Unusual("a response is a map")
            operation["response"] = {"@type": _STRUCT, "value": _value(response)}
    return operation


def _status(error: Mapping[str, Any]) -> dict[str, Any]:
    """``google.rpc.Status`` as ``model`` builds it (an ErrorInfo for a reason)."""
    status: dict[str, Any] = {}
    code = int(error["code"])
    if not -_INT32 <= code < _INT32:
        raise _Unusual("a code is an int32")
    if code:
        status["code"] = code
    message = _text(str(error.get("message", "")))
    if message:
        status["message"] = message
    if error.get("reason"):
        info: dict[str, Any] = {"@type": _ERROR_INFO}
        reason = _text(str(error["reason"]))
        if reason:
            info["reason"] = reason
        info["domain"] = model.ERROR_DOMAIN
        metadata = {_text(str(key)): _text(str(value))
                    for key, value in (error.get("metadata") or {}).items()}
        if metadata:
            info["metadata"] = metadata
        status["details"] = [info]
    if not status:
        raise _Unusual("an empty status")
    return status


def _value(value: Any, depth: int = 0) -> Any:
    """A ``google.protobuf.Value`` as json_format writes it."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if value is None or kind is bool:
        return value
    if kind is int and -_EXACT_INT <= value <= _EXACT_INT:
        return float(value)
    if kind is float and math.isfinite(value):
        return value
    if depth < _MAX_DEPTH:
        if kind is dict:
            return {_text(key): _value(item, depth + 1) for key, item in value.items()}
        if kind is list:
            return [_value(item, depth + 1) for item in value]
    raise _Unusual(kind.__name__)


def _text(value: Any) -> str:
    """A string protobuf holds as it is."""
    if type(value) is not str:
        raise _Unusual("not a string")
    if not value.isascii():
        value.encode()  # a lone surrogate is no UTF-8: protobuf refuses it
    return value


def _timestamp(value: Any) -> str:
    """``Timestamp.FromDatetime(value).ToJsonString()``: RFC 3339 in UTC (a naive
    datetime is UTC), with 0, 3 or 6 fractional digits."""
    if not isinstance(value, datetime):
        raise _Unusual("not a datetime")
    offset = value.utcoffset()
    if offset:
        value = value - offset
    text = (f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
            f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}")
    micro = value.microsecond
    if not micro:
        return text + "Z"
    if micro % 1000 == 0:
        return f"{text}.{micro // 1000:03d}Z"
    return f"{text}.{micro:06d}Z"
