"""An operation's JSON written directly (lib/core/rendering.py) is the JSON protobuf
writes (``json_format.MessageToDict(model.to_operation(record))``), over the records
the service writes and over generated ones, odd values included; where protobuf
fails, it fails the same way."""

from __future__ import annotations

import functools
import json
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.core import model, rendering
from tests import records

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "300"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

NOW = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5, microseconds=877000)
RETENTION = timedelta(days=30)
NAME = records.NAME


def protobuf(record):
    """The definition: the Operation message, rendered by json_format."""
    return json_format.MessageToDict(model.to_operation(record))


def outcome(render, record):
    try:
        return "ok", render(record)
    except Exception as exc:
        return "raises", type(exc)


def message_orders(body):
    """The key order of each message object; not of maps (a Struct's fields,
    ErrorInfo's metadata), which protobuf orders by a hash seeded per process."""
    orders = [list(body)] + [list(body[key]) for key in ("metadata", "response") if key in body]
    if "error" in body:
        orders.append(list(body["error"]))
        orders += [list(detail) for detail in body["error"].get("details", [])]
    return orders


def assert_same(record):
    expected, got = outcome(protobuf, record), outcome(rendering.operation_json, record)
    if expected[0] == "raises":
        assert got == expected
        return
    assert got[0] == "ok"
    # Same fields, values and number types (sort_keys only settles map order).
    assert json.dumps(got[1], sort_keys=True) == json.dumps(expected[1], sort_keys=True)
    assert message_orders(got[1]) == message_orders(expected[1])


job = functools.partial(records.job, NOW)
running = functools.partial(records.running, NOW, LATER, statusMessage="Running.",
                            progressPercent=40)


def requested(reason=""):
    record = running()
    record.update(model.cancel_changes(record, principal="bob@example.com", now=LATER,
                                       retention=RETENTION, reason=reason) or {})
    return record


SERVICE_RECORDS = {
    "queued": job(),
    "queued with a deadline": job(deadline=LATER),
    "running": running(),
    "running, cancel requested": requested(),
    "running, cancel requested with a reason": requested("user asked ✓"),
    "cancel acknowledged": {**requested("why"), "cancelAcknowledgeTime": LATER},
    "cancelled before it started": {
        **job(), **(model.cancel_changes(job(), principal="bob@example.com", now=LATER,
                                         retention=RETENTION, reason="no") or {})},
    "cancelled": {**requested("r"), **model.cancelled_changes(
        now=LATER, retention=RETENTION, info=model.cancel_info(requested("r")))},
    "cancel forced": {**requested(), **model.cancelled_changes(
        now=LATER, retention=RETENTION, reason=model.CANCEL_FORCED,
        info=model.cancel_info(requested()))},
    "deadline": {**running(deadline=LATER), **model.deadline_changes(now=LATER,
                                                                     retention=RETENTION)},
    "deadline forced": {**running(deadline=LATER), **model.deadline_changes(
        now=LATER, retention=RETENTION, forced=True)},
    "failed": {**running(), **model.failed_changes(9, "disk full", now=LATER,
                                                   retention=RETENTION)},
    "succeeded": {**running(), **model.succeeded_changes(
        {"steps": 3, "ratio": 0.25, "big": 2**53, "ok": True, "none": None,
         "nested": {"list": [1, "two", [3.5, {"x": []}], {}], "é": "ünïcode"}},
        now=LATER, retention=RETENTION)},
    "succeeded, empty response": {**running(), **model.succeeded_changes(
        {}, now=LATER, retention=RETENTION)},
    "as Firestore returns it": running(
        createTime=DatetimeWithNanoseconds(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
        updateTime=DatetimeWithNanoseconds(2026, 1, 2, 3, 4, 6, nanosecond=123456789,
                                           tzinfo=UTC)),
}


@pytest.mark.parametrize("record", SERVICE_RECORDS.values(), ids=SERVICE_RECORDS)
def test_every_record_the_service_writes_renders_as_protobuf_renders_it(record):
    assert_same(record)


@pytest.mark.parametrize("record", SERVICE_RECORDS.values(), ids=SERVICE_RECORDS)
def test_every_record_the_service_writes_is_rendered_without_protobuf(record, monkeypatch):
    def no_protobuf(_record):
        raise AssertionError("rendered through protobuf")

    monkeypatch.setattr(model, "operation_json", no_protobuf)
    assert rendering.operation_json(record)["name"] == NAME


def test_an_error_carries_one_error_info_with_its_metadata():
    body = rendering.operation_json(SERVICE_RECORDS["cancelled"])
    assert body["error"] == {"code": 1, "message": model.CANCELLED_MESSAGE, "details": [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": model.CANCELLED_BY_REQUEST, "domain": model.ERROR_DOMAIN,
        "metadata": {"requestedBy": "bob@example.com", "reason": "r"}}]}
    assert list(body) == ["name", "metadata", "done", "error"]


