"""Over HTTP: a parent holding records that cannot be rendered (written by an
older version straight into Firestore) still answers Get, Wait and List with
200; each such record is a done operation with an INTERNAL error, logged once
per request with its name."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.longrunning import operations_pb2
from google.protobuf import json_format

from lib.core import model
from tests.waiting import wait_for

BAD = {
    "datetime": {"when": datetime(2026, 1, 1, tzinfo=UTC)},
    "nan": {"x": float("nan")},
    "bytes": {"b": b"\x00\xff"},
}


@pytest.fixture
def bad_parent(stack, parent):
    """A parent with one good operation and one unreadable one per BAD value."""
    now = model.utcnow() - timedelta(minutes=5)
    names = {}
    for i, (label, response) in enumerate([("good", {"steps": 1}), *BAD.items()]):
        name = f"{parent}/operations/{label}"
        record = model.new_job(name=name, parent=parent, target=f"{parent}/jobs/{label}",
                               kind="demo.countdown", params={"steps": 1}, created_by="t",
                               now=now + timedelta(seconds=i))
        record.update(model.succeeded_changes({}, now=now, retention=timedelta(days=1)))
        record["response"] = response
        stack.store._ref(name).set(record)  # unchecked, as an older version wrote it
        names[label] = name
    return names


def warnings_for(stack, name):
    return [line for line in stack.log_text().splitlines()
            if line.startswith("{") and "unreadable" in line and json.loads(line).get(
                "operation") == name and json.loads(line)["severity"] == "WARNING"]


def assert_unreadable(operation, name):
    assert operation["name"] == name and operation["done"] is True
    assert operation["error"]["code"] == 13
    assert operation["error"]["message"] == model.UNREADABLE_MESSAGE
    assert operation["error"]["details"][0]["reason"] == "RESULT_UNREADABLE"


def test_list_over_a_parent_holding_unreadable_records_answers_200(api, stack, parent,
                                                                    bad_parent):
    response = api("GET", f"/v1/{parent}/operations")
    assert response.status_code == 200, response.text
    page = json_format.Parse(response.text, operations_pb2.ListOperationsResponse())
    assert [op.name for op in page.operations] == [
        bad_parent[label] for label in reversed(["good", *BAD])]
    operations = {op["name"]: op for op in response.json()["operations"]}
    assert operations[bad_parent["good"]]["response"]["value"] == {"steps": 1}
    for label in BAD:
        assert_unreadable(operations[bad_parent[label]], bad_parent[label])
        wait_for(lambda label=label: warnings_for(stack, bad_parent[label]),
                 what="the warning")
        assert len(warnings_for(stack, bad_parent[label])) == 1


@pytest.mark.parametrize("label", list(BAD))
@pytest.mark.parametrize("method", ["get", "wait"])
def test_get_and_wait_on_an_unreadable_record_answer_200_done_with_internal(
        api, stack, bad_parent, label, method):
    name = bad_parent[label]
    if method == "get":
        response = api("GET", f"/v1/{name}")
    else:
        response = api("POST", f"/v1/{name}:wait", json={"timeout": "5s"})
    assert response.status_code == 200, response.text
    assert_unreadable(response.json(), name)
    json_format.Parse(response.text, operations_pb2.Operation())
    assert len(wait_for(lambda: warnings_for(stack, name), what="the warning")) == 1
