"""Records, transitions and the public Operation JSON."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta

import pytest
from google.longrunning import operations_pb2
from google.protobuf import json_format

from lib.core import model
from tests import records

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)
RETENTION = timedelta(days=30)
NAME = records.NAME


job = functools.partial(records.job, NOW)
running = functools.partial(records.running, NOW, LATER)


def parse(record):
    """The JSON a client gets, parsed strictly (unknown fields are an error)."""
    return json_format.Parse(json.dumps(model.operation_json(record)), operations_pb2.Operation())


def test_a_queued_operation_shows_the_contract_metadata_and_nothing_internal():
    body = model.operation_json(job())
    assert set(body) == {"name", "metadata"}
    assert body["metadata"]["@type"] == "type.googleapis.com/google.protobuf.Struct"
    meta = body["metadata"]["value"]
    assert set(meta) == {"createTime", "updateTime", "verb", "target", "kind", "statusMessage",
                         "progressPercent", "requestedCancellation", "attempt"}
    assert meta["attempt"] == 0 and meta["createTime"] == "2026-11-21T12:00:00Z"
    text = json.dumps(body)
    for internal in ("alice@example.com", "lease", "params", "checkpoint", "QUEUED"):
        assert internal not in text
    assert parse(job()).name == NAME


@pytest.mark.parametrize(("changes", "field"), [
    (model.succeeded_changes({"steps": 3}, now=LATER, retention=RETENTION), "response"),
    (model.failed_changes(9, "bad", now=LATER, retention=RETENTION), "error"),
    (model.cancelled_changes(now=LATER, retention=RETENTION), "error"),
], ids=["succeeded", "failed", "cancelled"])
def test_a_done_operation_has_exactly_one_result_and_an_end_time(changes, field):
    operation = parse(running(**changes))
    assert operation.done
    assert operation.WhichOneof("result") == field
    assert "endTime" in model.operation_json(running(**changes))["metadata"]["value"]


def test_cancel_of_a_queued_operation_finishes_it_with_code_1():
    changes = model.cancel_changes(job(), principal="bob", now=LATER, retention=RETENTION)
    assert changes["done"] is True and changes["state"] == "CANCELLED"
    assert changes["error"]["code"] == 1
    assert changes["expireTime"] == LATER + RETENTION


def test_cancel_of_a_running_operation_raises_the_flag_only():
    changes = model.cancel_changes(running(), principal="bob", now=LATER, retention=RETENTION)
    assert changes["cancelRequested"] is True and "done" not in changes


@pytest.mark.parametrize("record", [
    running(cancelRequested=True),
    running(**model.succeeded_changes({}, now=LATER, retention=RETENTION)),
    running(**model.cancelled_changes(now=LATER, retention=RETENTION)),
], ids=["already requested", "succeeded", "cancelled"])
def test_cancel_changes_nothing_when_requested_or_done(record):
    assert model.cancel_changes(record, principal="bob", now=LATER, retention=RETENTION) is None


@pytest.mark.parametrize("code", [0, 1])
def test_a_failure_never_reports_ok_or_cancelled(code):
    assert model.failed_changes(code, "x", now=NOW, retention=RETENTION)["error"]["code"] == 2


def test_an_operation_past_its_retention_is_expired():
    done = running(**model.succeeded_changes({}, now=NOW, retention=timedelta(seconds=1)))
    assert not model.is_expired(done, NOW)
    assert model.is_expired(done, NOW + timedelta(seconds=2))
    assert not model.is_expired(job(), NOW + timedelta(days=365))


@pytest.mark.parametrize(("a", "b"), [("operations/a/b", "operations/a%2Fb"),
                                      ("projects/p/operations/x", "projects/p%2Foperations/x")])
def test_document_ids_never_collide(a, b):
    # The second name is not a valid name, so it can never reach the store;
    # the first name's id must still differ from any valid name's id.
    assert model.document_id(a) != model.document_id("operations/ab")
    with pytest.raises(model.InvalidName):
        model.check_name(b)
