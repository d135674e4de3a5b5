"""A kind registered ``cancellable=False`` (``demo.atomic``): ``:cancel`` on its
operations is 501 UNIMPLEMENTED and changes nothing until they are done; on a
done one it is 200 ``{}``, as for any done operation."""

from __future__ import annotations

import time

from test_http_errors import assert_error

from lib import model


def _create(api, parent, kind, **params):
    response = api("POST", f"/v1/{parent}/jobs", json={"kind": kind, "params": params})
    assert response.status_code == 200, response.text
    return response.json()["name"]


def _poll(api, name, until, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        operation = api("GET", f"/v1/{name}").json()
        if until(operation):
            return operation
        assert time.monotonic() < deadline, f"gave up waiting: {operation}"
        time.sleep(0.05)


def test_cancel_of_a_running_atomic_job_is_501_and_it_runs_to_its_end(api, stack, parent):
    name = _create(api, parent, "demo.atomic", steps=3, stepSeconds=0.5)
    _poll(api, name, lambda op: op["metadata"]["value"]["attempt"] >= 1)
    before = stack.store.get(name)

    response = api("POST", f"/v1/{name}:cancel",
                   headers={**stack.headers(), "X-Goog-Request-Reason": "stop it"})
    error = assert_error(response, 501, "UNIMPLEMENTED", "CANCEL_NOT_SUPPORTED")
    assert name in error["message"]
    after = stack.store.get(name)
    assert after["cancelRequested"] is False
    assert "cancelRequestTime" not in after and "cancelReason" not in after
    assert after["attempt"] == before["attempt"]

    done = _poll(api, name, lambda op: op.get("done", False))
    assert done["response"]["value"] == {"steps": 3.0}
    assert done["metadata"]["value"]["requestedCancellation"] is False
    assert "cancelRequestedBy" not in done["metadata"]["value"]


def test_cancel_of_a_queued_atomic_job_is_501_and_writes_nothing(api, stack, parent):
    name = f"{parent}/operations/atomic-queued"
    stack.store.create(model.new_job(
        name=name, parent=parent, target=f"{parent}/jobs/atomic-queued", kind="demo.atomic",
        params={"steps": 1, "stepSeconds": 0}, created_by="test", now=model.utcnow()))
    before = stack.store.get(name)
    assert_error(api("POST", f"/v1/{name}:cancel"), 501, "UNIMPLEMENTED", "CANCEL_NOT_SUPPORTED")
    assert stack.store.get(name) == before


def test_cancel_of_a_done_atomic_job_is_200_and_changes_nothing(api, stack, parent):
    name = _create(api, parent, "demo.atomic", steps=1, stepSeconds=0)
    _poll(api, name, lambda op: op.get("done", False))
    before = stack.store.get(name)
    response = api("POST", f"/v1/{name}:cancel")
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert stack.store.get(name) == before


def test_a_cancellable_kind_next_to_it_is_still_cancelled(api, stack, parent):
    name = _create(api, parent, "demo.countdown", steps=5, stepSeconds=30)
    assert api("POST", f"/v1/{name}:cancel").status_code == 200
    done = _poll(api, name, lambda op: op.get("done", False))
    assert done["error"]["code"] == 1
