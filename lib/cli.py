"""``python -m lib.cli``: a command-line client of the Operations service, for people.

    python -m lib.cli get NAME
    python -m lib.cli list PARENT [--filter F] [--page-size N]
    python -m lib.cli cancel NAME
    python -m lib.cli delete NAME
    python -m lib.cli wait NAME [--timeout SECONDS]
    python -m lib.cli create PARENT --kind K [--param KEY=VALUE]... [--request-id UUID]
                                [--operation-timeout DURATION]

Options, before or after the command: ``--endpoint`` (else ``OPERATIONS_ENDPOINT``,
else http://127.0.0.1:8080), ``--token`` (else ``OPERATIONS_TOKEN``; on a
loopback endpoint a dev token from ``lib.devtoken`` is minted when neither is
given), ``--surface`` (v1 or v3beta1; the paths come from ``lib.routes``).

get, list, cancel and delete go through google-api-core's REST operations
client. wait and create have no binding there: they are POSTed through the same
transport's authorized session, to paths transcoded from the same route table.
Operations print on stdout as JSON; errors print one line on stderr.
Exit codes: 0 done; 1 an error (wait: done with an error); 2 usage; 3 wait:
still running at the timeout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

import google.oauth2.credentials
import requests
from google.api_core import exceptions, operations_v1, path_template
from google.auth.transport.requests import AuthorizedSession
from google.longrunning import operations_pb2
from google.protobuf import json_format, struct_pb2

from lib import devtoken
from lib.routes import DEFAULT_SURFACES

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# One server-side wait per slice: short enough for the progress bar to move,
# long enough that a waiting client makes one request every couple of seconds.
WAIT_SLICE_SECONDS = 2.0
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_STILL_RUNNING = 0, 1, 2, 3
_RPCS = {"get": "GetOperation", "list": "ListOperations",
         "cancel": "CancelOperation", "delete": "DeleteOperation"}


class UsageError(Exception):
    """A command the service cannot be asked as given (exit 2)."""


def http_rules(surface: str) -> dict[str, list[dict[str, str]]]:
    """The surface's HTTP rules per action, in api-core's ``http_options`` form.

    A create path without a variable (``POST /v1/jobs``, parent ``operations``)
    is no transcoding rule: ``literal_parents`` maps its parent to its path.
    """
    rules: dict[str, list[dict[str, str]]] = {}
    for route in DEFAULT_SURFACES[surface]["routes"]:
        if route.get("parent"):
            continue
        rule = {"method": route["method"].lower(), "uri": route["template"]}
        if rule["method"] == "post":
            rule["body"] = "*"
        rules.setdefault(route["action"], []).append(rule)
    return rules


def literal_parents(surface: str) -> dict[str, str]:
    """Parent -> path of the surface's create routes that name their parent
    literally (``{"operations": "/v1/jobs"}`` on v1)."""
    return {route["parent"]: route["template"] for route in DEFAULT_SURFACES[surface]["routes"]
            if route["action"] == "create_job" and route.get("parent")}


class OperationsCli:
    """The REST operations client for one endpoint and surface, plus wait and create."""

    def __init__(self, endpoint: str, token: str, surface: str) -> None:
        self._endpoint = endpoint
        self._surface = surface
        self._rules = http_rules(surface)
        self._literal_parents = literal_parents(surface)
        credentials = google.oauth2.credentials.Credentials(token)
        transport = operations_v1.OperationsRestTransport(
            host=endpoint,  # with its scheme: the transport ignores url_scheme
            credentials=credentials,
            http_options={f"google.longrunning.Operations.{rpc}": self._rules.get(action, [])
                          for action, rpc in _RPCS.items()},
        )
        # A static token cannot be refreshed: without this, google-auth answers a
        # 401 with a RefreshError instead of letting the service's message through.
        transport._session = AuthorizedSession(credentials, refresh_status_codes=())
        self._session = transport._session
        self.client = operations_v1.AbstractOperationsClient(transport=transport)

    def request(self, action: str, **fields: Any) -> dict[str, Any]:
        """The transcoded request of ``action``; UsageError if no path of it fits."""
        rules = self._rules.get(action, [])
        try:
            return dict(path_template.transcode(rules, **fields))
        except ValueError:
            paths = ", ".join(rule["uri"] for rule in rules) or "none"
            value = fields.get("name", fields.get("parent"))
            raise UsageError(f"{value!r} fits no {self._surface} path of {action} "
                             f"(paths: {paths})") from None

    def post(self, action: str, fields: dict[str, Any],
             http_timeout: float) -> operations_pb2.Operation:
        """POSTs ``fields`` (path variable and body) to ``action``'s path."""
        if action == "create_job" and fields.get("parent") in self._literal_parents:
            uri = self._literal_parents[fields["parent"]]
            body = {key: value for key, value in fields.items() if key != "parent"}
        else:
            request = self.request(action, **fields)
            uri, body = request["uri"], request.get("body") or {}
        response = self._session.post(self._endpoint + uri, json=body, timeout=http_timeout)
        if response.status_code >= 400:
            raise exceptions.from_http_response(response)
        return json_format.Parse(response.content, operations_pb2.Operation())


