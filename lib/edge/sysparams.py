"""Google's system parameters: the query parameters and headers every method takes.

https://cloud.google.com/apis/docs/system-parameters lists them. Each is
parsed and checked once, at the HTTP edge, into ``SystemParameters``:

- ``alt``/``$alt``: ``json`` only (optionally ``;enum-encoding=int``, as
  generated REST clients send it); the other formats are 400;
- ``prettyPrint``/``$prettyPrint``: ``true`` indents the JSON answer,
  ``false`` (the default here) keeps it compact;
- ``$.xgafv``: the error format, ``1`` or ``2``; errors are AIP-193 either way;
- ``quotaUser`` (or ``X-Goog-Quota-User``): logged;
- ``fields``/``$fields`` (or ``X-Goog-FieldMask``): a partial response, in the
  ``a,b/c,items(d,e)`` syntax, applied to the JSON answer of every method;
- ``X-Goog-Request-Reason``/``$requestReason``: on a cancel, its reason;
  elsewhere logged;
- ``X-Goog-Api-Client``, ``X-Goog-User-Project``: logged.

A malformed value is 400 INVALID_ARGUMENT.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lib.core import errors

MAX_REASON_LENGTH = 512
REASON_HEADER = "X-Goog-Request-Reason"
REASON_PARAM = "$requestReason"
MAX_MASK_LENGTH = 4096
MAX_MASK_DEPTH = 16
MAX_LOGGED_LENGTH = 256

# Query parameter -> the system parameter it spells (two spellings of some).
QUERY_PARAMETERS = {
    "alt": "alt", "$alt": "alt",
    "fields": "fields", "$fields": "fields",
    "prettyPrint": "prettyPrint", "$prettyPrint": "prettyPrint",
    "$.xgafv": "$.xgafv",
    "quotaUser": "quotaUser", "$quotaUser": "quotaUser",
    REASON_PARAM: REASON_PARAM,
}
_ALT_OPTIONS = frozenset({"enum-encoding=int", "enum-encoding=string"})
_LOGGED_HEADERS = {"X-Goog-Api-Client": "apiClient", "X-Goog-User-Project": "userProject"}

# A field mask: field name -> the mask within it (None: all of it).
FieldMask = dict[str, "FieldMask | None"]


@dataclass(frozen=True)
class SystemParameters:
    """The checked system parameters of one request."""

    pretty: bool = False
    fields: FieldMask | None = None  # None: the whole answer
    reason: str = ""
    log_fields: Mapping[str, str] = field(default_factory=dict)

    def render(self, status: int, body: Any) -> str:
        """The JSON text of ``body``: masked by ``fields`` when it is a success."""
        if self.fields is not None and 200 <= status < 300:
            body = apply_mask(body, self.fields)
        if self.pretty:
            return _PRETTY.encode(body) + "\n"
        return _COMPACT.encode(body)


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # what json.dumps builds on each call
_PRETTY = json.JSONEncoder(indent=2, ensure_ascii=False)
# What a request that names no system parameter gets (nearly every one).
DEFAULTS = SystemParameters()
# Headers that carry system parameters; QUERY_PARAMETERS holds the rest.
_HEADERS = ("X-Goog-FieldMask", REASON_HEADER, "X-Goog-Quota-User", *_LOGGED_HEADERS)


def parse(query: Iterable[tuple[str, list[str]]], headers: Mapping[str, str] | Any,
          method_params: frozenset[str]) -> tuple[SystemParameters, dict[str, str]]:
    """Splits the query into system parameters and the method's own.

    Args:
        query: ``(key, values)`` pairs as sent (``request.args.lists()``).
        headers: the request headers (werkzeug's Headers or a Mapping).
        method_params: the query parameters the method itself takes.

    Returns:
        The system parameters, and the method's parameters by name.

    Raises:
        InvalidArgument: an unknown or repeated parameter, or a bad value.
    """
    system: dict[str, str] = {}
    own: dict[str, str] = {}
    query = list(query)
    if not query and not any(headers.get(header) for header in _HEADERS):
        return DEFAULTS, own
    for key, values in query:
        target = own if key in method_params else system
        name = key if key in method_params else QUERY_PARAMETERS.get(key)
        if name is None:
            # Google's front ends: "Cannot bind query parameter".
            raise errors.invalid_argument(f"Unknown query parameter {key[:64]!r}.",
                                          "UNKNOWN_QUERY_PARAMETER")
        if len(values) > 1 or target.get(name, values[0]) != values[0]:
            # Both spellings of one parameter (alt and $alt) may come if they agree.
            raise errors.invalid_argument(f"Query parameter {key!r} is given more than once.",
                                          "REPEATED_QUERY_PARAMETER")
        target[name] = values[0]

    # Generated REST clients send "$alt=json;enum-encoding=int": JSON still
    # (this API's messages hold no enums).
    alt, *options = system.get("alt", "json").lower().split(";")
    if alt != "json" or not set(options) <= _ALT_OPTIONS:
        raise errors.invalid_argument("alt must be json: this service answers JSON only.",
                                      "INVALID_SYSTEM_PARAMETER", parameter="alt")
    xgafv = system.get("$.xgafv", "2")
    if xgafv not in ("1", "2"):
        raise errors.invalid_argument("$.xgafv must be 1 or 2.", "INVALID_SYSTEM_PARAMETER",
                                      parameter="$.xgafv")
    pretty = _boolean(system.get("prettyPrint", "false"), "prettyPrint")
    mask_text = system.get("fields")
    header_mask = headers.get("X-Goog-FieldMask")
    if mask_text is not None and header_mask is not None and mask_text != header_mask:
        raise errors.invalid_argument("fields and X-Goog-FieldMask give two different masks.",
                                      "INVALID_FIELD_MASK")
    mask_text = mask_text if mask_text is not None else header_mask
    reason = request_reason(headers.get(REASON_HEADER), system.get(REASON_PARAM))

    logged: dict[str, str] = {}
    quota_user = system.get("quotaUser", headers.get("X-Goog-Quota-User"))
    if quota_user:
        logged["quotaUser"] = quota_user[:MAX_LOGGED_LENGTH]
    for header, key in _LOGGED_HEADERS.items():
        value = headers.get(header)
        if value:
            logged[key] = value[:MAX_LOGGED_LENGTH]
    if reason:
        logged["requestReason"] = reason
    return SystemParameters(pretty=pretty, fields=parse_mask(mask_text or ""), reason=reason,
                            log_fields=logged), own


def _boolean(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise errors.invalid_argument(f"{name} must be true or false.",
                                      "INVALID_SYSTEM_PARAMETER", parameter=name)
    return lowered == "true"


def request_reason(header: str | None, param: str | None) -> str:
    """The request's reason, from the ``X-Goog-Request-Reason`` header or the
    ``$requestReason`` query parameter.

    At most MAX_REASON_LENGTH characters with no control characters; "" when
    none is given. Both forms at once must agree. InvalidArgument otherwise.
    """
    if header is not None:
        header = _utf8_header(header)
    if header is not None and param is not None and header != param:
        raise errors.invalid_argument(
            f"{REASON_HEADER} and {REASON_PARAM} give two different reasons.",
            "INVALID_REQUEST_REASON")
    reason = header if header is not None else (param or "")
    if len(reason) > MAX_REASON_LENGTH:
        raise errors.invalid_argument(
            f"The request reason is longer than {MAX_REASON_LENGTH} characters.",
            "INVALID_REQUEST_REASON", limit=str(MAX_REASON_LENGTH))
    if any(unicodedata.category(char) == "Cc" for char in reason):
        raise errors.invalid_argument("The request reason may not hold control characters.",
                                      "INVALID_REQUEST_REASON")
    return reason


def _utf8_header(value: str) -> str:
    """A header value as the client meant it: WSGI hands headers over as
    latin-1 (PEP 3333), so UTF-8 bytes arrive as mojibake; undo that."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


# --- fields: partial responses ------------------------------------------------------


class _MaskSyntax(ValueError):
    """A malformed field mask (a 400 at the edge)."""


def parse_mask(text: str) -> FieldMask | None:
    """The mask of a ``fields`` value; None for an empty one (the whole answer).

    Grammar (Google's partial response syntax)::

        mask      = selection *( "," selection )
        selection = path [ "(" mask ")" ]
        path      = name *( "/" name )
        name      = 1*( ALPHA / DIGIT / "_" / "@" / "$" / "-" / "." ) / "*"

    ``a/b`` selects ``b`` within ``a``; ``a(b,c)`` selects ``b`` and ``c``
    within ``a``; within a list each element is masked; ``*`` selects every
    field. Raises InvalidArgument naming the position of the first problem.
    """
    if not text:
        return None
    if len(text) > MAX_MASK_LENGTH:
        raise errors.invalid_argument(
            f"fields is longer than {MAX_MASK_LENGTH} characters.", "INVALID_FIELD_MASK")
    parser = _MaskParser(text)
    try:
        mask = parser.mask(depth=0)
        if parser.position != len(text):
            raise _MaskSyntax(f"unexpected {text[parser.position]!r}")
    except _MaskSyntax as exc:
        raise errors.invalid_argument(
            f"fields is not a valid field mask at character {parser.position + 1}: {exc}.",
            "INVALID_FIELD_MASK") from None
    return mask


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@$-.")


class _MaskParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def _peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else ""

    def mask(self, depth: int) -> FieldMask:
        if depth > MAX_MASK_DEPTH:
            raise _MaskSyntax(f"nested deeper than {MAX_MASK_DEPTH} levels")
        mask: FieldMask = {}
        while True:
            _merge(mask, self.selection(depth))
            if self._peek() != ",":
                return mask
            self.position += 1

    def selection(self, depth: int) -> FieldMask:
        path = [self.name()]
        while self._peek() == "/":
            self.position += 1
            path.append(self.name())
        inner: FieldMask | None = None
        if self._peek() == "(":
            self.position += 1
            inner = self.mask(depth + 1)
            if self._peek() != ")":
                raise _MaskSyntax("expected ')'" if self._peek() else "a '(' is never closed")
            self.position += 1
        node: FieldMask | None = inner
        for name in reversed(path):
            node = {name: node}
        assert node is not None
        return node

    def name(self) -> str:
        start = self.position
        if self._peek() == "*":
            self.position += 1
            return "*"
        while self._peek() and self._peek() in _NAME_CHARS:
            self.position += 1
        if self.position == start:
            found = self._peek()
            raise _MaskSyntax(f"expected a field name, found {found!r}" if found
                              else "expected a field name at the end")
        return self.text[start:self.position]


def _merge(into: FieldMask, more: FieldMask) -> None:
    """Unites two masks: a field selected whole stays whole."""
    for name, inner in more.items():
        if name not in into:
            into[name] = inner
        elif into[name] is None or inner is None:
            into[name] = None
        else:
            existing = into[name]
            assert existing is not None
            _merge(existing, inner)


def apply_mask(value: Any, mask: FieldMask | None) -> Any:
    """``value`` with only the fields ``mask`` selects (lists element by element)."""
    if mask is None:
        return value
    if isinstance(value, list):
        return [apply_mask(item, mask) for item in value]
    if not isinstance(value, dict):
        return value  # a scalar has no fields to select: kept as it is
    kept: dict[str, Any] = {}
    wildcard = mask.get("*", ...)
    for key, item in value.items():
        if key in mask:
            kept[key] = apply_mask(item, mask[key])
        elif wildcard is not ...:
            kept[key] = apply_mask(item, wildcard)
    return kept
