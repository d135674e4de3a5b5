"""What a handler may return, checkpoint and report (lib.core.results)."""

from __future__ import annotations

import collections
import json
from datetime import UTC, datetime

import pytest
from google.protobuf import json_format, struct_pb2

from lib.core import results
from lib.core.results import UnstorableValue, check_checkpoint, check_response, check_status_message


def nested_list(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def nested_map(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


# The table: each value a handler returned that used to break List.
BAD_RESPONSES = [
    ({"when": datetime(2026, 1, 1, tzinfo=UTC)},
     "the job's response is not JSON: datetime at response.when"),
    ({"": 1}, "the job's response has an empty key at response"),
    ({"x": float("nan")}, "the job's response is not JSON: nan at response.x"),
    ({"b": b"\x00\xff"}, "the job's response is not JSON: bytes at response.b"),
    ({"s": "x" * 2_000_000},
     f"the job's response is 2000012 bytes, more than the {results.RESPONSE_MAX_BYTES} allowed"),
    ({"deep": nested_list(40)},
     "the job's response has a list directly inside a list at response.deep[0]"),
    # and more of the same family
    ({"deep": nested_map(40)},
     "the job's response is nested deeper than 20 at response.deep" + ".k" * 19),
    ({"x": float("inf")}, "the job's response is not JSON: inf at response.x"),
    ({"x": {"y": [1, {"z": float("-inf")}]}},
     "the job's response is not JSON: -inf at response.x.y[1].z"),
    ({"t": (1, 2)}, "the job's response is not JSON: tuple at response.t"),
    ({"s": {1, 2}}, "the job's response is not JSON: set at response.s"),
    ({"o": object()}, "the job's response is not JSON: object at response.o"),
    ({1: "a"}, "the job's response has a key that is not a string (int) at response"),
    ({"a": {"": 1}}, "the job's response has an empty key at response.a"),
    ({"__name__": 1}, "the job's response has a reserved key '__name__' at response"),
    ({"big": 2**63}, "the job's response holds an integer outside 64 bits at response.big"),
    ({"u": "\ud800"}, "the job's response holds text that is not valid Unicode at response.u"),
    ({"odd key": [None, datetime(2026, 1, 1)]},
     "the job's response is not JSON: datetime at response['odd key'][1]"),
    ({"k" * 1492: 1}, "the job's response has a key path longer than 1500 bytes at "
                      "response." + "k" * 71 + "..."),
    ([1, 2], "the job's response is not a JSON object: list at response"),
    ("done", "the job's response is not a JSON object: str at response"),
]


@pytest.mark.parametrize(("value", "message"), BAD_RESPONSES,
                         ids=[message.removeprefix("the job's response ")[:60]
                              for _, message in BAD_RESPONSES])
def test_a_response_that_firestore_or_struct_cannot_hold_is_refused_saying_what_and_where(
        value, message):
    with pytest.raises(UnstorableValue) as caught:
        check_response(value)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


GOOD_RESPONSES = [
    {},
    {"steps": 3},
    {"rows": 12, "ratio": 0.5, "ok": True, "none": None, "name": "é✓"},
    {"list": [1, "a", None, {"in": [True]}], "map": {"a": {"b": {"c": []}}}},
    {"deep": nested_map(19)},  # with the response map itself: 20 levels
    {"s": "x" * (results.RESPONSE_MAX_BYTES - 20)},
    {"big": 2**63 - 1, "small": -(2**63)},
    {"k" * 1491: 1},  # "response." + 1491 bytes: Firestore's 1,500-byte path
    {"a.b": 1, "`": 2, "a b": 3},
]


@pytest.mark.parametrize("value", GOOD_RESPONSES,
                         ids=[json.dumps(v)[:40] for v in GOOD_RESPONSES])
def test_a_json_response_that_fits_is_returned_as_it_is_and_becomes_a_struct(value):
    checked = check_response(value)
    assert checked == value
    struct = struct_pb2.Struct()
    struct.update(checked)
    json_format.MessageToDict(struct)  # renders: no NaN, no bytes


def test_a_response_is_copied_into_plain_types_so_later_changes_do_not_leak_in():
    inner = {"a": [1]}
    value = collections.OrderedDict(x=inner)
    checked = check_response(value)
    inner["a"].append(2)
    assert checked == {"x": {"a": [1]}}
    assert type(checked) is dict


def test_no_response_is_an_empty_one():
    assert check_response(None) == {}


def test_the_size_is_counted_as_firestore_counts_it():
    # "response" field name (9) + key "s" (2) + the string (bytes + 1)
    budget = results.RESPONSE_MAX_BYTES
    fits = {"s": "x" * (budget - 9 - 2 - 1)}
    assert check_response(fits) == fits
    with pytest.raises(UnstorableValue, match=f"is {budget + 1} bytes"):
        check_response({"s": "x" * (budget - 9 - 2)})


def test_a_self_referencing_response_is_refused_by_depth_not_a_crash():
    loop: dict = {}
    loop["again"] = loop
    with pytest.raises(UnstorableValue, match="nested deeper than 20"):
        check_response(loop)


@pytest.mark.parametrize(("state", "message"), [
    ({"at": datetime(2026, 1, 1)}, "the checkpoint is not JSON: datetime at checkpoint.at"),
    ({"": 0}, "the checkpoint has an empty key at checkpoint"),
    ({"x": float("nan")}, "the checkpoint is not JSON: nan at checkpoint.x"),
    ({"b": b"\x00"}, "the checkpoint is not JSON: bytes at checkpoint.b"),
    ({"s": "x" * 100_000}, f"the checkpoint is 100014 bytes, more than the "
                           f"{results.CHECKPOINT_MAX_BYTES} allowed"),
    ({"l": nested_list(3)}, "the checkpoint has a list directly inside a list at checkpoint.l[0]"),
    ([("chunk", 1)], "the checkpoint is not a JSON object: list at checkpoint"),
], ids=["datetime", "empty key", "nan", "bytes", "too big", "nested list", "not an object"])
def test_a_checkpoint_gets_the_same_checks(state, message):
    with pytest.raises(UnstorableValue) as caught:
        check_checkpoint(state)
    assert str(caught.value) == message


def test_a_checkpoint_that_fits_is_returned():
    assert check_checkpoint({"chunk": 3, "done": [1, 2]}) == {"chunk": 3, "done": [1, 2]}


@pytest.mark.parametrize(("message", "error"), [
    (42, "the status message is not a string: int at statusMessage"),
    (b"bytes", "the status message is not a string: bytes at statusMessage"),
    ("x" * 1025, "the status message is 1025 characters, more than the 1024 allowed"),
    ("\udfff", "the status message holds text that is not valid Unicode at statusMessage"),
], ids=["int", "bytes", "too long", "lone surrogate"])
def test_a_status_message_must_be_a_bounded_string(message, error):
    with pytest.raises(UnstorableValue) as caught:
        check_status_message(message)
    assert str(caught.value) == error


def test_a_status_message_that_fits_is_returned():
    assert check_status_message("chunk 3 of 10 ✓") == "chunk 3 of 10 ✓"
    assert check_status_message("x" * 1024) == "x" * 1024
