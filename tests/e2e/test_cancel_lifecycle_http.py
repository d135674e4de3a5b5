"""The cancel lifecycle over HTTP on the running stack: a cancel with a reason
is acknowledged and ends CANCELLED_BY_REQUEST; a handler that ignores it is
forced after the grace (CANCEL_GRACE_SECONDS=2 here); a create's timeout ends
the operation with code 4, queued or running."""

from __future__ import annotations

import time

from tests.waiting import wait_for

GRACE = 2.0


def create(api, parent, timeout=None, **params):
    body = {"kind": "demo.countdown", "params": params}
    if timeout is not None:
        body["timeout"] = timeout
    answer = api("POST", f"/v1/{parent}/jobs", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["name"]


def operation(api, name):
    return api("GET", f"/v1/{name}").json()


def running(api, name):
    wait_for(lambda: operation(api, name)["metadata"]["value"]["attempt"] >= 1, timeout=20,
             what=f"{name} to run")


def done(api, name, timeout=30):
    return wait_for(lambda: (op := operation(api, name)).get("done") and op, timeout=timeout,
                    what=f"{name} to end")


def info(op):
    (detail,) = op["error"]["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    return detail


def test_a_cancel_is_requested_acknowledged_and_ended_in_that_order(api, parent, auth_headers):
    name = create(api, parent, steps=20, stepSeconds=30)
    running(api, name)
    answer = api("POST", f"/v1/{name}:cancel",
                 headers={**auth_headers, "X-Goog-Request-Reason": "rolled back"})
    assert answer.status_code == 200 and answer.json() == {}
    op = done(api, name)
    meta = op["metadata"]["value"]
    assert op["error"]["code"] == 1
    assert meta["cancelRequestTime"] <= meta["cancelAcknowledgeTime"] <= meta["endTime"]
    assert info(op)["reason"] == "CANCELLED_BY_REQUEST"
    assert info(op)["metadata"] == {"requestedBy": "dev@example.com", "reason": "rolled back"}


def test_a_handler_that_ignores_its_cancel_is_forced_after_the_grace(api, parent, stack):
    # Short steps: the stubborn handler holds one of the emulator's few push
    # slots until its steps are over, whatever happens to its operation.
    name = create(api, parent, steps=4, stepSeconds=1.5, ignoreCancel=True)
    running(api, name)
    sent = time.monotonic()
    assert api("POST", f"/v1/{name}:cancel").status_code == 200
    op = done(api, name, timeout=GRACE + 20)
    took = time.monotonic() - sent
    assert op["error"]["code"] == 1 and info(op)["reason"] == "CANCEL_FORCED"
    assert GRACE <= took < GRACE + 8
    meta = op["metadata"]["value"]
    assert meta["progressPercent"] < 100 and meta["statusMessage"] == "Cancelled (forced)."
    time.sleep(2.0)  # the stubborn handler's next step: nothing of it may land
    assert operation(api, name) == op
    assert any(name in line and "past the grace" in line and "demo.py:" in line
               for line in stack.log_text().splitlines())


def test_a_timeout_ends_a_running_operation_with_code_4(api, parent):
    name = create(api, parent, timeout="1.5s", steps=20, stepSeconds=30)
    op = done(api, name, timeout=20)
    assert "deadline" in op["metadata"]["value"]
    assert op["error"]["code"] == 4 and info(op)["reason"] == "DEADLINE_EXCEEDED"
    assert op["metadata"]["value"]["requestedCancellation"] is False


def test_a_timeout_that_passes_while_queued_ends_it_without_running(api, parent):
    name = create(api, parent, timeout="0.001s", steps=1, stepSeconds=0)
    op = done(api, name, timeout=20)
    assert op["error"]["code"] == 4
    assert op["metadata"]["value"]["attempt"] == 0, "it never ran"
