"""Which changes announce which lifecycle events, and the message shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.longrunning import operations_pb2
from google.protobuf import json_format

from lib.core import events, model

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RETENTION = timedelta(days=1)


def job(**fields):
    record = model.new_job(name="projects/p/locations/l/operations/o1",
                           parent="projects/p/locations/l", target="projects/p/locations/l/jobs/o1",
                           kind="demo.countdown", params={"steps": 1}, created_by="a@example.com",
                           now=NOW)
    return {**record, **fields}


RUNNING = job(state="RUNNING", attempt=1)


@pytest.mark.parametrize(("before", "changes", "expected"), [
    (job(), {"state": "RUNNING", "attempt": 1}, []),
    (RUNNING, model.cancel_changes(RUNNING, principal="p", now=NOW, retention=RETENTION),
     ["CANCEL_REQUESTED"]),
    (job(), model.cancel_changes(job(), principal="p", now=NOW, retention=RETENTION),
     ["CANCEL_REQUESTED", "DONE"]),
    (RUNNING, model.succeeded_changes({}, now=NOW, retention=RETENTION), ["DONE"]),
    ({**RUNNING, "cancelRequested": True},
     model.cancelled_changes(now=NOW, retention=RETENTION), ["DONE"]),
    (RUNNING, model.deadline_changes(now=NOW, retention=RETENTION), ["DONE"]),
    (RUNNING, {"progressPercent": 50}, []),
], ids=["a claim announces nothing", "a cancel of a running job announces the request",
        "a cancel of a queued job announces the request and the end",
        "a success announces the end", "a cancelled end announces only the end",
        "a deadline announces the end", "progress announces nothing"])
def test_events_for(before, changes, expected):
    assert events.events_for(before, changes) == expected


def test_the_message_is_the_operation_with_its_outcome_in_attributes():
    record = {**RUNNING, **model.failed_changes(9, "boom", now=NOW, retention=RETENTION),
              "traceContext": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    message = events.message(record, events.DONE)
    assert message.attributes == {"eventType": "DONE", "operation": record["name"],
                                  "kind": "demo.countdown", "state": "FAILED", "code": "9",
                                  "traceparent": record["traceContext"]}
    assert message.ordering_key == record["name"]
    operation = json_format.Parse(message.data, operations_pb2.Operation())
    assert operation.done and operation.error.code == 9
    assert "traceContext" not in json.dumps(json.loads(message.data))


def test_a_running_operations_cancel_request_has_no_code_yet():
    assert "code" not in events.attributes(RUNNING, events.CANCEL_REQUESTED)


def test_an_outbox_document_gives_back_the_same_message():
    message = events.message(job(), events.CANCEL_REQUESTED)
    assert events.from_outbox(events.outbox_document(message)) == message


def test_outbox_marks_are_one_per_operation_and_event():
    one, other = (events.message(job(name=f"operations/o{i}"), events.DONE) for i in (1, 2))
    ids = {events.outbox_id(one), events.outbox_id(other),
           events.outbox_id(events.message(job(name="operations/o1"), events.CANCEL_REQUESTED))}
    assert len(ids) == 3 and all("/" not in i for i in ids)


def test_marks_come_back_in_publishing_order():
    requested = events.message(job(), events.CANCEL_REQUESTED)
    done = events.message(job(), events.DONE)
    assert events.in_order([done, requested]) == [requested, done]
