"""Hostile requests over HTTP with a valid token: each gets its documented 4xx with an
AIP-193 JSON body, never a 5xx, never HTML.

Extends test_http_errors.py (which covers the create body, 64 KiB limits, and bad
names on Get and Cancel) to every route: 10 MB bodies with and without
Content-Length, deep and broken JSON on cancel and wait, control characters in names
and filters, long query strings, unknown and repeated parameters, bodies that are not
JSON, bodies on Get/Delete/List, broken chunked framing and request-target forms.

Where gunicorn refuses the request before the function runs (request line or headers
it cannot parse, Content-Length/Transfer-Encoding it will not frame), its own HTML
error page is the answer: those cases are in GUNICORN_REFUSES, asserting the status.
Product bugs are kept as ``xfail(strict=True)`` tests whose reason says what is wrong.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from test_http_errors import assert_error, raw_request

JSON = ("Content-Type", "application/json")
TEN_MB = 10 * 1024 * 1024
MISSING = "projects/p/locations/l/operations/missing"


def send(stack, auth_headers, method: str, path: str, body: bytes | None = None,
         content_type: str | None = "application/json", headers=()) -> Any:
    """``path`` exactly as written (http.client: no normalization), with the token."""
    sent = [*auth_headers.items(), *headers]
    if content_type is not None and body is not None:
        sent.append(("Content-Type", content_type))
    return raw_request(stack, method, path, headers=sent, body=body)


def exchange(stack, data: bytes, *, half_close: bool = False, timeout: float = 10) -> Any:
    """Writes ``data`` (a whole request, framing included) on a fresh socket and
    reads one response; ``half_close`` ends the client's side after writing."""
    url = urlsplit(stack.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
    try:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()  # skips a 100 Continue
        content = response.read()
        return _Answer(response.status, response.headers, content)
    finally:
        sock.close()


class _Answer:
    def __init__(self, status: int, headers: Any, content: bytes) -> None:
        self.status_code, self.headers, self.content = status, headers, content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def request_bytes(stack, method: str, target: str, headers: list[tuple[str, str]],
                  body: bytes = b"") -> bytes:
    host = urlsplit(stack.url).netloc
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def warm_up(stack, headers: dict[str, str]) -> None:
    """One list and one create, retried while 503: the first Firestore calls of a fresh
    stack can take longer than the e2e stack's 5 s store deadline."""
    session = requests.Session()
    session.headers.update(headers)
    parent = f"projects/warm-{uuid.uuid4().hex[:10]}/locations/us"
    calls = [("GET", f"/v1/{parent}/operations", None),
             ("POST", f"/v1/{parent}/jobs",
              {"kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}})]
    try:
        for method, path, body in calls:
            deadline = time.monotonic() + 30
            while True:
                response = session.request(method, stack.url + path, json=body, timeout=30)
                if response.status_code != 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert response.status_code == 200, response.text
    finally:
        session.close()


@pytest.fixture(scope="module", autouse=True)
def _warm_store(stack, auth_headers) -> None:
    warm_up(stack, auth_headers)


def cancel(api, name: str) -> None:
    """Cancels, retrying while the answer is 503 or 409 as a client should: a cancel
    that collides with the worker's claim of the same job can wait on the emulator's
    lock past the e2e stack's 5 s store deadline."""
    for _ in range(10):
        response = api("POST", f"/v1/{name}:cancel")
        if response.status_code not in (409, 503):
            break
        time.sleep(0.5)
    assert response.status_code == 200, response.text


def create_job(api, parent: str, steps: int = 1, step_seconds: float = 0) -> str:
    response = api("POST", f"/v1/{parent}/jobs",
                   json={"kind": "demo.countdown",
                         "params": {"steps": steps, "stepSeconds": step_seconds}})
    assert response.status_code == 200, response.text
    return response.json()["name"]


# --- 10 MB bodies: 413 from Content-Length, or once 64 KiB + 1 have been read -----------

ROUTES = {
    "create": ("POST", "/v1/{parent}/jobs"),
    "cancel": ("POST", "/v1/{parent}/operations/x:cancel"),
    "wait": ("POST", "/v1/{parent}/operations/x:wait"),
    "v3beta1 wait": ("POST", "/v3beta1/{parent}/operations/x:wait"),
    "get": ("GET", "/v1/{parent}/operations/x"),
    "delete": ("DELETE", "/v1/{parent}/operations/x"),
    "list": ("GET", "/v1/{parent}/operations"),
}


def _ten_megabytes() -> bytes:
    return b'{"kind": "demo.countdown", "params": {"steps": 1}}' + b" " * TEN_MB


@pytest.mark.parametrize("chunked", [False, True],
                         ids=["with Content-Length", "chunked, without Content-Length"])
@pytest.mark.parametrize(("method", "template"), ROUTES.values(), ids=ROUTES.keys())
def test_a_10_mb_body_is_413_on_every_route(api, auth_headers, parent, method, template,
                                           chunked):
    body = _ten_megabytes()
    data: Any = (body[i:i + 65536] for i in range(0, len(body), 65536)) if chunked else body
    response = api(method, template.format(parent=parent), data=data,
                   headers={**auth_headers, "Content-Type": "application/json"})
    assert ("Transfer-Encoding" in response.request.headers) == chunked
    assert_error(response, 413, "INVALID_ARGUMENT", "REQUEST_TOO_LARGE")


def test_a_10_mb_content_length_with_expect_100_continue_is_413(stack, auth_headers, parent):
    # gunicorn answers 100 Continue by itself; the function still refuses from the header.
    data = request_bytes(stack, "POST", f"/v1/{parent}/jobs",
                         [*auth_headers.items(), JSON, ("Content-Length", str(TEN_MB)),
                          ("Expect", "100-continue")])
    assert_error(exchange(stack, data), 413, "INVALID_ARGUMENT", "REQUEST_TOO_LARGE")


# --- JSON that is not a JSON object, on cancel and wait (create: test_http_errors) -----

BAD_JSON = {
    "arrays nested 10,000 deep": b"[" * 10_000 + b"]" * 10_000,
    "objects nested 10,000 deep": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "a name nested 10,000 deep": b'{"name":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
    "an overlong UTF-8 slash": b'{"name": "\xc0\xaf"}',
    "UTF-16": '{"timeout": "1s"}'.encode("utf-16"),
    "a UTF-8 byte order mark": b'\xef\xbb\xbf{"timeout": "1s"}',
    "NaN": b'{"timeout": NaN}',
    "a number with 5,000 digits": b'{"timeout": ' + b"9" * 5000 + b"}",
    "a truncated object": b'{"timeout": "1s"',
    "two objects": b'{}{}',
    "JSON null": b"null",
    "a JSON string": b'"1s"',
    "a NUL byte after the object": b'{}\x00',
}


@pytest.mark.parametrize("action", ["cancel", "wait"])
@pytest.mark.parametrize("body", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_a_body_that_is_not_a_json_object_is_400_on_cancel_and_wait(stack, auth_headers,
                                                                    body, action):
    response = send(stack, auth_headers, "POST", f"/v1/{MISSING}:{action}", body)
    assert_error(response, 400, "INVALID_ARGUMENT")


ODD_VALUES = {
    "a lone surrogate in the name": (b'{"name": "\\ud800"}', "cancel"),
    "a NUL in the name": (b'{"name": "projects/p/locations/l/operations/missing\\u0000"}',
                          "cancel"),
    "the name as a number": (b'{"name": 1e400}', "cancel"),
    "a lone surrogate as the timeout": (b'{"timeout": "\\udfff"}', "wait"),
    "a timeout of 1e400": (b'{"timeout": 1e400}', "wait"),
    "a timeout with 10,000 digits": (b'{"timeout": "' + b"9" * 10_000 + b's"}', "wait"),
    "a negative timeout": (b'{"timeout": "-1s"}', "wait"),
    "a timeout object": (b'{"timeout": {"seconds": 1}}', "wait"),
    "a NUL in the timeout": (b'{"timeout": "1s\\u0000"}', "wait"),
}


@pytest.mark.parametrize(("body", "action"), ODD_VALUES.values(), ids=ODD_VALUES.keys())
def test_a_well_formed_body_with_a_hostile_value_is_400(stack, auth_headers, body, action):
    response = send(stack, auth_headers, "POST", f"/v1/{MISSING}:{action}", body)
    assert_error(response, 400, "INVALID_ARGUMENT")


# --- bodies that are not JSON ------------------------------------------------------------

MULTIPART = ("multipart/form-data; boundary=XyZ",
             b'--XyZ\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
             b"--XyZ--\r\n")
NOT_JSON = {
    "text/plain": ("text/plain", b"{name}"),
    "a form": ("application/x-www-form-urlencoded", b"name={name}"),
    "multipart": MULTIPART,
    "octet-stream": ("application/octet-stream", b"{name}"),
    "XML": ("application/xml", b"<name>{name}</name>"),
    "JSON mislabelled text/plain": ("text/plain", b'{"name": "{name}"}'),
}


@pytest.mark.parametrize(("content_type", "body"), NOT_JSON.values(), ids=NOT_JSON.keys())
def test_a_cancel_body_that_is_not_json_is_400_and_cancels_nothing(api, stack, auth_headers,
                                                                   parent, content_type,
                                                                   body):
    name = create_job(api, parent, steps=600, step_seconds=1)
    try:
        response = send(stack, auth_headers, "POST", f"/v1/{name}:cancel",
                        body.replace(b"{name}", name.encode()), content_type)
        assert_error(response, 400, "INVALID_ARGUMENT", "UNSUPPORTED_CONTENT_TYPE")
        operation = api("GET", f"/v1/{name}").json()
        assert not operation.get("done")
        assert operation["metadata"]["value"]["requestedCancellation"] is False
    finally:
        cancel(api, name)


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/plain", b'{"timeout": "0s"}'),
    ("application/x-www-form-urlencoded", b"timeout=0s"),
    MULTIPART,
], ids=["text/plain", "a form", "multipart"])
def test_a_wait_body_that_is_not_json_is_400(stack, auth_headers, content_type, body):
    response = send(stack, auth_headers, "POST", f"/v1/{MISSING}:wait", body, content_type)
    assert_error(response, 400, "INVALID_ARGUMENT", "UNSUPPORTED_CONTENT_TYPE")


def test_a_multipart_create_body_is_400(stack, auth_headers, parent):
    content_type, body = MULTIPART
    response = send(stack, auth_headers, "POST", f"/v1/{parent}/jobs",
                    body.replace(b"{name}", b"demo.countdown"), content_type)
    assert_error(response, 400, "INVALID_ARGUMENT", "UNSUPPORTED_CONTENT_TYPE")


# --- a body on Get, Delete and List --------------------------------------------------------

BODIES_REFUSED = {
    "Delete with a JSON object": ("DELETE", "/v1/{missing}", "application/json",
                                  b'{"name": "x"}', None),
    "Delete with text/plain": ("DELETE", "/v1/{missing}", "text/plain", b"hello",
                               "UNSUPPORTED_CONTENT_TYPE"),
    "Delete with malformed JSON": ("DELETE", "/v1/{missing}", "application/json", b'{"a":',
                                   "MALFORMED_JSON"),
    "List with a JSON object": ("GET", "/v1/{parent}/operations", "application/json",
                                b'{"filter": "done = true"}', None),
    "List with a form": ("GET", "/v3beta1/{parent}/operations",
                         "application/x-www-form-urlencoded", b"pageSize=1",
                         "UNSUPPORTED_CONTENT_TYPE"),
    "Get with malformed JSON": ("GET", "/v1/{missing}", "application/json", b'{"a":',
                                "MALFORMED_JSON"),
    "Get with 10,000 nested arrays": ("GET", "/v1/{missing}", "application/json",
                                      b"[" * 10_000 + b"]" * 10_000, "MALFORMED_JSON"),
    "Get with multipart": ("GET", "/v1/{missing}", MULTIPART[0], MULTIPART[1],
                           "UNSUPPORTED_CONTENT_TYPE"),
}


@pytest.mark.parametrize(("method", "template", "content_type", "body", "reason"),
                         BODIES_REFUSED.values(), ids=BODIES_REFUSED.keys())
def test_a_body_on_get_delete_or_list_is_400(stack, auth_headers, parent, method, template,
                                             content_type, body, reason):
    response = send(stack, auth_headers, method, template.format(missing=MISSING, parent=parent),
                    body, content_type)
    assert_error(response, 400, "INVALID_ARGUMENT", reason)


@pytest.mark.parametrize(("method", "template", "status"), [
    ("GET", "/v1/{parent}/operations", 200),
    ("DELETE", "/v1/{missing}", 404),
    ("GET", "/v1/{missing}", 404),
], ids=["List", "Delete", "Get"])
def test_an_empty_json_object_on_get_delete_or_list_is_no_body(stack, auth_headers, parent,
                                                               method, template, status):
    response = send(stack, auth_headers, method,
                    template.format(missing=MISSING, parent=parent), b"{}")
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 404, "NOT_FOUND", "OPERATION_NOT_FOUND")


def test_a_json_object_body_on_get_is_400_like_on_list_and_delete(stack, auth_headers):
    response = send(stack, auth_headers, "GET", f"/v1/{MISSING}", b'{"name": "x"}')
    assert_error(response, 400, "INVALID_ARGUMENT")


# --- names in the path: control characters, dot segments, encoded slashes --------------

CONTROL_ESCAPES = {
    "NUL": "%00", "SOH": "%01", "BEL": "%07", "backspace": "%08", "TAB": "%09",
    "vertical tab": "%0B", "form feed": "%0C", "CR": "%0D", "ESC": "%1B", "unit separator": "%1F",
    "DEL": "%7F", "C1 PAD": "%C2%80", "C1 NEL": "%C2%85", "C1 APC": "%C2%9F",
    "line separator": "%E2%80%A8", "byte order mark": "%EF%BB%BF",
    "an overlong NUL": "%C0%80", "a lone surrogate in UTF-8": "%ED%A0%80",
}
NAME_PATHS = {
    "a v1 operations/** get": ("GET", "/v1/operations/a{c}b"),
    "a v1 operation id": ("GET", "/v1/projects/p/locations/l/operations/x{c}"),
    "a v1 location on list": ("GET", "/v1/projects/p/locations/{c}/operations"),
    "a v3beta1 project on list": ("GET", "/v3beta1/projects/p{c}/operations"),
    "a v3beta1 operation on delete": ("DELETE", "/v3beta1/projects/p/operations/{c}"),
    "a v1 operation on wait": ("POST", "/v1/projects/p/locations/l/operations/{c}x:wait"),
    "a v3beta1 operation on cancel": ("POST",
                                      "/v3beta1/projects/p/locations/l/operations/x{c}:cancel"),
    "a parent on create": ("POST", "/v1/projects/p/locations/l{c}/jobs"),
}


@pytest.mark.parametrize(("method", "template"), NAME_PATHS.values(), ids=NAME_PATHS.keys())
@pytest.mark.parametrize("escape", CONTROL_ESCAPES.values(), ids=CONTROL_ESCAPES.keys())
def test_an_encoded_control_character_in_a_name_is_400_invalid_name(stack, auth_headers,
                                                                    method, template, escape):
    response = send(stack, auth_headers, method, template.format(c=escape), b"")
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_NAME")


@pytest.mark.parametrize(("method", "template"), NAME_PATHS.values(), ids=NAME_PATHS.keys())
def test_an_encoded_line_feed_in_a_name_is_400_json_not_flasks_html_404(stack, auth_headers,
                                                                        method, template):
    response = send(stack, auth_headers, method, template.format(c="%0A"), b"")
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_NAME")


DOT_AND_SLASH = {
    "'..' as a project on list": ("GET", "/v1/projects/../locations/l/operations"),
    "'%2E%2E' as a project on list": ("GET", "/v1/projects/%2E%2E/locations/l/operations"),
    "'%2e%2e' as a location on list": ("GET", "/v1/projects/p/locations/%2e%2e/operations"),
    "'.%2E' as a location on list": ("GET", "/v1/projects/p/locations/.%2E/operations"),
    "'%2E.' as a v3beta1 project": ("GET", "/v3beta1/projects/%2E./operations"),
    "'%2E' as an operation id": ("GET", "/v1/projects/p/locations/l/operations/%2E"),
    "'%2F' in a project on list": ("GET", "/v1/projects/p%2Fq/locations/l/operations"),
    "'%2f' in a v3beta1 project on list": ("GET", "/v3beta1/projects/p%2fq/operations"),
    "'..%2F..' in an operation id": ("GET", "/v1/operations/..%2F..%2Fetc"),
    "'%2F' in an operation on delete": ("DELETE", "/v1/projects/p/locations/l/operations/a%2Fb"),
    "'%2F' in an operation on wait": ("POST", "/v1/operations/a%2Fb:wait"),
    "'..' under operations/** on delete": ("DELETE", "/v1/operations/a/../b"),
    "'%2E%2E' under operations/** on wait": ("POST", "/v1/operations/a/%2E%2E:wait"),
    "'..' as a v3beta1 operation on cancel": ("POST", "/v3beta1/projects/p/operations/..:cancel"),
    "'%2E%2E' as a project on create": ("POST", "/v1/projects/%2E%2E/locations/l/jobs"),
    "'..' as a location on create": ("POST", "/v1/projects/p/locations/../jobs"),
    "a double-encoded slash": ("GET", "/v1/operations/a%252Fb"),
    "an encoded backslash": ("GET", "/v1/operations/a%5C..%5Cb"),
    "a raw backslash": ("GET", "/v1/operations/a\\b"),
    "an encoded colon (a verb in the name)": ("GET", "/v1/operations/x%3Acancel"),
    "an encoded question mark": ("GET", "/v1/operations/x%3Fa=1"),
    "a path parameter (;)": ("GET", "/v1/operations/x;jsessionid=1"),
}


@pytest.mark.parametrize(("method", "path"), DOT_AND_SLASH.values(), ids=DOT_AND_SLASH.keys())
def test_dot_segments_and_encoded_slashes_are_400_on_every_route(stack, auth_headers, method,
                                                                 path):
    body = b'{"kind": "demo.countdown", "params": {"steps": 1}}' if path.endswith("/jobs") else b""
    assert_error(send(stack, auth_headers, method, path, body), 400, "INVALID_ARGUMENT",
                 "INVALID_NAME")


@pytest.mark.parametrize("path", [
    "/v1/operations/" + "a" * 1_000_000,
    "/v1/operations/" + "a/" * 100_000 + "a",
    "/v1/projects/" + "p" * 100_000 + "/locations/l/operations",
], ids=["a 1 MB operation id", "100,000 segments under operations/**",
        "a 100 KB project on list"])
def test_a_very_long_name_is_400_invalid_name(stack, auth_headers, path):
    assert_error(send(stack, auth_headers, "GET", path), 400, "INVALID_ARGUMENT", "INVALID_NAME")


def test_an_operation_created_under_a_long_parent_can_be_fetched_and_cancelled(api, unique):
    parent = f"projects/{unique}{'p' * 470}/locations/l"
    assert len(parent) <= 512
    response = api("POST", f"/v1/{parent}/jobs",
                   json={"kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}})
    if response.status_code == 400:  # refusing the parent is a fine answer too
        assert_error(response, 400, "INVALID_ARGUMENT")
        return
    assert response.status_code == 200, response.text
    name = response.json()["name"]
    assert api("GET", f"/v1/{name}").status_code == 200
    cancel(api, name)


# --- filters and other query strings ------------------------------------------------------

FILTER_CONTROLS = {
    "a NUL": "done%20%3D%20true%00",
    "a NUL inside a quoted string": "metadata.kind%20%3D%20%22a%00b%22",
    "SOH": "%01done%20%3D%20true",
    "ESC": "done%20%3D%1B%20true",
    "DEL": "done%20%3D%20true%7F",
    "C1 NEL": "done%20%3D%20true%C2%85",
    "C1 CSI": "metadata.kind%20%3D%20%22%C2%9B%22",
    "vertical tab": "done%0B%3D%20true",
    "a 100 KB filter": "done%20%3D%20true%20AND%20" * 4000 + "done%20%3D%20true",
    "a 1 MB filter": "a" * 1_000_000,
}


@pytest.mark.parametrize("encoded", FILTER_CONTROLS.values(), ids=FILTER_CONTROLS.keys())
def test_a_filter_with_control_characters_or_too_long_is_400_invalid_filter(stack, auth_headers,
                                                                           parent, encoded):
    response = send(stack, auth_headers, "GET", f"/v1/{parent}/operations?filter={encoded}")
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_FILTER")


@pytest.mark.parametrize("encoded", ["done%20%3D%20true%0A", "%09done%0D%0A%3D%0Atrue",
                                     "done%3Dtrue", ""],
                         ids=["a trailing LF", "TAB, CR and LF as spaces", "no spaces",
                              "an empty filter"])
def test_tab_cr_and_lf_in_a_filter_are_whitespace(stack, auth_headers, parent, encoded):
    response = send(stack, auth_headers, "GET", f"/v1/{parent}/operations?filter={encoded}")
    assert response.status_code == 200, response.text
    assert response.json() == {}


LONG_QUERIES = {
    "a 100 KB page token": ("pageToken=" + "A" * 100_000, "INVALID_PAGE_TOKEN"),
    "a page token with a NUL": ("pageToken=abc%00def", "INVALID_PAGE_TOKEN"),
    "a 100 KB pageSize": ("pageSize=" + "9" * 100_000 + "x", "INVALID_PAGE_SIZE"),
    "a 1 MB unknown parameter": ("x=" + "a" * 1_000_000, "UNKNOWN_QUERY_PARAMETER"),
    "20,000 unknown parameters": ("&".join(f"p{i}=1" for i in range(20_000)),
                                  "UNKNOWN_QUERY_PARAMETER"),
    "20,000 copies of pageSize": ("&".join(["pageSize=1"] * 20_000),
                                  "REPEATED_QUERY_PARAMETER"),
}


@pytest.mark.parametrize(("query", "reason"), LONG_QUERIES.values(), ids=LONG_QUERIES.keys())
def test_a_long_or_hostile_query_string_is_400(stack, auth_headers, parent, query, reason):
    response = send(stack, auth_headers, "GET", f"/v1/{parent}/operations?{query}")
    assert_error(response, 400, "INVALID_ARGUMENT", reason)


UNKNOWN_PARAMS = {
    "on Get": ("GET", "/v1/{missing}?view=FULL"),
    "List's pageSize on Get": ("GET", "/v1/{missing}?pageSize=1"),
    "a filter on Delete": ("DELETE", "/v1/{missing}?filter=done%3Dtrue"),
    "on Cancel": ("POST", "/v1/{missing}:cancel?force=true"),
    "on Wait": ("POST", "/v3beta1/{missing}:wait?timeout=1s"),
    "on create": ("POST", "/v1/{parent}/jobs?validateOnly=true"),
    "on List": ("GET", "/v1/{parent}/operations?orderBy=createTime"),
    "a lowercase filter on List": ("GET", "/v1/{parent}/operations?Filter=done%3Dtrue"),
    "an empty name": ("GET", "/v1/{parent}/operations?=1"),
    "an encoded NUL as the name": ("GET", "/v1/{parent}/operations?%00=1"),
    "an invalid UTF-8 name": ("GET", "/v1/{parent}/operations?%FF=1"),
    "an access_token parameter": ("GET", "/v1/{missing}?access_token=abc"),
    "a key parameter": ("GET", "/v1/{missing}?key=abc"),
}


@pytest.mark.parametrize(("method", "template"), UNKNOWN_PARAMS.values(),
                         ids=UNKNOWN_PARAMS.keys())
def test_an_unknown_query_parameter_is_400(stack, auth_headers, parent, method, template):
    body = b'{"kind": "demo.countdown", "params": {"steps": 1}}' if "/jobs" in template else b""
    response = send(stack, auth_headers, method, template.format(missing=MISSING, parent=parent),
                    body)
    error = assert_error(response, 400, "INVALID_ARGUMENT", "UNKNOWN_QUERY_PARAMETER")
    assert "abc" not in error["message"]  # the name is quoted back, never the value


REPEATED_PARAMS = {
    "filter twice": "filter=done%3Dtrue&filter=done%3Dfalse",
    "the same filter twice": "filter=done%3Dtrue&filter=done%3Dtrue",
    "pageSize twice": "pageSize=1&pageSize=2",
    "pageToken twice": "pageToken=a&pageToken=a",
    "alt twice": "alt=json&alt=json",
    "$.xgafv twice": "%24.xgafv=2&%24.xgafv=2",
    "filter twice, once percent-encoded": "filter=done%3Dtrue&%66ilter=done%3Dtrue",
    "returnPartialSuccess twice": "returnPartialSuccess=false&returnPartialSuccess=false",
}


@pytest.mark.parametrize("query", REPEATED_PARAMS.values(), ids=REPEATED_PARAMS.keys())
def test_a_repeated_query_parameter_is_400(stack, auth_headers, parent, query):
    response = send(stack, auth_headers, "GET", f"/v1/{parent}/operations?{query}")
    assert_error(response, 400, "INVALID_ARGUMENT", "REPEATED_QUERY_PARAMETER")


def test_a_repeated_system_parameter_on_get_is_400(stack, auth_headers):
    response = send(stack, auth_headers, "GET", f"/v1/{MISSING}?prettyPrint=1&prettyPrint=1")
    assert_error(response, 400, "INVALID_ARGUMENT", "REPEATED_QUERY_PARAMETER")


@pytest.mark.parametrize("query", [
    "alt=json&prettyPrint=false&%24.xgafv=2&%24alt=json", "&&&", "filter", "%66ilter=done%3Dtrue",
    "returnPartialSuccess=False",
], ids=["the system parameters", "empty pairs", "a filter with no value",
        "a percent-encoded parameter name", "returnPartialSuccess=False"])
def test_accepted_query_strings_list_normally(stack, auth_headers, parent, query):
    response = send(stack, auth_headers, "GET", f"/v1/{parent}/operations?{query}")
    assert response.status_code == 200, response.text
    assert response.json() == {}


def test_a_non_boolean_return_partial_success_is_400(stack, auth_headers, parent):
    response = send(stack, auth_headers, "GET",
                    f"/v1/{parent}/operations?returnPartialSuccess=AAA")
    assert_error(response, 400, "INVALID_ARGUMENT")


# --- chunked framing and request-target forms ----------------------------------------------

BROKEN_CHUNKS = {
    "a chunk size that is not hex": b"zz\r\n{}\r\n0\r\n\r\n",
    "a chunk without its CRLF": b"2\r\n{}XX0\r\n\r\n",
}


@pytest.mark.parametrize("body", BROKEN_CHUNKS.values(), ids=BROKEN_CHUNKS.keys())
def test_broken_chunked_framing_is_400_not_500(stack, auth_headers, parent, body):
    data = request_bytes(stack, "POST", f"/v1/{parent}/jobs",
                         [*auth_headers.items(), JSON, ("Transfer-Encoding", "chunked")], body)
    assert_error(exchange(stack, data), 400, "INVALID_ARGUMENT")


def test_a_chunk_extension_is_accepted(stack, auth_headers, parent):
    body = json.dumps({"kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}})
    chunked = f"{len(body):x};ext=1\r\n{body}\r\n0\r\n\r\n".encode()
    data = request_bytes(stack, "POST", f"/v1/{parent}/jobs",
                         [*auth_headers.items(), JSON, ("Transfer-Encoding", "chunked")], chunked)
    answer = exchange(stack, data)
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"].startswith(f"{parent}/operations/")


def test_the_asterisk_request_target_is_404_json(stack, auth_headers):
    data = request_bytes(stack, "OPTIONS", "*", list(auth_headers.items()))
    assert_error(exchange(stack, data), 404, "NOT_FOUND", "PATH_NOT_FOUND")


def test_a_path_starting_with_two_slashes_is_404_json(stack, auth_headers):
    assert_error(send(stack, auth_headers, "GET", "//v1/operations/x"), 404, "NOT_FOUND",
                 "PATH_NOT_FOUND")


def test_an_absolute_form_request_target_reaches_its_route(stack, auth_headers, parent):
    data = request_bytes(stack, "GET", f"{stack.url}/v1/{parent}/operations",
                         list(auth_headers.items()))
    answer = exchange(stack, data)
    assert answer.status_code == 200, answer.text


# --- what gunicorn refuses before the function runs (its HTML page, by design) ---------

GUNICORN_REFUSES = {
    "a raw NUL in the path": ("GET", "/v1/operations/a\x00b", [], b"", 400),
    "a raw DEL in the path": ("GET", "/v1/operations/a\x7fb", [], b"", 400),
    "a raw TAB in the path": ("GET", "/v1/operations/a\tb", [], b"", 400),
    "a raw NUL in the filter": ("GET", "/v1/projects/p/locations/l/operations?filter=a\x00",
                                [], b"", 400),
    "a lowercase method": ("get", "/v1/operations/x", [], b"", 400),
    "a method that is not a token": ("G@T", "/v1/operations/x", [], b"", 400),
    "Content-Length and Transfer-Encoding together": (
        "POST", "/v1/operations/x:cancel",
        [("Content-Length", "5"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n", 400),
    "a Content-Length that is not a number": (
        "POST", "/v1/operations/x:cancel", [("Content-Length", "abc")], b"", 400),
    "a negative Content-Length": (
        "POST", "/v1/operations/x:cancel", [("Content-Length", "-1")], b"", 400),
    "two Content-Length headers": (
        "POST", "/v1/operations/x:cancel", [("Content-Length", "2"), ("Content-Length", "3")],
        b"{}", 400),
    "Transfer-Encoding gzip": (
        "POST", "/v1/operations/x:cancel", [("Transfer-Encoding", "gzip")], b"{}", 400),
    "a header name with a space": ("GET", "/v1/operations/x", [("Bad Name", "1")], b"", 400),
    "101 header fields": ("GET", "/v1/operations/x",
                          [(f"X-Field-{i}", "1") for i in range(101)], b"", 431),
}


@pytest.mark.parametrize(("method", "target", "headers", "body", "status"),
                         GUNICORN_REFUSES.values(), ids=GUNICORN_REFUSES.keys())
def test_what_gunicorn_refuses_gets_its_4xx_and_no_traceback(stack, auth_headers, method,
                                                             target, headers, body, status):
    data = request_bytes(stack, method, target, [*auth_headers.items(), *headers], body)
    answer = exchange(stack, data)
    assert answer.status_code == status, answer.text
    assert "Traceback" not in answer.text and auth_headers["Authorization"] not in answer.text
