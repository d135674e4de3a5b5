"""The HTTP edge: a Flask request in, a JSON response out.

Order of checks (AIP-193; docs/architecture.md, "Order of checks"): route (404/405/400 name),
body size from Content-Length (413), token (401), scope (403
insufficient_scope), permission (403, the same whether the operation exists or
not), body (400), then the use case (404 for a missing operation). Every
failure is an api-core exception rendered here, once; anything else is a
logged 500 with a generic body.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import flask
from google.api_core import exceptions

from lib.core import errors, logs, telemetry
from lib.core.config import Settings
from lib.core.service import OperationsService
from lib.edge import console, sysparams
from lib.edge.auth import Principal, TokenVerifier, bearer_token, require_scope
from lib.edge.policy import Policy, check_permission
from lib.edge.routes import RouteMatch, RouteTable

log = logging.getLogger("operations.api")

REALM = "operations"
# List's own query parameters; every method also takes Google's system
# parameters (lib.edge.sysparams).
_LIST_PARAMS = frozenset({"filter", "pageSize", "pageToken", "returnPartialSuccess"})


class OperationsApi:
    """Serves the route table's surfaces over HTTP."""

    def __init__(self, settings: Settings, routes: RouteTable, verifier: TokenVerifier,
                 policy: Policy, service: Callable[[], OperationsService]) -> None:
        self._settings = settings
        self._routes = routes
        self._verifier = verifier
        self._policy = policy
        self._service = service  # built on first use: no client at import time
        self._console = console.Console()  # reads its files on first use

    def handle(self, request: flask.Request) -> flask.Response:
        path = _raw_path(request).split("?", 1)[0]
        if console.is_console_path(path):
            return self._console.respond(request, path)  # static files: no token needed
        started = time.perf_counter()
        with (logs.context(**logs.trace_fields(request.headers, self._settings.project)),
              telemetry.server_span(request.method, request.headers) as span):
            matched: list[RouteMatch] = []
            system: list[sysparams.SystemParameters] = []
            try:
                status, body = self._dispatch(request, matched, system)
                response = _json_response(status, body, system)
            except exceptions.GoogleAPICallError as exc:
                response = self._error_response(exc, matched[0] if matched else None, system)
            except Exception:
                log.exception("unhandled error")
                response = self._error_response(errors.internal_error(), None, system)
            span.finish(response.status_code, matched[0].route.template if matched else None)
            logs.info(log, "request", {
                "httpRequest": {"requestMethod": request.method,
                                "status": response.status_code,
                                "latency": f"{time.perf_counter() - started:.6f}s"},
                "route": matched[0].route.template if matched else None,
            })
            return response

    def _dispatch(self, request: flask.Request, matched: list[RouteMatch],
                  system: list[sysparams.SystemParameters]) -> tuple[int, Any]:
        match = self._routes.match(request.method, _raw_path(request))
        matched.append(match)
        route, name = match.route, match.name
        logs.bind(operation=name)
        length = request.content_length
        if length is not None and length > self._settings.max_request_bytes:
            # functions-framework reads every body after the response (its
            # read_request hook); mark this one read so the 413 goes out now.
            # gunicorn drains what the client still sends, after the answer.
            request._cached_data = b""
            raise _too_large(self._settings.max_request_bytes)
        principal = self._authenticate(request)
        require_scope(principal, route.scopes)
        check_permission(self._policy, principal, route.permission, name)
        params, query = sysparams.parse(
            request.args.lists() if request.environ.get("QUERY_STRING") else (), request.headers,
            _LIST_PARAMS if route.action == "list" else frozenset())
        system.append(params)
        if params.log_fields:
            logs.bind(**params.log_fields)  # the reason, on a cancel, is also the cancel's
        reason = params.reason
        # RFC 9112 6.3: a request with neither Content-Length nor Transfer-Encoding
        # has no body; a Get (nearly every request) reads nothing.
        body = (self._read_json(request)
                if length or "HTTP_TRANSFER_ENCODING" in request.environ else None)
        service = self._service()
        if route.action == "get":
            if body:
                raise errors.invalid_argument("GetOperation takes no request body.")
            return 200, service.get_operation(name)
        if route.action == "cancel":
            _check_cancel_body(body, name)
            service.cancel_operation(name, principal.id, reason)
            return 200, {}
        if route.action == "create_job":
            return 200, service.create_job(name, body or {}, principal.id,
                                           operation_template=match.operation_template(),
                                           target_template=match.target_template())
        if route.action == "list":
            if body:
                raise errors.invalid_argument("ListOperations takes no request body.")
            return 200, service.list_operations(name, query)
        if route.action == "delete":
            if body:
                raise errors.invalid_argument("DeleteOperation takes no request body.")
            service.delete_operation(name)
            return 200, {}
        return 200, service.wait_operation(name, body or {})

    def _authenticate(self, request: flask.Request) -> Principal:
        token = bearer_token(request.headers,
                             trust_forwarded=self._settings.trust_forwarded_authorization,
                             max_length=self._settings.max_token_length)
        principal = self._verifier.verify(token)
        logs.bind(principal=principal.id)
        return principal

    def _read_json(self, request: flask.Request) -> dict[str, Any] | None:
        """The JSON object in the body, None when there is none; 400/413 otherwise."""
        limit = self._settings.max_request_bytes
        try:
            data = request.stream.read(limit + 1)
        except Exception:
            # Broken chunked framing or a body cut short (gunicorn and werkzeug
            # raise their own classes): the client's fault, and the stream is
            # spent, so functions-framework must not try to drain it again.
            request._cached_data = b""
            raise errors.invalid_argument("The request body could not be read: its framing "
                                          "is broken or it was cut short.",
                                          "MALFORMED_BODY") from None
        if len(data) > limit:
            raise _too_large(limit)
        if not data.strip():
            return None
        if not _is_json(request.mimetype or "application/json"):
            raise errors.invalid_argument("The request body must be application/json.",
                                          "UNSUPPORTED_CONTENT_TYPE")
        try:
            body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise errors.invalid_argument("The request body is not valid UTF-8.",
                                          "MALFORMED_JSON") from None
        except (ValueError, RecursionError):
            # json.loads raises RecursionError, not ValueError, on deep nesting
            raise errors.invalid_argument("The request body is not valid JSON.",
                                          "MALFORMED_JSON") from None
        if not isinstance(body, dict):
            raise errors.invalid_argument("The request body must be a JSON object.",
                                          "MALFORMED_JSON")
        return body

    def _error_response(self, exc: exceptions.GoogleAPICallError, match: RouteMatch | None,
                        system: list[sysparams.SystemParameters]) -> flask.Response:
        status = errors.http_status(exc)
        if status >= 500:
            log.error("request failed", extra={"json_fields": {"status": errors.status_name(exc),
                                                                "reason": exc.reason}})
        response = _json_response(status, errors.error_body(exc), system)
        if isinstance(exc, exceptions.Unauthenticated):
            challenge = f'Bearer realm="{REALM}"'
            if exc.reason != errors.CREDENTIALS_MISSING:
                challenge += ', error="invalid_token"'
            response.headers["WWW-Authenticate"] = challenge
        elif exc.reason == errors.ACCESS_TOKEN_SCOPE_INSUFFICIENT and match is not None:
            scopes = " ".join(match.route.scopes)
            response.headers["WWW-Authenticate"] = (
                f'Bearer error="insufficient_scope", scope="{scopes}"')
        elif isinstance(exc, exceptions.ServiceUnavailable):
            response.headers["Retry-After"] = "1"
        elif isinstance(exc, exceptions.MethodNotAllowed):
            response.headers["Allow"] = exc.metadata.get("allowed", "") if exc.metadata else ""
        return response