class ProgressBar:
    """``metadata.progressPercent`` on a stream: redrawn in place on a terminal,
    one line per change otherwise (logs, pipes)."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last: tuple[float, str] | None = None

    def show(self, operation: operations_pb2.Operation) -> None:
        metadata = struct_pb2.Struct()
        if not operation.metadata.Unpack(metadata):
            return
        values = json_format.MessageToDict(metadata)
        state = (float(values.get("progressPercent", 0)), str(values.get("statusMessage", "")))
        if state == self._last:
            return
        self._last = state
        filled = round(self.WIDTH * min(max(state[0], 0.0), 100.0) / 100)
        line = f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {state[0]:3.0f}% {state[1]}"
        self._stream.write(f"\r{line}\x1b[K" if self._tty else line + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._tty and self._last is not None:
            self._stream.write("\n")
            self._stream.flush()


def wait(cli: OperationsCli, name: str, timeout: float | None,
         bar: ProgressBar) -> operations_pb2.Operation:
    """Server-side waits of WAIT_SLICE_SECONDS until done or ``timeout`` (None: forever)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    slice_seconds = 0.0  # the first answer shows the state at once
    try:
        while True:
            started = time.monotonic()
            operation = cli.post("wait", {"name": name, "timeout": f"{slice_seconds:.3f}s"},
                                 http_timeout=slice_seconds + 30)
            bar.show(operation)
            left = math.inf if deadline is None else deadline - time.monotonic()
            if operation.done or left <= 0:
                return operation
            if slice_seconds and time.monotonic() - started < slice_seconds / 2:
                time.sleep(min(0.5, left))  # the server capped the wait: don't spin
            slice_seconds = max(0.0, min(WAIT_SLICE_SECONDS, left))
    finally:
        bar.close()


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; the value is JSON when it parses (3, 0.5, true), else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    cli = OperationsCli(args.endpoint, args.token, args.surface)
    if args.command == "list":
        cli.request("list", name=args.parent)
        pager = cli.client.list_operations(args.parent, args.filter, page_size=args.page_size)
        operations = [json_format.MessageToDict(operation) for operation in pager]
        print(json.dumps({"operations": operations}, indent=2), file=out)
        return EXIT_OK
    if args.command == "create":
        job = {"parent": args.parent, "kind": args.kind, "params": dict(args.param)}
        if args.request_id:
            job["requestId"] = args.request_id
        if args.operation_timeout:
            job["timeout"] = args.operation_timeout
        created = cli.post("create_job", job, http_timeout=30)
        print(json_format.MessageToJson(created), file=out)
        return EXIT_OK
    cli.request(args.command, name=args.name)
    if args.command == "get":
        print(json_format.MessageToJson(cli.client.get_operation(args.name)), file=out)
    elif args.command in ("cancel", "delete"):
        rpc = (cli.client.cancel_operation if args.command == "cancel"
               else cli.client.delete_operation)
        rpc(args.name)
        print("{}", file=out)  # google.protobuf.Empty, as the service answers
        print(f"{args.command}: {args.name}: OK", file=err)
    else:
        operation = wait(cli, args.name, args.timeout, ProgressBar(err))
        print(json_format.MessageToJson(operation), file=out)
        if not operation.done:
            print(f"still running after {args.timeout:g}s: {args.name}", file=err)
            return EXIT_STILL_RUNNING
        if operation.HasField("error"):
            print(f"operation failed: code {operation.error.code}: {operation.error.message}",
                  file=err)
            return EXIT_ERROR
    return EXIT_OK


