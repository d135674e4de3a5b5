"""The error model (google.api_core.exceptions) and its AIP-193 JSON form.

Every failure a caller sees is one of api-core's exception classes carrying a
``google.rpc.ErrorInfo``; ``error_body`` renders it once, at the HTTP edge.
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2

DOMAIN = "operations-service"

# Reasons (ErrorInfo.reason): UPPER_SNAKE_CASE, stable, documented in the README.
CREDENTIALS_MISSING = "CREDENTIALS_MISSING"
ACCESS_TOKEN_INVALID = "ACCESS_TOKEN_INVALID"
ACCESS_TOKEN_EXPIRED = "ACCESS_TOKEN_EXPIRED"
ACCESS_TOKEN_SCOPE_INSUFFICIENT = "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
IAM_PERMISSION_DENIED = "IAM_PERMISSION_DENIED"
TOKEN_VERIFIER_UNAVAILABLE = "TOKEN_VERIFIER_UNAVAILABLE"

# Statuses api-core leaves without a gRPC code, as the contract names them.
_STATUS_BY_HTTP = {405: "UNIMPLEMENTED", 413: "INVALID_ARGUMENT", 500: "INTERNAL"}


class PayloadTooLarge(exceptions.ClientError):
    """HTTP 413: the request body is over the configured limit (INVALID_ARGUMENT)."""

    code = 413


def error(
    cls: type[exceptions.GoogleAPICallError],
    message: str,
    reason: str | None = None,
    **metadata: str,
) -> exceptions.GoogleAPICallError:
    """Builds ``cls(message)`` with an ErrorInfo (reason defaults to the status)."""
    info = error_details_pb2.ErrorInfo(
        reason=reason or _status_name(cls), domain=DOMAIN, metadata=metadata
    )
    return cls(message, error_info=info)


def invalid_argument(
    message: str, reason: str = "INVALID_ARGUMENT", **metadata: str
) -> exceptions.GoogleAPICallError:
    """A 400 INVALID_ARGUMENT with the given reason."""
    return error(exceptions.InvalidArgument, message, reason, **metadata)


def status_name(exc: exceptions.GoogleAPICallError) -> str:
    """The ``google.rpc.Code`` name of an api-core exception."""
    return _status_name(type(exc))


def reason(exc: exceptions.GoogleAPICallError) -> str:
    """Its ErrorInfo reason, as ``error_body`` would render it (for log fields)."""
    return exc.reason or status_name(exc)


def _status_name(cls: type[exceptions.GoogleAPICallError]) -> str:
    grpc_code = getattr(cls, "grpc_status_code", None)
    if grpc_code is not None:
        return str(grpc_code.name)
    return _STATUS_BY_HTTP.get(int(cls.code or 500), "UNKNOWN")


def http_status(exc: exceptions.GoogleAPICallError) -> int:
    return int(exc.code or 500)


def error_body(exc: exceptions.GoogleAPICallError) -> dict[str, Any]:
    """The AIP-193 JSON body: ``{"error": {code, message, status, details}}``."""
    info = exc._error_info or error_details_pb2.ErrorInfo(
        reason=status_name(exc), domain=DOMAIN
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    return {
        "error": {
            "code": http_status(exc),
            "message": exc.message,
            "status": status_name(exc),
            "details": [json_format.MessageToDict(packed)],
        }
    }


def internal_error() -> exceptions.GoogleAPICallError:
    """The generic 500: says nothing of the cause (that goes to the log)."""
    return error(exceptions.InternalServerError, "Internal error.", "INTERNAL")
