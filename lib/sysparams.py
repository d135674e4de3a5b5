"""Google's system parameters: the query parameters and headers every method takes.

https://cloud.google.com/apis/docs/system-parameters lists them. Here each is
parsed and checked once, at the HTTP edge, into ``SystemParameters``.
"""

from __future__ import annotations

import unicodedata

from lib import errors

MAX_REASON_LENGTH = 512
REASON_HEADER = "X-Goog-Request-Reason"
REASON_PARAM = "$requestReason"


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