def _raw_path(request: flask.Request) -> str:
    """The path as sent, still percent-encoded (Flask decodes %2F in .path)."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        raw = str(raw)
        if raw.lower().startswith(("http://", "https://")):
            # RFC 9112 3.2.2: absolute-form targets are to be accepted too.
            parts = urlsplit(raw)
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return raw
    return str(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))


def _is_json(mimetype: str) -> bool:
    """``application/json`` or a structured ``application/*+json`` type."""
    mimetype = mimetype.lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))


def _check_cancel_body(body: dict[str, Any] | None, name: str) -> None:
    """Cancel takes an empty body, ``{}`` or ``{"name": <the same name>}``."""
    if not body:
        return
    if set(body) != {"name"} or body["name"] != name:
        raise errors.invalid_argument(
            'A cancel body may only be empty, {} or {"name": <the operation name>}.',
            "INVALID_CANCEL_BODY")


def _too_large(limit: int) -> exceptions.GoogleAPICallError:
    return errors.error(errors.PayloadTooLarge,
                        f"The request body is larger than {limit} bytes.",
                        "REQUEST_TOO_LARGE", limit=str(limit))


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not JSON")


def _json_response(status: int, body: Any,
                   system: list[sysparams.SystemParameters]) -> flask.Response:
    """The JSON answer, shaped by the request's ``fields`` and ``prettyPrint``
    (compact, and whole, when the system parameters were not read)."""
    params = system[0] if system else sysparams.DEFAULTS
    return flask.Response(params.render(status, body), status=status,
                          mimetype="application/json")
