"""The cancel path end to end, over HTTP, on the running stack."""

from __future__ import annotations

import time
from datetime import datetime

from google.longrunning import operations_pb2
from google.protobuf import json_format

from lib.core import model

JOB = "/v1/{parent}/jobs"


def create(api, parent, **params):
    response = api("POST", JOB.format(parent=parent),
                   json={"kind": "demo.countdown", "params": params})
    assert response.status_code == 200, response.text
    return response.json()


def poll(api, name, until, timeout=20.0):
    """GETs ``name`` until ``until(operation)`` holds; returns the operation."""
    deadline = time.monotonic() + timeout
    while True:
        operation = api("GET", f"/v1/{name}").json()
        if until(operation) or time.monotonic() > deadline:
            return operation
        time.sleep(0.05)


def metadata(operation):
    return operation["metadata"]["value"]


def parse_time(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_created_job_runs_and_is_cancelled_mid_step(api, parent):
    created = create(api, parent, steps=20, stepSeconds=30)
    assert created["name"].startswith(f"{parent}/operations/")
    assert metadata(created)["statusMessage"] == "Queued."
    assert metadata(created)["attempt"] == 0
    name = created["name"]

    running = poll(api, name, lambda op: metadata(op)["attempt"] >= 1)
    assert not running.get("done")
    assert metadata(running)["statusMessage"] == "Running."

    started = time.monotonic()
    response = api("POST", f"/v1/{name}:cancel")
    assert response.status_code == 200
    assert response.json() == {}

    done = poll(api, name, lambda op: op.get("done"))
    stopped_after = time.monotonic() - started
    assert done["done"] is True
    assert done["error"]["code"] == 1
    assert "response" not in done
    assert metadata(done)["requestedCancellation"] is True
    # The 30 s step was cut short: the handler stopped long before its next step,
    # and it ran none of its remaining steps.
    assert stopped_after < 10
    assert metadata(done)["progressPercent"] == 0
    json_format.Parse(response_text := api("GET", f"/v1/{name}").text,
                      operations_pb2.Operation())
    assert '"done":true' in response_text


def test_a_short_job_succeeds_with_its_response(api, parent):
    name = create(api, parent, steps=3, stepSeconds=0)["name"]
    done = poll(api, name, lambda op: op.get("done"))
    assert done["response"] == {"@type": "type.googleapis.com/google.protobuf.Struct",
                                "value": {"steps": 3}}
    assert metadata(done)["progressPercent"] == 100
    assert parse_time(metadata(done)["endTime"]) >= parse_time(metadata(done)["createTime"])


def test_a_job_fails_at_fail_at_step_with_an_error_that_is_not_cancelled(api, parent):
    name = create(api, parent, steps=3, stepSeconds=0, failAtStep=2)["name"]
    done = poll(api, name, lambda op: op.get("done"))
    assert done["error"]["code"] == 9  # FAILED_PRECONDITION
    assert done["error"]["code"] != 1
    assert "step 2" in done["error"]["message"].lower()
    assert metadata(done)["progressPercent"] == 33


def test_cancel_of_a_queued_operation_ends_it_before_any_worker_runs_it(api, parent, stack):
    # Written straight to the store and never published: it stays QUEUED.
    name = f"{parent}/operations/queued-1"
    stack.store.create(model.new_job(name=name, parent=parent, target=f"{parent}/jobs/queued-1",
                                     kind="demo.countdown", params={"steps": 1},
                                     created_by="test", now=model.utcnow()))
    assert api("POST", f"/v1/{name}:cancel").status_code == 200
    operation = api("GET", f"/v1/{name}").json()
    assert operation["done"] is True
    assert operation["error"]["code"] == 1
    assert metadata(operation)["attempt"] == 0
