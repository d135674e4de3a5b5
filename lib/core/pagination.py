"""ListOperations pages (AIP-158): signed page tokens and page sizes. No I/O.

A token is urlsafe base64 of a JSON payload and an HMAC-SHA256 tag. The tag
covers the payload and a hash of (parent, canonical filter), so a token only
works for the request that produced it. The cursor is keyset, not an offset.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions

from lib.core import errors
from lib.core.listing import normalize_filter

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_PAGE_TOKEN_LENGTH = 1024
MIN_TOKEN_KEY_BYTES = 16

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_TAG_BYTES = 32
_TOKEN_CONTEXT = b"operations.list/page-token/v1\x00"
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]+")


def encode_page_token(cursor: Mapping[str, Any], *, parent: str, filter_text: str,
                      key: bytes) -> str:
    """The token of the page after ``cursor``: ``{"createTime": datetime, "id": str}``
    of the last operation returned (order: createTime desc, document id desc)."""
    create_time, document_id = cursor["createTime"], cursor["id"]
    if not isinstance(create_time, datetime) or create_time.tzinfo is None:
        raise ValueError("cursor createTime must be a timezone-aware datetime")
    if not isinstance(document_id, str) or not document_id:
        raise ValueError("cursor id must be a non-empty string")
    micros = (create_time - _EPOCH) // _MICROSECOND
    payload = json.dumps({"id": document_id, "t": micros, "v": 1},
                         separators=(",", ":"), ensure_ascii=False).encode()
    tag = _tag(payload, parent=parent, filter_text=filter_text, key=key)
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode("ascii")


def decode_page_token(token: str, *, parent: str, filter_text: str,
                      key: bytes) -> dict[str, Any]:
    """The cursor of a token from ``encode_page_token``; InvalidArgument
    (INVALID_PAGE_TOKEN) for anything else, including another parent or filter."""
    if (not isinstance(token, str) or len(token) > MAX_PAGE_TOKEN_LENGTH
            or not _TOKEN_TEXT.fullmatch(token)):
        raise _invalid_token()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise _invalid_token() from None
    # Unused low bits of the last character would let two texts decode alike.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise _invalid_token()
    if len(raw) <= _TAG_BYTES:
        raise _invalid_token()
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    expected = _tag(payload, parent=parent, filter_text=filter_text, key=key)
    if not hmac.compare_digest(tag, expected):
        raise _invalid_token()
    try:
        data = json.loads(payload.decode("utf-8"))
        if (not isinstance(data, dict) or set(data) != {"id", "t", "v"} or data["v"] != 1
                or type(data["t"]) is not int or not isinstance(data["id"], str)
                or not data["id"]):
            raise ValueError("unexpected payload")
        return {"createTime": _EPOCH + data["t"] * _MICROSECOND, "id": data["id"]}
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise _invalid_token() from None


def _tag(payload: bytes, *, parent: str, filter_text: str, key: bytes) -> bytes:
    if len(key) < MIN_TOKEN_KEY_BYTES:
        raise ValueError(f"the page token key needs at least {MIN_TOKEN_KEY_BYTES} bytes")
    binding = hashlib.sha256(
        json.dumps([parent, normalize_filter(filter_text)]).encode()
    ).digest()
    return hmac.new(key, _TOKEN_CONTEXT + binding + payload, hashlib.sha256).digest()


def _invalid_token() -> exceptions.GoogleAPICallError:
    return errors.invalid_argument(
        "Invalid page token: it is malformed, was altered, or was issued for a "
        "different parent or filter.", "INVALID_PAGE_TOKEN",
    )


def page_size(raw: str | None) -> int:
    """AIP-158: absent or 0 is the default, above the maximum is the maximum,
    a negative value or a non-integer is INVALID_ARGUMENT."""
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    match = re.fullmatch(r"(-?)([0-9]+)", raw)
    if not match:
        raise errors.invalid_argument("pageSize must be an integer.", "INVALID_PAGE_SIZE")
    sign, digits = match.group(1), match.group(2).lstrip("0")
    if not digits:
        return DEFAULT_PAGE_SIZE
    if sign:
        raise errors.invalid_argument("pageSize must not be negative.", "INVALID_PAGE_SIZE")
    # More than 4 digits is above the maximum; int() of a huge string is not needed.
    return MAX_PAGE_SIZE if len(digits) > 4 else min(int(digits), MAX_PAGE_SIZE)
