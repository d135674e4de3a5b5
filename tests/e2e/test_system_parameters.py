"""Google's system parameters over HTTP, on every route: ``alt``, ``prettyPrint``,
``$.xgafv``, ``quotaUser``, ``fields`` (partial responses) and the logged headers."""

from __future__ import annotations

import json
import time

import pytest
from test_http_errors import assert_error

JOB = {"kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}}


@pytest.fixture
def done_op(api, parent):
    name = api("POST", f"/v1/{parent}/jobs", json=JOB).json()["name"]
    waited = api("POST", f"/v1/{name}:wait", json={"timeout": "20s"}).json()
    assert waited["done"] is True
    return name


def test_fields_masks_a_list_page(api, parent, done_op):
    api("POST", f"/v1/{parent}/jobs", json=JOB)
    response = api("GET", f"/v1/{parent}/operations",
                   params={"pageSize": 1, "fields": "nextPageToken,operations(name,done)"})
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"nextPageToken", "operations"}
    assert [set(op) <= {"name", "done"} and "name" in op for op in page["operations"]] == [True]


FIELDS = {
    "get": ("GET", "", None, "name,done", {"name", "done"}),
    "wait": ("POST", ":wait", {"timeout": "0s"}, "metadata/value/attempt", {"metadata"}),
    "create": ("POST", "CREATE", JOB, "name", {"name"}),
    "cancel (an empty answer)": ("POST", ":cancel", None, "name", set()),
}


@pytest.mark.parametrize(("method", "suffix", "body", "mask", "keys"), FIELDS.values(),
                         ids=FIELDS.keys())
def test_fields_applies_to_the_answer_of_every_method(api, parent, done_op, method, suffix,
                                                      body, mask, keys):
    path = f"/v1/{parent}/jobs" if suffix == "CREATE" else f"/v1/{done_op}{suffix}"
    response = api(method, path, json=body, params={"fields": mask})
    assert response.status_code == 200, response.text
    assert set(response.json()) == keys
    if mask == "metadata/value/attempt":
        assert response.json() == {"metadata": {"value": {"attempt": 1.0}}}


def test_the_field_mask_header_and_dollar_spelling_work_too(api, auth_headers, done_op):
    via_header = api("GET", f"/v1/{done_op}", headers={**auth_headers,
                                                       "X-Goog-FieldMask": "name"})
    assert via_header.json() == {"name": done_op}
    via_dollar = api("GET", f"/v1/{done_op}", params={"$fields": "name"})
    assert via_dollar.json() == {"name": done_op}


def test_pretty_print_indents_and_false_is_compact(api, done_op):
    pretty = api("GET", f"/v1/{done_op}", params={"prettyPrint": "true"})
    assert pretty.status_code == 200
    assert pretty.text.startswith("{\n  ")
    compact = api("GET", f"/v1/{done_op}", params={"prettyPrint": "false"})
    assert "\n" not in compact.text
    assert pretty.json() == compact.json()
    error = api("GET", f"/v1/{done_op}x", params={"prettyPrint": "true"})
    assert error.status_code == 404 and error.text.startswith("{\n  ")


ACCEPTED = {
    "alt=json": {"alt": "json"},
    "$alt=json": {"$alt": "json"},
    "$.xgafv=2": {"$.xgafv": "2"},
    "$.xgafv=1": {"$.xgafv": "1"},
    "quotaUser": {"quotaUser": "tenant-7"},
    "all at once": {"alt": "json", "$.xgafv": "2", "prettyPrint": "false",
                    "quotaUser": "q", "fields": "name"},
}


@pytest.mark.parametrize("params", ACCEPTED.values(), ids=ACCEPTED.keys())
@pytest.mark.parametrize("route", ["get", "list", "delete"], ids=lambda r: f"on {r}")
def test_system_parameters_are_accepted_on_every_route(api, parent, done_op, params, route):
    if route == "get":
        response = api("GET", f"/v1/{done_op}", params=params)
    elif route == "list":
        response = api("GET", f"/v1/{parent}/operations", params=params)
    else:
        response = api("DELETE", f"/v1/{done_op}", params=params)
    assert response.status_code == 200, response.text


REFUSED = {
    "alt=media": ({"alt": "media"}, "INVALID_SYSTEM_PARAMETER"),
    "alt=proto": ({"alt": "proto"}, "INVALID_SYSTEM_PARAMETER"),
    "prettyPrint=maybe": ({"prettyPrint": "maybe"}, "INVALID_SYSTEM_PARAMETER"),
    "$.xgafv=9": ({"$.xgafv": "9"}, "INVALID_SYSTEM_PARAMETER"),
    "a malformed fields": ({"fields": "operations(name"}, "INVALID_FIELD_MASK"),
    "an empty field name": ({"fields": "name,,done"}, "INVALID_FIELD_MASK"),
    "an unknown parameter": ({"verbose": "1"}, "UNKNOWN_QUERY_PARAMETER"),
}


@pytest.mark.parametrize(("params", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_system_parameter_is_400_and_changes_nothing(api, stack, done_op, params,
                                                            reason):
    before = stack.store.get(done_op)
    response = api("DELETE", f"/v1/{done_op}", params=params)
    assert_error(response, 400, "INVALID_ARGUMENT", reason)
    assert stack.store.get(done_op) == before


def test_the_logged_headers_reach_the_request_log_line(api, stack, auth_headers, done_op):
    response = api("GET", f"/v1/{done_op}", params={"quotaUser": "tenant-42"}, headers={
        **auth_headers, "X-Goog-Api-Client": "gl-python/3.12 gdcl/2.187.0",
        "X-Goog-User-Project": "billing-project-9"})
    assert response.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in stack.log_text().splitlines()
                 if "billing-project-9" in line and line.startswith("{")]
        if lines:
            break
        assert time.monotonic() < deadline, "not logged"
        time.sleep(0.05)
    [line] = lines
    assert line["message"] == "request"
    assert line["userProject"] == "billing-project-9"
    assert line["apiClient"] == "gl-python/3.12 gdcl/2.187.0"
    assert line["quotaUser"] == "tenant-42"
