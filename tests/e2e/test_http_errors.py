"""What a caller sees when a request is wrong, over HTTP, on the running stack.

Every error is an AIP-193 JSON body with a ``google.rpc.ErrorInfo`` detail,
``Content-Type: application/json``, and never a stack trace. Paths that
requests or urllib would normalize are sent raw with http.client.
"""

from __future__ import annotations

import http.client
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from google.longrunning import operations_pb2
from google.protobuf import json_format

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
MAX_BODY = 64 * 1024
JSON_TYPE = {"Content-Type": "application/json"}


# --- helpers shared by the other e2e modules -------------------------------------------


@dataclass
class RawResponse:
    """The parts of an http.client answer the assertions need (requests-like)."""

    status_code: int
    headers: http.client.HTTPMessage
    content: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _BytesPathConnection(http.client.HTTPConnection):
    """Puts the request line on the wire as latin-1, so a path may carry any byte."""

    def _encode_request(self, request: str) -> bytes:
        return request.encode("latin-1")


def raw_request(stack, method: str, path: str, headers: list[tuple[str, str]] | None = None,
                body: bytes | None = None, timeout: float = 30) -> RawResponse:
    """Sends exactly ``path`` and exactly these headers (repeats allowed).

    Characters of ``path`` above U+007F go out as that one byte (latin-1).
    """
    url = urlsplit(stack.url)
    connection = _BytesPathConnection(url.hostname, url.port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers or []:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return RawResponse(response.status, response.headers, response.read(),
                           response.getheaders())
    finally:
        connection.close()


def assert_error(response: Any, code: int, status: str, reason: str | None = None,
                 message_contains: str | None = None) -> dict[str, Any]:
    """Asserts the AIP-193 shape of an error response; returns its ``error`` object."""
    text = response.text
    assert response.status_code == code, text
    assert response.headers["Content-Type"].split(";")[0].strip() == "application/json"
    assert "Traceback" not in text and 'File "' not in text, text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    infos = [detail for detail in error["details"] if detail.get("@type") == ERROR_INFO]
    assert len(infos) == 1, error["details"]
    info = infos[0]
    assert isinstance(info["domain"], str) and info["domain"]
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", info["reason"]), info
    if reason is not None:
        assert info["reason"] == reason, info
    if message_contains is not None:
        assert message_contains.lower() in error["message"].lower(), error["message"]
    return error


# --- one token per module, not one per request (minting loads the RSA key: ~0.1 s) ----


# --- routing --------------------------------------------------------------------------


UNKNOWN_PATHS = {
    "the root path": "/",
    "an unknown version prefix": "/v2/operations/x",
    "a project without a collection": "/v1/projects/p",
    "a v1 path under the v3beta1 shape": "/v1/projects/p/operations/x",
    "a v3beta1 operations path with no project": "/v3beta1/operations/x",
    "an unknown custom method": "/v1/projects/p/locations/l/operations/x:frobnicate",
    "a create path with an extra segment": "/v1/projects/p/locations/l/jobs/x",
}


@pytest.mark.parametrize("path", UNKNOWN_PATHS.values(), ids=UNKNOWN_PATHS.keys())
def test_an_unknown_path_is_404_not_found(stack, auth_headers, path):
    response = raw_request(stack, "GET", path, headers=list(auth_headers.items()))
    assert_error(response, 404, "NOT_FOUND")


WRONG_METHODS = {
    "PUT on a get path": ("PUT", "/v1/projects/p/locations/l/operations/x", "GET"),
    "PATCH on a get path": ("PATCH", "/v1/projects/p/locations/l/operations/x", "GET"),
    "PATCH on a v3beta1 get path": ("PATCH", "/v3beta1/projects/p/operations/x", "GET"),
    "PUT on an operations/** get path": ("PUT", "/v1/operations/a/b", "GET"),
    "GET on a cancel path": ("GET", "/v1/projects/p/locations/l/operations/x:cancel", "POST"),
    "GET on the create path": ("GET", "/v1/projects/p/locations/l/jobs", "POST"),
    "POST on a list path": ("POST", "/v1/projects/p/locations/l/operations", "GET"),
}


@pytest.mark.parametrize(("method", "path", "allowed"), WRONG_METHODS.values(),
                         ids=WRONG_METHODS.keys())
def test_a_known_path_with_the_wrong_method_is_405_unimplemented(stack, auth_headers, method,
                                                                 path, allowed):
    response = raw_request(stack, method, path, headers=list(auth_headers.items()),
                           body=b"")
    assert_error(response, 405, "UNIMPLEMENTED")
    assert allowed in [m.strip() for m in response.headers.get("Allow", "").split(",")]


# --- request bodies -------------------------------------------------------------------


BAD_BODIES = {
    "malformed JSON": (b'{"kind": ', "application/json"),
    "a truncated string": (b'{"kind": "demo.countdown', "application/json"),
    "arrays nested 10,000 deep": (b"[" * 10_000 + b"]" * 10_000, "application/json"),
    "objects nested 10,000 deep": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
                                   "application/json"),
    "invalid UTF-8": (b'{"kind": "demo.\xff\xfe"}', "application/json"),
    "a lone surrogate byte sequence": (b'{"kind": "\xed\xa0\x80"}', "application/json"),
    "a JSON array": (b"[]", "application/json"),
    "a JSON string": (b'"demo.countdown"', "application/json"),
    "a JSON number": (b"5", "application/json"),
    "JSON null": (b"null", "application/json"),
    "NaN in a param": (b'{"kind": "demo.countdown", "params": {"steps": NaN}}',
                       "application/json"),
    "Infinity in a param": (b'{"kind": "demo.countdown", "params": {"stepSeconds": Infinity}}',
                            "application/json"),
    "-Infinity in a param": (b'{"kind": "demo.countdown", "params": {"steps": -Infinity}}',
                             "application/json"),
    "a text/plain body": (b'{"kind": "demo.countdown", "params": {"steps": 1}}', "text/plain"),
    "a form body": (b"kind=demo.countdown&steps=1", "application/x-www-form-urlencoded"),
    "an XML body": (b"<job kind='demo.countdown'/>", "application/xml"),
}


