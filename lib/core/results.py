"""What a handler may hand to the store: its response, checkpoints, status
messages. No I/O.

A handler's response becomes a ``google.protobuf.Struct`` in the public
Operation and a map field in the operation's Firestore document, so it must be
JSON that Firestore can hold (https://firebase.google.com/docs/firestore/quotas):

- JSON types only: ``dict`` (string keys), ``list``, ``str``, ``int``,
  ``float``, ``bool``, ``None``; finite numbers; integers within 64 bits;
  text that is valid Unicode (no lone surrogates);
- keys that are not empty and not reserved (``__name__``-like);
- no list directly inside a list (Firestore cannot store one);
- maps and lists nested at most 20 deep, the document's own field included
  (the response map itself is level 1);
- a key path (``response.a.b``) of at most 1,500 bytes;
- a size, measured as Firestore measures it, within a budget that leaves the
  rest of the 1 MiB document room: ``RESPONSE_MAX_BYTES`` (768 KiB) for the
  response, ``CHECKPOINT_MAX_BYTES`` (64 KiB) for a checkpoint. With the
  params (at most the 64 KiB request body) and the metadata (a few KiB) the
  whole document stays under 1 MiB even when both are full.

Each check raises ``UnstorableValue`` (a ``ValueError``) whose message says
what and where, e.g. ``the job's response is not JSON: datetime at
response.when``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

RESPONSE_MAX_BYTES = 768 * 1024
CHECKPOINT_MAX_BYTES = 64 * 1024
STATUS_MESSAGE_MAX_CHARS = 1024
MAX_DEPTH = 20  # Firestore: maps and arrays nested at most 20 deep
MAX_FIELD_PATH_BYTES = 1500  # Firestore: the longest field path

_INT64 = 2**63
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED_KEY = re.compile(r"__.*__", re.DOTALL)


class UnstorableValue(ValueError):
    """A value a handler produced that cannot be stored as it is."""


def check_response(value: Any) -> dict[str, Any]:
    """The handler's return value as a plain JSON object that fits the document.

    ``None`` is an empty response. Raises UnstorableValue otherwise.
    """
    return _check_object(value, "the job's response", "response", RESPONSE_MAX_BYTES)


def check_checkpoint(state: Any) -> dict[str, Any]:
    """A ``checkpoint()`` state as a plain JSON object; raises UnstorableValue."""
    return _check_object(state, "the checkpoint", "checkpoint", CHECKPOINT_MAX_BYTES)


def check_status_message(message: Any) -> str:
    """A ``report_progress()`` message: a string of at most
    STATUS_MESSAGE_MAX_CHARS characters; raises UnstorableValue."""
    subject, path = "the status message", "statusMessage"
    if not isinstance(message, str):
        raise UnstorableValue(f"{subject} is not a string: {type(message).__name__} at {path}")
    if len(message) > STATUS_MESSAGE_MAX_CHARS:
        raise UnstorableValue(f"{subject} is {len(message)} characters, more than the "
                              f"{STATUS_MESSAGE_MAX_CHARS} allowed")
    _check_text(message, subject, path)
    return str(message)


def _check_object(value: Any, subject: str, field: str, budget: int) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UnstorableValue(f"{subject} is not a JSON object: {type(value).__name__} at {field}")
    checker = _Checker(subject)
    plain, size = checker.value(value, field, depth=1, path_bytes=len(field.encode()),
                                in_list=False)
    size += len(field.encode()) + 1  # the document's field name counts too
    if size > budget:
        raise UnstorableValue(f"{subject} is {size} bytes, more than the {budget} allowed")
    result: dict[str, Any] = plain
    return result


class _Checker:
    """One walk over a value: a plain copy of it and its Firestore size."""

    def __init__(self, subject: str) -> None:
        self.subject = subject

    def fail(self, problem: str, path: str) -> UnstorableValue:
        return UnstorableValue(f"{self.subject} {problem} at {path}")

    def value(self, value: Any, path: str, *, depth: int, path_bytes: int,
              in_list: bool) -> tuple[Any, int]:
        """(plain copy, size in bytes as Firestore counts it)."""
        if value is None:
            return None, 1
        if isinstance(value, bool):
            return bool(value), 1
        if isinstance(value, int):
            if not -_INT64 <= value < _INT64:
                raise self.fail("holds an integer outside 64 bits", path)
            return int(value), 8
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.fail(f"is not JSON: {value!r}", path)
            return float(value), 8
        if isinstance(value, str):
            _check_text(value, self.subject, path)
            return str(value), len(value.encode()) + 1
        if isinstance(value, Mapping | list):
            if depth > MAX_DEPTH:
                raise self.fail(f"is nested deeper than {MAX_DEPTH}", path)
            if isinstance(value, list):
                if in_list:
                    raise self.fail("has a list directly inside a list", path)
                return self.array(value, path, depth, path_bytes)
            return self.map(value, path, depth, path_bytes)
        raise self.fail(f"is not JSON: {type(value).__name__}", path)

    def map(self, value: Mapping[Any, Any], path: str, depth: int,
            path_bytes: int) -> tuple[dict[str, Any], int]:
        plain: dict[str, Any] = {}
        size = 0
        for key, item in value.items():
            if not isinstance(key, str):
                raise self.fail(f"has a key that is not a string ({type(key).__name__})", path)
            if not key:
                raise self.fail("has an empty key", path)
            child = _child_path(path, key)
            _check_text(key, self.subject, child)
            if _RESERVED_KEY.fullmatch(key):
                raise self.fail(f"has a reserved key {key[:40]!r}", path)
            key_bytes = _path_segment_bytes(key)
            if path_bytes + 1 + key_bytes > MAX_FIELD_PATH_BYTES:
                raise self.fail(f"has a key path longer than {MAX_FIELD_PATH_BYTES} bytes",
                                child[:80] + "...")
            plain[key], item_size = self.value(item, child, depth=depth + 1,
                                               path_bytes=path_bytes + 1 + key_bytes,
                                               in_list=False)
            size += len(key.encode()) + 1 + item_size
        return plain, size

    def array(self, value: list[Any], path: str, depth: int,
              path_bytes: int) -> tuple[list[Any], int]:
        plain: list[Any] = []
        size = 0
        for index, item in enumerate(value):
            copy, item_size = self.value(item, f"{path}[{index}]", depth=depth + 1,
                                         path_bytes=path_bytes, in_list=True)
            plain.append(copy)
            size += item_size
        return plain, size


def _check_text(text: str, subject: str, path: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise UnstorableValue(f"{subject} holds text that is not valid Unicode at {path}"
                              ) from None


def _child_path(path: str, key: str) -> str:
    """``response.key``, or ``response["odd key"]`` when the key is not a name."""
    if _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}"
    shown = key if len(key) <= 40 else key[:40] + "..."
    return f"{path}[{shown!r}]"


def _path_segment_bytes(key: str) -> int:
    """A key's bytes in a Firestore field path: other than simple names, keys
    are quoted with backticks and their backticks and backslashes escaped."""
    raw = len(key.encode())
    if _SIMPLE_KEY.fullmatch(key):
        return raw
    return raw + 2 + key.count("`") + key.count("\\")
