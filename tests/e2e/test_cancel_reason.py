"""A cancel's reason and requester, over HTTP: ``X-Goog-Request-Reason`` (or
``$requestReason``) becomes the operation's ``cancelReason``, the caller its
``cancelRequestedBy``; a repeated cancel changes neither, and writes nothing."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from test_http_errors import assert_error

from lib import model
from tests.leases import claim_as

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def _metadata(operation):
    return operation["metadata"]["value"]


def _queued(stack, parent: str, suffix: str) -> str:
    """An operation written to the store and never published: it stays queued."""
    name = f"{parent}/operations/{suffix}"
    stack.store.create(model.new_job(
        name=name, parent=parent, target=f"{parent}/jobs/{suffix}", kind="demo.countdown",
        params={"steps": 1}, created_by="test", now=model.utcnow()))
    return name


def _claimed(stack, parent: str, suffix: str) -> str:
    """Queued, then claimed by a "worker" that never ends it: it stays running."""
    name = _queued(stack, parent, suffix)
    assert claim_as(stack.store, name, owner="test-worker", lease_seconds=600) is not None
    return name


def _log_lines(stack, message: str, name: str) -> list[dict]:
    lines = []
    for line in stack.log_text().splitlines():
        if line.startswith("{") and f'"{message}"' in line and name in line:
            entry = json.loads(line)
            if entry.get("message") == message and entry.get("operation") == name:
                lines.append(entry)
    return lines


def test_a_cancel_with_a_reason_header_records_when_who_and_why(api, stack, parent):
    name = _claimed(stack, parent, "running")
    before = model.utcnow()
    response = api("POST", f"/v1/{name}:cancel",
                   headers={**stack.headers(), "X-Goog-Request-Reason": "wrong input file"})
    assert response.status_code == 200, response.text
    assert response.json() == {}

    meta = _metadata(api("GET", f"/v1/{name}").json())
    assert meta["requestedCancellation"] is True
    assert meta["cancelRequestedBy"] == "dev@example.com"
    assert meta["cancelReason"] == "wrong input file"
    requested = datetime.fromisoformat(meta["cancelRequestTime"].replace("Z", "+00:00"))
    assert before <= requested <= model.utcnow()


def test_the_request_reason_query_parameter_works_like_the_header(api, stack, parent):
    name = _queued(stack, parent, "queued")
    response = api("POST", f"/v1/{name}:cancel", params={"$requestReason": "duplicate café ✓"})
    assert response.status_code == 200, response.text
    done = api("GET", f"/v1/{name}").json()
    assert done["done"] is True and done["error"]["code"] == 1
    assert _metadata(done)["cancelReason"] == "duplicate café ✓"
    info = [d for d in done["error"]["details"] if d["@type"] == ERROR_INFO]
    assert info and info[0]["reason"] == "CANCELLED_BY_REQUEST"
    assert info[0]["metadata"] == {"requestedBy": "dev@example.com",
                                   "reason": "duplicate café ✓"}


def test_a_utf8_reason_header_arrives_as_sent(api, stack, parent):
    name = _claimed(stack, parent, "utf8")
    reason = "nicht mehr nötig ✓"
    response = api("POST", f"/v1/{name}:cancel",
                   headers={**stack.headers(), "X-Goog-Request-Reason": reason.encode()})
    assert response.status_code == 200, response.text
    assert _metadata(api("GET", f"/v1/{name}").json())["cancelReason"] == reason


def test_a_repeated_cancel_changes_neither_time_requester_nor_reason_and_writes_nothing(
        api, stack, parent):
    name = _claimed(stack, parent, "twice")
    first = api("POST", f"/v1/{name}:cancel",
                headers={**stack.headers(), "X-Goog-Request-Reason": "first"})
    assert first.status_code == 200, first.text
    recorded = stack.store.get(name)
    time.sleep(0.01)

    again = api("POST", f"/v1/{name}:cancel",
                headers={**stack.headers(), "X-Goog-Request-Reason": "second"})
    assert again.status_code == 200, again.text
    assert stack.store.get(name) == recorded
    meta = _metadata(api("GET", f"/v1/{name}").json())
    assert meta["cancelReason"] == "first"


def test_a_cancel_without_a_reason_still_records_who_and_when(api, stack, parent):
    name = _claimed(stack, parent, "no-reason")
    assert api("POST", f"/v1/{name}:cancel").status_code == 200
    meta = _metadata(api("GET", f"/v1/{name}").json())
    assert meta["cancelRequestedBy"] == "dev@example.com"
    assert "cancelRequestTime" in meta
    assert not meta.get("cancelReason")


BAD_REASONS = {
    "513 characters in the header": ({"X-Goog-Request-Reason": "x" * 513}, {}),
    "513 characters in the query": ({}, {"$requestReason": "x" * 513}),
    "a NUL in the query": ({}, {"$requestReason": "stop\x00now"}),
    "a newline in the query": ({}, {"$requestReason": "stop\nnow"}),
    "a DEL in the query": ({}, {"$requestReason": "stop\x7fnow"}),
    "a tab in the header": ({"X-Goog-Request-Reason": "stop\tnow"}, {}),
    "a C1 control in the header, as UTF-8": (
        {"X-Goog-Request-Reason": "stop\u0085now".encode()}, {}),
    "header and query that disagree": ({"X-Goog-Request-Reason": "a"}, {"$requestReason": "b"}),
}


@pytest.mark.parametrize(("headers", "params"), BAD_REASONS.values(), ids=BAD_REASONS.keys())
def test_a_bad_reason_is_400_and_changes_nothing(api, stack, parent, headers, params):
    name = _claimed(stack, parent, "bad")
    before = stack.store.get(name)
    response = api("POST", f"/v1/{name}:cancel", headers={**stack.headers(), **headers},
                   params=params)
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_REQUEST_REASON")
    assert stack.store.get(name) == before


def test_512_characters_are_accepted(api, stack, parent):
    name = _claimed(stack, parent, "long")
    reason = "r" * 512
    response = api("POST", f"/v1/{name}:cancel",
                   headers={**stack.headers(), "X-Goog-Request-Reason": reason})
    assert response.status_code == 200, response.text
    assert _metadata(api("GET", f"/v1/{name}").json())["cancelReason"] == reason


def test_the_audit_line_of_a_cancel_names_the_requester_and_the_reason(api, stack, parent):
    name = _claimed(stack, parent, "audit")
    for _ in range(2):  # the repeat is logged too, as changing nothing
        response = api("POST", f"/v1/{name}:cancel",
                       headers={**stack.headers(), "X-Goog-Request-Reason": "audit me"})
        assert response.status_code == 200, response.text
    deadline = time.monotonic() + 10
    while len(_log_lines(stack, "cancel: no change", name)) < 1:
        assert time.monotonic() < deadline, "no audit line"
        time.sleep(0.05)
    [first] = _log_lines(stack, "cancel requested", name)
    assert first["requestedBy"] == "dev@example.com"
    assert first["reason"] == "audit me"
    assert first["severity"] == "INFO"
    [repeat] = _log_lines(stack, "cancel: no change", name)
    assert repeat["requestedBy"] == "dev@example.com" and repeat["reason"] == "audit me"


def test_on_other_methods_the_reason_is_only_logged(api, stack, parent):
    name = _claimed(stack, parent, "get")
    before = stack.store.get(name)
    response = api("GET", f"/v1/{name}",
                   headers={**stack.headers(), "X-Goog-Request-Reason": "just looking"})
    assert response.status_code == 200, response.text
    assert "cancelReason" not in _metadata(response.json())
    assert stack.store.get(name) == before
    deadline = time.monotonic() + 10
    while not [line for line in _log_lines(stack, "request", name)
               if line.get("requestReason") == "just looking"]:
        assert time.monotonic() < deadline, "the reason was not logged"
        time.sleep(0.05)