@pytest.mark.parametrize(("body", "content_type"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_create_body_that_is_not_a_json_object_is_400(api, auth_headers, parent, body,
                                                        content_type):
    response = api("POST", f"/v1/{parent}/jobs", data=body,
                   headers={**auth_headers, "Content-Type": content_type})
    assert_error(response, 400, "INVALID_ARGUMENT")


def _job_body(size: int) -> bytes:
    """A valid create body padded with trailing spaces to exactly ``size`` bytes."""
    body = json.dumps({"kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}})
    return body.encode() + b" " * (size - len(body))


def test_a_create_body_of_exactly_64_kib_is_accepted(api, auth_headers, parent):
    response = api("POST", f"/v1/{parent}/jobs", data=_job_body(MAX_BODY),
                   headers={**auth_headers, **JSON_TYPE})
    assert response.status_code == 200, response.text
    assert response.json()["name"].startswith(f"{parent}/operations/")


@pytest.mark.parametrize("with_token", [True, False],
                         ids=["with a valid token", "without any token, size is checked first"])
def test_a_body_over_64_kib_with_content_length_is_413_invalid_argument(api, auth_headers, parent,
                                                                       with_token):
    headers = {**(auth_headers if with_token else {}), **JSON_TYPE}
    response = api("POST", f"/v1/{parent}/jobs", data=_job_body(MAX_BODY + 1), headers=headers)
    assert_error(response, 413, "INVALID_ARGUMENT")
    assert "WWW-Authenticate" not in response.headers


def test_a_chunked_body_over_64_kib_is_413_invalid_argument(api, auth_headers, parent):
    chunks = iter([_job_body(MAX_BODY)[:-1], b" " * 2])  # a generator: sent chunked
    response = api("POST", f"/v1/{parent}/jobs", data=chunks,
                   headers={**auth_headers, **JSON_TYPE})
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert_error(response, 413, "INVALID_ARGUMENT")


def test_a_huge_content_length_is_refused_without_waiting_for_the_body(stack, auth_headers, parent):
    # Only the headers are sent: a server that read the body first would never answer.
    url = urlsplit(stack.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=3)
    try:
        connection.putrequest("POST", f"/v1/{parent}/jobs")
        for name, value in {**auth_headers, **JSON_TYPE,
                            "Content-Length": str(100 * 1024 * 1024)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        try:
            response = connection.getresponse()
        except TimeoutError:
            pytest.fail("no answer within 3 s: the server waited for the 100 MiB body")
        answer = RawResponse(response.status, response.headers, response.read())
    finally:
        connection.close()
    assert_error(answer, 413, "INVALID_ARGUMENT")


# --- resource names in the path -------------------------------------------------------


LONG_SEGMENT = "a" * 520
BAD_NAMES = {
    "an encoded slash inside a segment": "/v1/projects/p/locations/l/operations/a%2Fb",
    "a lowercase encoded slash": "/v1/projects/p/locations/l/operations/a%2fb",
    "an encoded slash under operations/**": "/v1/operations/a%2Fb",
    "a '..' segment": "/v1/operations/a/../b",
    "a '.' segment": "/v1/operations/a/./b",
    "an encoded '..' segment": "/v1/operations/a/%2E%2E/b",
    "a '..' operation id": "/v1/projects/p/locations/l/operations/..",
    "an empty segment": "/v1/operations/a//b",
    "an empty location": "/v1/projects/p/locations//operations/x",
    "an empty operation id": "/v1/projects/p/locations/l/operations/",
    "a trailing slash under operations/**": "/v1/operations/a/",
    "a name over 512 characters": "/v1/operations/" + LONG_SEGMENT,
    "an encoded space": "/v1/operations/a%20b",
    "an at sign": "/v1/operations/a@b",
    "an exclamation mark": "/v1/operations/a!b",
    "an encoded percent sign": "/v1/operations/a%25b",
    "an encoded non-ASCII letter": "/v1/operations/caf%C3%A9",
    "an encoding that is not UTF-8": "/v1/operations/a%FFb",
    "a malformed percent escape": "/v1/operations/a%zzb",
    "a bad name on the cancel path": "/v1/projects/p/locations/l/operations/a%2Fb:cancel",
    "a bad name on a v3beta1 path": "/v3beta1/projects/p/operations/a%2Fb",
    "a bad parent on the create path": "/v1/projects/p%2Fq/locations/l/jobs",
}


@pytest.mark.parametrize("path", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_bad_resource_name_in_the_path_is_400_invalid_argument(stack, auth_headers, path):
    method = "POST" if path.endswith((":cancel", "/jobs")) else "GET"
    headers = [*auth_headers.items(), *JSON_TYPE.items()]
    response = raw_request(stack, method, path, headers=headers, body=b"")
    assert_error(response, 400, "INVALID_ARGUMENT")


def test_raw_non_ascii_bytes_in_the_path_are_400_from_gunicorn_itself(stack, auth_headers):
    # gunicorn refuses the request line (an HTML 400) before the function runs, as it
    # does for headers over 8190 bytes: the status is all the app can promise here.
    response = raw_request(stack, "GET", "/v1/operations/caf\u00c3\u00a9",
                           headers=list(auth_headers.items()))
    assert response.status_code == 400
    assert "Traceback" not in response.text


def test_a_name_of_exactly_512_characters_is_a_valid_name(api):
    name = "operations/" + "a" * (512 - len("operations/"))
    assert_error(api("GET", f"/v1/{name}"), 404, "NOT_FOUND", "OPERATION_NOT_FOUND")


# --- the create job body --------------------------------------------------------------


def _job(params: Any = None, **top: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "demo.countdown", **top}
    if params is not None:
        body["params"] = params
    return body


BAD_JOBS = {
    "an unknown kind": ({"kind": "demo.nope", "params": {"steps": 1}}, "kind"),
    "a kind that is not a string": ({"kind": 5, "params": {"steps": 1}}, "kind"),
    "no kind at all": ({"params": {"steps": 1}}, "kind"),
    "an empty body": (None, "kind"),
    "params that are not an object": (_job([1]), "params"),
    "missing steps": (_job({}), "'steps'"),
    "no params at all": (_job(), "'steps'"),
    "steps 0": (_job({"steps": 0}), "'steps'"),
    "steps 10001": (_job({"steps": 10001}), "'steps'"),
    "steps as the string 5": (_job({"steps": "5"}), "'steps'"),
    "steps true": (_job({"steps": True}), "'steps'"),
    "steps 1.5": (_job({"steps": 1.5}), "'steps'"),
    "steps -1": (_job({"steps": -1}), "'steps'"),
    "stepSeconds 61": (_job({"steps": 1, "stepSeconds": 61}), "'stepSeconds'"),
    "stepSeconds -1": (_job({"steps": 1, "stepSeconds": -1}), "'stepSeconds'"),
    "stepSeconds as a string": (_job({"steps": 1, "stepSeconds": "1"}), "'stepSeconds'"),
    "failAtStep above steps": (_job({"steps": 2, "failAtStep": 3}), "'failAtStep'"),
    "failAtStep 0": (_job({"steps": 2, "failAtStep": 0}), "'failAtStep'"),
    "an unknown param": (_job({"steps": 1, "colour": "red"}), "'colour'"),
    "an unknown top-level field": (_job({"steps": 1}, priority=1), "'priority'"),
}


@pytest.mark.parametrize(("body", "named"), BAD_JOBS.values(), ids=BAD_JOBS.keys())
def test_a_bad_job_is_400_with_a_message_naming_the_problem(api, parent, body, named):
    kwargs = {} if body is None else {"json": body}
    response = api("POST", f"/v1/{parent}/jobs", **kwargs)
    assert_error(response, 400, "INVALID_ARGUMENT", message_contains=named)


GOOD_JOBS = {
    "the smallest job": {"steps": 1, "stepSeconds": 0},
    "steps 10000 and stepSeconds 60": {"steps": 10000, "stepSeconds": 60},
    "steps 5.0, which is the integer 5": {"steps": 5.0, "stepSeconds": 0},
    "failAtStep equal to steps": {"steps": 2, "stepSeconds": 0, "failAtStep": 2},
}


@pytest.mark.parametrize("params", GOOD_JOBS.values(), ids=GOOD_JOBS.keys())
def test_a_job_at_the_limits_is_accepted(api, parent, params):
    response = api("POST", f"/v1/{parent}/jobs", json=_job(params))
    assert response.status_code == 200, response.text
    created = response.json()
    assert "done" not in created  # proto3 JSON leaves out done=false
    if params["steps"] == 10000:  # do not leave a 7-day job running
        assert api("POST", f"/v1/{created['name']}:cancel").status_code == 200


# --- List, Delete and Wait: served on every surface (they answered 501 until 8d6aa9d) -----


SERVED = {
    "List on v1 operations": ("GET", "/v1/operations", 200),
    "List on a v1 location": ("GET", "/v1/{parent}/operations", 200),
    "List on a v3beta1 project": ("GET", "/v3beta1/{project}/operations", 200),
    "List on a v3beta1 location": ("GET", "/v3beta1/{parent}/operations", 200),
    "Delete of a missing v1 location operation": ("DELETE", "/v1/{parent}/operations/x", 404),
    "Delete of a missing v1 operations/** name": ("DELETE", "/v1/operations/{unique}/x", 404),
    "Delete of a missing v3beta1 project operation": (
        "DELETE", "/v3beta1/{project}/operations/x", 404),
    "Wait on a missing v1 location operation": ("POST", "/v1/{parent}/operations/x:wait", 404),
    "Wait on a missing v1 operations/** name": ("POST", "/v1/operations/{unique}/x:wait", 404),
    "Wait on a missing v3beta1 location operation": (
        "POST", "/v3beta1/{parent}/operations/x:wait", 404),
}


@pytest.mark.parametrize(("method", "template", "status"), SERVED.values(), ids=SERVED.keys())
def test_list_delete_and_wait_are_served_on_every_surface(api, parent, unique, method,
                                                          template, status):
    path = template.format(parent=parent, project=parent.rsplit("/", 2)[0], unique=unique)
    kwargs = {"json": {"timeout": "0s"}} if path.endswith(":wait") else {}
    response = api(method, path, **kwargs)
    if status == 404:
        assert_error(response, 404, "NOT_FOUND", "OPERATION_NOT_FOUND")
        return
    assert response.status_code == 200, response.text
    listed = json_format.Parse(response.text, operations_pb2.ListOperationsResponse())
    if template != "/v1/operations":  # a parent of this test's own: nothing in it yet
        assert list(listed.operations) == []


def test_list_with_return_partial_success_is_501_unimplemented(api, parent):
    response = api("GET", f"/v1/{parent}/operations", params={"returnPartialSuccess": "true"})
    assert_error(response, 501, "UNIMPLEMENTED")


# --- every error, whatever its cause ----------------------------------------------------


def test_a_missing_operation_is_404_with_its_name(api, parent):
    name = f"{parent}/operations/nothing-here"
    error = assert_error(api("GET", f"/v1/{name}"), 404, "NOT_FOUND", "OPERATION_NOT_FOUND")
    assert name in error["message"]
