"""A stored record that cannot be rendered (written by an older version, or by
hand) never fails a request: Get, Wait and List show it as a done operation
with an INTERNAL error, and log it once per request with its name."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud.firestore import GeoPoint
from google.longrunning import operations_pb2
from google.protobuf import json_format

from lib.core import model
from lib.core.config import Settings
from lib.core.publisher import PubSubJobPublisher
from lib.core.service import OperationsService

RETENTION = timedelta(days=30)

# What older versions could write into a done record: Firestore holds each of
# these, google.protobuf.Struct (or its JSON form) cannot.
BAD = {
    "datetime": {"response": {"when": datetime(2026, 1, 1, tzinfo=UTC)}},
    "nan": {"response": {"x": float("nan")}},
    "infinity": {"response": {"x": float("inf")}},
    "bytes": {"response": {"b": b"\x00\xff"}},
    "geopoint": {"response": {"at": GeoPoint(1.0, 2.0)}},
    "list-response": {"response": [1, 2]},
    "error-code-text": {"error": {"code": "thirteen", "message": "x"}},
    "no-create-time": {"createTime": None},
}


@pytest.fixture
def service(store, emulators):
    settings = Settings(project=emulators.project, wait_max_seconds=3,
                        page_token_secret="test-secret")
    return OperationsService(store, PubSubJobPublisher(emulators.project, "unused"), settings)


@pytest.fixture
def parent(unique):
    return f"projects/p-{unique}/locations/us"


def write(store, parent, label, changes, *, minutes_ago=10):
    """Writes a done record with ``changes`` straight into Firestore."""
    name = f"{parent}/operations/{label}"
    now = model.utcnow() - timedelta(minutes=minutes_ago)
    record = model.new_job(name=name, parent=parent, target=f"{parent}/jobs/{label}",
                           kind="demo.countdown", params={"steps": 1}, created_by="t", now=now)
    record.update(model.succeeded_changes({}, now=now, retention=RETENTION))
    record.update(changes)
    if "error" in changes:
        record.pop("response")
    if changes.get("createTime", now) is None:
        record.pop("createTime")
    store._ref(name).set(record)  # as an older version would have, unchecked
    return name


def assert_unreadable(operation, name):
    assert operation["name"] == name
    assert operation["done"] is True
    assert operation["error"]["code"] == 13
    assert operation["error"]["message"] == model.UNREADABLE_MESSAGE
    assert operation["error"]["details"][0]["reason"] == "RESULT_UNREADABLE"
    assert "response" not in operation
    json_format.Parse(json.dumps(operation), operations_pb2.Operation())


def unreadable_warnings(caplog, name):
    return [r for r in caplog.records if r.levelno == logging.WARNING
            and "unreadable" in r.getMessage()
            and getattr(r, "json_fields", {}).get("operation") == name]


@pytest.mark.parametrize("label", list(BAD))
def test_get_and_wait_show_an_unreadable_record_as_failed_and_log_it_once(
        service, store, parent, label, caplog):
    name = write(store, parent, label, BAD[label])
    caplog.set_level(logging.INFO, logger="operations")
    assert_unreadable(service.get_operation(name), name)
    assert len(unreadable_warnings(caplog, name)) == 1
    caplog.clear()
    assert_unreadable(service.wait_operation(name, {"timeout": "1s"}), name)
    assert len(unreadable_warnings(caplog, name)) == 1


def test_what_still_renders_of_an_unreadable_record_is_kept_in_its_metadata(
        service, store, parent):
    name = write(store, parent, "kept", BAD["datetime"])
    metadata = service.get_operation(name)["metadata"]["value"]
    assert metadata["kind"] == "demo.countdown"
    assert metadata["target"] == f"{parent}/jobs/kept"
    assert metadata["createTime"].endswith("Z")


def test_list_includes_unreadable_records_in_order_and_logs_each_once(
        service, store, parent, caplog):
    good_old = write(store, parent, "good-old", {}, minutes_ago=100)
    bad = [write(store, parent, label, changes, minutes_ago=50 - i)
           for i, (label, changes) in enumerate(BAD.items()) if label != "no-create-time"]
    good_new = write(store, parent, "good-new", {}, minutes_ago=1)
    caplog.set_level(logging.INFO, logger="operations")
    page = service.list_operations(parent, {})
    operations = page["operations"]
    assert [op["name"] for op in operations] == [good_new, *reversed(bad), good_old]
    for operation in operations[1:-1]:
        assert_unreadable(operation, operation["name"])
    assert operations[0]["response"]["value"] == {}
    assert "error" not in operations[-1]
    for name in bad:
        assert len(unreadable_warnings(caplog, name)) == 1
    json_format.Parse(json.dumps(page), operations_pb2.ListOperationsResponse())


def test_pages_over_unreadable_records_carry_on(service, store, parent):
    names = [write(store, parent, f"{label}", changes, minutes_ago=50 - i)
             for i, (label, changes) in enumerate(BAD.items()) if label != "no-create-time"]
    first = service.list_operations(parent, {"pageSize": "3"})
    assert len(first["operations"]) == 3 and first["nextPageToken"]
    rest = service.list_operations(parent, {"pageSize": "100",
                                            "pageToken": first["nextPageToken"]})
    listed = [op["name"] for op in first["operations"] + rest["operations"]]
    assert listed == list(reversed(names))
    assert "nextPageToken" not in rest