def describe(exc: exceptions.GoogleAPICallError) -> str:
    """``HTTP 404 NOT_FOUND: <the AIP-193 message> (REASON)``, never the URL or token."""
    try:
        error = exc.response.json()["error"]
        text = f"HTTP {error['code']} {error['status']}: {error['message']}"
    except (AttributeError, KeyError, TypeError, ValueError):
        text = f"HTTP {exc.code}: {exc.message}"
    return f"{text} ({exc.reason})" if exc.reason else text


def parser() -> argparse.ArgumentParser:
    def common(defaults: bool) -> argparse.ArgumentParser:
        """The shared options. Each subcommand repeats them without defaults
        (SUPPRESS), so they work after the command too without undoing them."""
        options = argparse.ArgumentParser(add_help=False)

        def default(value: str | None) -> str | None:
            return value if defaults else argparse.SUPPRESS

        options.add_argument("--endpoint",
                             default=default(os.environ.get("OPERATIONS_ENDPOINT",
                                                            DEFAULT_ENDPOINT)),
                             help="service URL with its scheme (env OPERATIONS_ENDPOINT)")
        options.add_argument("--token", default=default(os.environ.get("OPERATIONS_TOKEN")),
                             help="bearer token (env OPERATIONS_TOKEN)")
        options.add_argument("--surface", choices=sorted(DEFAULT_SURFACES),
                             default=default("v1"), help="API surface (default v1)")
        return options

    main = argparse.ArgumentParser(prog="python -m lib.cli", parents=[common(True)],
                                   description="Get, list, cancel, delete and wait on operations.")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, text in [("get", "print an operation"), ("cancel", "request cancellation"),
                          ("delete", "forget an operation (its work is not cancelled)"),
                          ("wait", "wait until done, with a progress bar on stderr")]:
        sub = commands.add_parser(command, parents=[common(False)], help=text)
        sub.add_argument("name", help="the operation's name")
        if command == "wait":
            sub.add_argument("--timeout", type=float, help="seconds (default: until done)")
    listing = commands.add_parser("list", parents=[common(False)], help="list, every page")
    listing.add_argument("parent", help="e.g. projects/P/locations/L, or operations")
    listing.add_argument("--filter", help='AIP-160, e.g. "done = true"')
    listing.add_argument("--page-size", type=int, help="operations per request")
    create = commands.add_parser("create", parents=[common(False)], help="start a job")
    create.add_argument("parent", help="operations or projects/P/locations/L (v1); "
                                       "projects/P or projects/P/locations/L (v3beta1)")
    create.add_argument("--kind", required=True, help="e.g. demo.countdown")
    create.add_argument("--param", type=parse_param, action="append", default=[],
                        metavar="KEY=VALUE", help="a job param (repeatable)")
    create.add_argument("--request-id", metavar="UUID",
                        help="AIP-155: repeating it returns the operation it first made")
    create.add_argument("--operation-timeout", metavar="DURATION",
                        help='the operation\'s deadline from now, e.g. "3600s"')
    return main


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout,
         err: TextIO = sys.stderr) -> int:
    arguments = parser()
    args = arguments.parse_args(argv)
    args.endpoint = args.endpoint.rstrip("/")
    host = urlsplit(args.endpoint).hostname
    if urlsplit(args.endpoint).scheme not in ("http", "https") or not host:
        arguments.error(f"--endpoint must be a URL such as {DEFAULT_ENDPOINT}")
    if getattr(args, "timeout", None) is not None and args.timeout < 0:
        arguments.error("--timeout may not be negative")
    if not args.token:
        if host not in LOOPBACK:
            arguments.error("no token: pass --token or set OPERATIONS_TOKEN")
        args.token = devtoken.mint(audience=args.endpoint)  # the dev issuer's audience
        print(f"note: no token given; using a dev token from lib.devtoken for {args.endpoint}",
              file=err)
    try:
        return run(args, out, err)
    except UsageError as exc:
        print(f"usage error: {exc}", file=err)
        return EXIT_USAGE
    except exceptions.RetryError as exc:
        cause = exc.cause
        text = describe(cause) if isinstance(cause, exceptions.GoogleAPICallError) else str(exc)
        print(f"error: {text}", file=err)
    except exceptions.GoogleAPICallError as exc:
        print(f"error: {describe(exc)}", file=err)
    except requests.RequestException as exc:
        print(f"error: cannot reach {args.endpoint}: {type(exc).__name__}", file=err)
    except json_format.ParseError as exc:
        print(f"error: the service answered with an unexpected body: {exc}", file=err)
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    except BrokenPipeError:  # stdout piped to e.g. head: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