# Generated records: what a record may hold, plausible or not.

TIMEZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                             timezone(-timedelta(hours=8)), None])


@st.composite
def datetimes(draw):
    micro = draw(st.sampled_from([0, 1000, 123000, 999999, 1, 500, 250]))
    stamp = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                              timezones=TIMEZONES))
    return stamp.replace(microsecond=micro) if draw(st.booleans()) else stamp


SCALARS = (st.none() | st.booleans() | st.text(max_size=8)
           | st.integers(min_value=-2**60, max_value=2**60)
           | st.sampled_from([0, 2**53, 2**53 + 1, -2**53, 10**400 // 10**390])
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from(["\ud800", "a\udfffb", b"bytes", (1, 2), 1 + 2j]))
KEYS = st.text(max_size=6) | st.sampled_from(["\ud800", 1, None])
VALUES = st.recursive(SCALARS | datetimes(),
                      lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)
TEXT_OR_ODD = st.text(max_size=10) | SCALARS


@st.composite
def errors(draw):
    error = {"code": draw(st.integers(min_value=-3, max_value=20)
                          | st.sampled_from([2**31, -2**31, "5", 3.7, True, "x"])),
             "message": draw(TEXT_OR_ODD)}
    if draw(st.booleans()):
        error["reason"] = draw(TEXT_OR_ODD)
        error["metadata"] = draw(st.none() | st.dictionaries(KEYS, TEXT_OR_ODD, max_size=3))
    if draw(st.booleans()):
        del error[draw(st.sampled_from(["code", "message"]))]
    return error


@st.composite
def records(draw):
    record = {"name": draw(st.just(NAME) | st.text(max_size=5) | st.sampled_from([None, "\ud800"])),
              "createTime": draw(datetimes())}
    optional = {
        "updateTime": datetimes() | st.none(),
        "verb": TEXT_OR_ODD, "target": TEXT_OR_ODD, "kind": TEXT_OR_ODD,
        "statusMessage": TEXT_OR_ODD, "progressPercent": SCALARS, "attempt": SCALARS,
        "cancelRequested": st.booleans() | SCALARS, "cancelRequestedBy": TEXT_OR_ODD,
        "cancelReason": TEXT_OR_ODD, "endTime": datetimes() | st.none(),
        "cancelRequestTime": datetimes() | st.none() | SCALARS,
        "cancelAcknowledgeTime": datetimes() | st.none(), "deadline": datetimes() | st.none(),
        "done": st.booleans() | SCALARS, "error": errors() | st.none() | SCALARS,
        "response": VALUES,
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            record[key] = draw(values)
    if draw(st.integers(0, 9)) == 0:
        del record[draw(st.sampled_from(["name", "createTime"]))]
    return record


@PROPERTY
@given(records())
def test_any_record_renders_as_protobuf_renders_it_or_fails_as_it_fails(record):
    assert_same(record)


@PROPERTY
@given(st.dictionaries(st.text(max_size=6), VALUES, max_size=5), datetimes(), datetimes())
def test_any_response_renders_as_protobuf_renders_it(response, created, ended):
    record = {**job(createTime=created), **model.succeeded_changes(
        response, now=ended, retention=RETENTION)}
    assert_same(record)
