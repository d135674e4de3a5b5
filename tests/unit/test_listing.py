"""ListOperations: the AIP-160 filter subset, AIP-158 page tokens and page sizes."""

from __future__ import annotations

import base64
import itertools
import json
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.api_core import exceptions

from lib.core import listing, model, pagination
from lib.core.listing import And, Not, Or, Restriction

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RETENTION = timedelta(days=30)
PARENT = "projects/p/locations/l"
KEY = b"k" * 32


def job(job_id, *, minutes, kind="demo.countdown", **changes):
    record = model.new_job(
        name=f"{PARENT}/operations/{job_id}", parent=PARENT, target=f"{PARENT}/jobs/{job_id}",
        kind=kind, params={"steps": 1}, created_by="alice@example.com",
        now=T0 + timedelta(minutes=minutes),
    )
    record.update(changes)
    return record


END = T0 + timedelta(hours=1)
RECORDS = {
    "queued": job("queued", minutes=0),
    "running": job("running", minutes=1, kind="demo.other", state="RUNNING", attempt=1),
    "succeeded": job("succeeded", minutes=2,
                     **model.succeeded_changes({}, now=END, retention=RETENTION)),
    "failed": job("failed", minutes=3,
                  **model.failed_changes(9, "boom", now=END, retention=RETENTION)),
    "cancelled": job("cancelled", minutes=4,
                     **model.cancelled_changes(now=END, retention=RETENTION)),
}
ALL = set(RECORDS)


def matching(text):
    parsed = listing.parse_filter(text)
    return {key for key, record in RECORDS.items() if parsed.matches(record)}


def invalid(call, reason):
    with pytest.raises(exceptions.InvalidArgument) as caught:
        call()
    assert caught.value.code == 400 and caught.value.reason == reason
    return caught.value


# --- every operator on every field -------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("done = true", {"succeeded", "failed", "cancelled"}),
    ("done = false", {"queued", "running"}),
    ("done != true", {"queued", "running"}),
    ("done != false", {"succeeded", "failed", "cancelled"}),
    ("done=true", {"succeeded", "failed", "cancelled"}),
    ("error.code = 0", {"queued", "running", "succeeded"}),
    ("error.code = 1", {"cancelled"}),
    ("error.code != 0", {"failed", "cancelled"}),
    ("error.code != 1", {"queued", "running", "succeeded", "failed"}),
    ("error.code < 1", {"queued", "running", "succeeded"}),
    ("error.code <= 1", {"queued", "running", "succeeded", "cancelled"}),
    ("error.code > 1", {"failed"}),
    ("error.code >= 9", {"failed"}),
    ("error.code > -1", ALL),
    ("metadata.kind = \"demo.countdown\"", ALL - {"running"}),
    ("metadata.kind = demo.other", {"running"}),
    ("metadata.kind = 'demo.other'", {"running"}),
    ("metadata.kind != demo.countdown", {"running"}),
    ("metadata.kind = \"\"", set()),
    ("metadata.verb = create", ALL),
    ("metadata.verb != \"create\"", set()),
    (f"metadata.target = {PARENT}/jobs/failed", {"failed"}),
    (f"metadata.target != \"{PARENT}/jobs/failed\"", ALL - {"failed"}),
    ("metadata.createTime = \"2026-01-01T00:02:00Z\"", {"succeeded"}),
    ("metadata.createTime != \"2026-01-01T00:02:00Z\"", ALL - {"succeeded"}),
    ("metadata.createTime < \"2026-01-01T00:02:00Z\"", {"queued", "running"}),
    ("metadata.createTime <= \"2026-01-01T00:02:00Z\"", {"queued", "running", "succeeded"}),
    ("metadata.createTime > \"2026-01-01T00:02:00Z\"", {"failed", "cancelled"}),
    ("metadata.createTime >= \"2026-01-01T00:02:00Z\"", {"succeeded", "failed", "cancelled"}),
    ("metadata.createTime >= 2026-01-01T00:02:00Z", {"succeeded", "failed", "cancelled"}),
    ("metadata.createTime = \"2026-01-01T01:02:00+01:00\"", {"succeeded"}),
    ("metadata.createTime = \"2025-12-31T19:02:00.000000000-05:00\"", {"succeeded"}),
    ("metadata.createTime > \"2026-01-01t00:00:59.999999999z\"", ALL - {"queued"}),
], ids=lambda value: value if isinstance(value, str) else None)
def test_each_operator_on_each_field_selects_the_right_operations(text, expected):
    assert matching(text) == expected


@pytest.mark.parametrize(("text", "position"), [
    ("done < true", 5), ("done <= true", 5), ("done > false", 5), ("done >= false", 5),
    ("metadata.kind < a", 14), ("metadata.kind <= a", 14), ("metadata.kind > a", 14),
    ("metadata.kind >= a", 14), ("metadata.verb > a", 14), ("metadata.target < a", 16),
    ("done : true", 5), ("metadata.kind:demo", 13),
], ids=lambda value: value if isinstance(value, str) else None)
def test_an_operator_the_field_type_has_not_is_invalid_at_the_operator(text, position):
    error = invalid(lambda: listing.parse_filter(text), "INVALID_FILTER")
    assert error.metadata == {"position": str(position)}
    assert f"position {position}" in error.message


def test_an_operation_without_an_error_has_error_code_0_and_ne_is_always_the_negation():
    for op in ("=", "<", "<=", ">", ">="):
        for code in (-1, 0, 1, 2):
            equal = matching(f"error.code {op} {code}")
            negated = matching(f"NOT error.code {op} {code}")
            assert equal | negated == ALL and not equal & negated
    assert matching("error.code != 0") == ALL - matching("error.code = 0")
    bare = {"name": "x", "createTime": T0}  # no done, error, kind, verb or target at all
    for text, expected in [("done = false", True), ("error.code = 0", True),
                           ("metadata.kind = \"\"", True), ("metadata.kind != x", True),
                           ("metadata.createTime > \"1970-01-01T00:00:00Z\"", True)]:
        assert listing.parse_filter(text).matches(bare) is expected
    assert listing.parse_filter("metadata.createTime > \"1969-12-31T23:59:59Z\"").matches({})


# --- precedence, parentheses, NOT ---------------------------------------------------------

A, B, C = "done = true", "metadata.kind = a", "metadata.verb = v"


def truth_records():
    for a, b, c in itertools.product([False, True], repeat=3):
        yield (a, b, c), {"done": a, "kind": "a" if b else "z", "verb": "v" if c else "z",
                          "createTime": T0}


@pytest.mark.parametrize(("text", "meaning"), [
    (f"{A} AND {B} OR {C}", lambda a, b, c: a and (b or c)),
    (f"{A} OR {B} AND {C}", lambda a, b, c: (a or b) and c),
    (f"({A} AND {B}) OR {C}", lambda a, b, c: (a and b) or c),
    (f"{A} OR ({B} AND {C})", lambda a, b, c: a or (b and c)),
    (f"NOT {A} AND {B}", lambda a, b, c: (not a) and b),
    (f"NOT {A} OR {B}", lambda a, b, c: (not a) or b),
    (f"NOT ({A} OR {B})", lambda a, b, c: not (a or b)),
    (f"-{A} OR {B}", lambda a, b, c: (not a) or b),
    (f"-({A} AND {B}) AND {C}", lambda a, b, c: not (a and b) and c),
    (f"NOT (NOT ({A}))", lambda a, b, c: a),
    (f"(((({A}))))", lambda a, b, c: a),
    (f"{A}\tAND\n{B}  OR\r\n{C}", lambda a, b, c: a and (b or c)),
], ids=["a AND b OR c is a AND (b OR c)", "a OR b AND c is (a OR b) AND c",
        "parentheses group AND first", "parentheses group AND last", "NOT binds tightest (AND)",
        "NOT binds tightest (OR)", "NOT of a group", "minus is NOT", "minus on a group",
        "double NOT through parentheses", "redundant parentheses", "any whitespace"])
def test_or_binds_tighter_than_and_and_not_binds_tightest(text, meaning):
    parsed = listing.parse_filter(text)
    for values, record in truth_records():
        assert parsed.matches(record) is meaning(*values), values


def test_the_tree_shows_aip_160_precedence():
    a, b, c = (listing.parse_filter(t).root for t in (A, B, C))
    assert listing.parse_filter(f"{A} AND {B} OR {C}").root == And((a, Or((b, c))))
    assert listing.parse_filter(f"{A} OR {B} AND {C}").root == And((Or((a, b)), c))
    assert listing.parse_filter(f"({A} AND {B}) AND {C}").root == And((a, b, c))
    assert listing.parse_filter(f"-{A}").root == Not(a)
    assert a == Restriction("done", "=", True)


@pytest.mark.parametrize("text", ["", "   ", "\t\n"], ids=["empty", "spaces", "tab and newline"])
def test_an_empty_filter_matches_everything(text):
    parsed = listing.parse_filter(text)
    assert parsed.root is None and matching(text) == ALL
    assert parsed.equalities() == {} and parsed.create_time_bounds() == []


# --- malformed filters: 400 with the position ---------------------------------------------

@pytest.mark.parametrize(("text", "position", "says"), [
    ("foo = 1", 0, "unknown field 'foo'"),
    ("done = true AND name = x", 16, "unknown field 'name'"),
    ("metadata.progressPercent > 5", 0, "unknown field"),
    ("Done = true", 0, "unknown field"),
    ("done", 4, "expected a comparison operator"),
    ("done true", 5, "expected a comparison operator"),
    ("done =", 6, "expected a value"),
    ("done = ", 7, "expected a value"),
    ("done = yes", 7, "expected true or false"),
    ("done = TRUE", 7, "expected true or false"),
    ("done = \"true\"", 7, "expected true or false"),
    ("error.code = one", 13, "expected a 32-bit integer"),
    ("error.code = 1.5", 13, "expected a 32-bit integer"),
    ("error.code = 2147483648", 13, "expected a 32-bit integer"),
    ("error.code = 99999999999999999999", 13, "expected a 32-bit integer"),
    ("error.code = \"1\"", 13, "expected a 32-bit integer"),
    ("metadata.kind = a,b", 16, "must be quoted"),
    ("metadata.kind = AND", 16, "must be quoted"),
    ("metadata.kind = \"demo.*\"", 16, "wildcards"),
    ("metadata.kind = demo*", 16, "wildcards"),
    ("metadata.kind = \"abc", 16, "unterminated string"),
    ("metadata.kind = 'abc\"", 16, "unterminated string"),
    ("metadata.kind = \"a\\qb\"", 18, "unknown escape"),
    ("metadata.createTime > 2026-01-01", 22, "RFC 3339"),
    ("metadata.createTime > \"2026-13-01T00:00:00Z\"", 22, "RFC 3339"),
    ("metadata.createTime > \"2026-01-01T00:00:00\"", 22, "RFC 3339"),
    ("metadata.createTime > \"2026-01-01 00:00:00Z\"", 22, "RFC 3339"),
    ("metadata.createTime > \"2026-01-01T00:00:00+24:00\"", 22, "RFC 3339"),
    ("metadata.createTime > \"2026-01-01T00:00:00+01:60\"", 22, "RFC 3339"),
    ("metadata.createTime > 1767225600", 22, "RFC 3339"),
    ("(done = true", 12, "expected ')' to close the '(' at position 0"),
    ("((done = true)", 14, "expected ')' to close the '(' at position 0"),
    ("done = true)", 11, "')' without a matching '('"),
    ("()", 1, "expected a field name"),
    ("done = true AND", 15, "expected a field name"),
    ("AND done = true", 0, "expected a field name"),
    ("done = true OR OR done = false", 15, "expected a field name"),
    ("NOT NOT done = true", 4, "expected a field name"),
    ("done = true done = false", 12, "expected AND, OR or the end"),
    ("done = true and done = false", 12, "expected AND, OR or the end"),
    ("done = true ANDdone = false", 12, "expected AND, OR or the end"),
    ("done = true && done = false", 12, "expected AND, OR or the end"),
    ("done = true\x00", 11, "control characters"),
    ("metadata.kind = \"a\x1fb\"", 18, "control characters"),
    ("metadata.kind = \"a\x7f\"", 18, "control characters"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_a_malformed_filter_is_invalid_with_its_position(text, position, says):
    error = invalid(lambda: listing.parse_filter(text), "INVALID_FILTER")
    assert error.metadata == {"position": str(position)}
    assert f"position {position}" in error.message and says in error.message


def test_the_filter_length_is_bounded():
    longest = "done = true" + " " * (listing.MAX_FILTER_LENGTH - len("done = true"))
    assert listing.parse_filter(longest).matches({"done": True})
    error = invalid(lambda: listing.parse_filter(longest + " "), "INVALID_FILTER")
    assert error.metadata == {"position": "2000"} and "longer than 2000" in error.message


@pytest.mark.parametrize(("depth", "position", "says"), [
    (33, 32, "nested deeper than 32"),
    (990, 32, "nested deeper than 32"),
    (10_000, 2000, "longer than 2000"),
], ids=["33 levels", "990 levels within the length", "10,000 levels"])
def test_deep_parentheses_are_invalid_never_a_recursion_error(depth, position, says):
    text = "(" * depth + "done = true" + ")" * depth
    error = invalid(lambda: listing.parse_filter(text), "INVALID_FILTER")
    assert error.metadata == {"position": str(position)} and says in error.message


def test_thirty_two_levels_of_parentheses_and_not_are_fine():
    text = "NOT (" * 32 + "done = true" + ")" * 32
    assert listing.parse_filter(text).matches({"done": True})  # an even number of NOTs


def test_a_long_flat_filter_is_fine():
    text = " OR ".join(["error.code = 1"] * 110)
    assert len(text) < listing.MAX_FILTER_LENGTH
    assert matching(text) == {"cancelled"}


@pytest.mark.parametrize(("text", "value"), [
    ("metadata.kind = \"a\\\"b\"", "a\"b"),
    ("metadata.kind = 'a\\'b'", "a'b"),
    ("metadata.kind = \"a'b\"", "a'b"),
    ("metadata.kind = \"a\\\\b\"", "a\\b"),
    ("metadata.kind = \"a\\nb\\tc\\rd\"", "a\nb\tc\rd"),
    ("metadata.kind = \"a b (c) AND d\"", "a b (c) AND d"),
    ("metadata.kind = \"δοκιμή\"", "δοκιμή"),
    ("metadata.target = projects/p/locations/l/jobs/x-1_2~3",
     "projects/p/locations/l/jobs/x-1_2~3"),
], ids=["escaped double quote", "escaped single quote", "single quote inside double",
        "escaped backslash", "newline tab return", "keywords and parens inside quotes",
        "non-ASCII", "bare resource name"])
def test_string_values_unescape(text, value):
    assert listing.parse_filter(text).root.value == value


def test_timestamps_are_utc_and_nanoseconds_truncate_to_microseconds():
    node = listing.parse_filter(
        "metadata.createTime >= \"2026-03-01T10:00:00.123456789+02:00\"").root
    assert node.value == datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)


# --- push-down: equalities and createTime bounds ------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("done = true", {"done": True}),
    ("done = false", {"done": False}),
    ("metadata.kind = k AND metadata.verb = v AND metadata.target = t",
     {"kind": "k", "verb": "v", "target": "t"}),
    ("error.code = 1 AND done = true", {"error.code": 1, "done": True}),
    ("error.code = 0", {}),
    ("metadata.kind = \"\"", {}),
    ("done = true AND (metadata.kind = a OR metadata.kind = b)", {"done": True}),
    ("(done = true AND metadata.kind = a) AND metadata.verb = v",
     {"done": True, "kind": "a", "verb": "v"}),
    ("done = true OR metadata.kind = a", {}),
    ("NOT done = true", {}),
    ("done != true", {}),
    ("error.code >= 1", {}),
    ("metadata.kind = a AND metadata.kind = b", {"kind": "a"}),
    ("metadata.createTime = \"2026-01-01T00:00:00Z\"", {}),
], ids=lambda value: value if isinstance(value, str) else None)
def test_equalities_are_the_top_level_conjuncts_firestore_can_take(text, expected):
    assert listing.parse_filter(text).equalities() == expected


def test_equalities_never_exclude_a_matching_operation():
    for text in ["done = true AND error.code = 1", "metadata.kind = demo.other AND done = false",
                 "done = true AND (error.code = 9 OR error.code = 1)"]:
        parsed = listing.parse_filter(text)
        for record in RECORDS.values():
            pushed = all(_path(record, path) == value
                         for path, value in parsed.equalities().items())
            assert pushed or not parsed.matches(record)


def _path(record, path):
    for part in path.split("."):
        record = record.get(part) if isinstance(record, dict) else None
    return record


def test_create_time_bounds_are_the_top_level_range():
    parsed = listing.parse_filter(
        "metadata.createTime >= \"2026-01-01T00:00:00Z\" AND done = true AND "
        "metadata.createTime < \"2026-02-01T00:00:00Z\" AND metadata.createTime != "
        "\"2026-01-05T00:00:00Z\" AND (metadata.createTime > \"2027-01-01T00:00:00Z\" OR "
        "done = false)")
    assert parsed.create_time_bounds() == [(">=", T0), ("<", datetime(2026, 2, 1, tzinfo=UTC))]
    assert listing.parse_filter("metadata.createTime = \"2026-01-01T00:00:00Z\"") \
        .create_time_bounds() == [("==", T0)]
    assert listing.parse_filter(
        "metadata.createTime > \"2026-01-01T00:00:00Z\" OR done = true").create_time_bounds() == []


# --- canonical form -----------------------------------------------------------------------

def test_the_canonical_form_ignores_spacing_quoting_and_redundant_parentheses():
    forms = ["done=true AND metadata.kind=a OR metadata.kind='b'",
             "  (done = true)  AND  (metadata.kind = \"a\" OR metadata.kind = b) ",
             "done = true AND (metadata.kind = a OR (metadata.kind = \"b\"))"]
    assert len({listing.normalize_filter(form) for form in forms}) == 1
    assert listing.normalize_filter(forms[0]) == \
        'done = true AND metadata.kind = "a" OR metadata.kind = "b"'
    assert listing.normalize_filter("done = true OR metadata.kind = a") != \
        listing.normalize_filter("done = true AND metadata.kind = a")


def random_node(rng, depth=0):
    roll = rng.random()
    if depth >= 4 or roll < 0.4:
        name = rng.choice(list(listing._FIELDS))
        field = listing._FIELDS[name]
        op = rng.choice(sorted(field.operators))
        value = {
            "a boolean": lambda: rng.choice([True, False]),
            "an integer": lambda: rng.randint(-(2**31), 2**31 - 1),
            "a string": lambda: "".join(rng.choice("ab \"'\\\n\t\r()ANDé/.-") for _ in
                                        range(rng.randint(0, 6))),
            "a timestamp": lambda: datetime(rng.randint(1, 9999), rng.randint(1, 12),
                                            rng.randint(1, 28), rng.randint(0, 23),
                                            microsecond=rng.randint(0, 999999), tzinfo=UTC),
        }[field.type]()
        return Restriction(name, op, value)
    if roll < 0.55:
        return Not(random_node(rng, depth + 1))
    kind = rng.choice([And, Or])
    parts = [random_node(rng, depth + 1) for _ in range(rng.randint(2, 3))]
    return listing._combine(kind, parts)


def test_fuzz_the_canonical_form_parses_back_to_the_same_filter():
    rng = random.Random(160)
    for _ in range(500):
        node = random_node(rng)
        text = listing.Filter(node).canonical
        if len(text) <= listing.MAX_FILTER_LENGTH:
            assert listing.parse_filter(text).root == node, text


def test_fuzz_garbage_is_a_filter_or_a_400_with_a_position_never_a_crash():
    rng = random.Random(158)
    pieces = ["done", "error.code", "metadata.kind", "metadata.createTime", "=", "!=", "<",
              ">=", ":", "AND", "OR", "NOT", "-", "(", ")", "true", "1", "-2", "\"x\"", "'y",
              "\"2026-01-01T00:00:00Z\"", "\\", "*", "\x00", " ", "é", "and", ",", "\""]
    outcomes = set()
    for _ in range(3000):
        text = "".join(rng.choice(pieces) + rng.choice(["", " "])
                       for _ in range(rng.randint(1, 12)))
        try:
            parsed = listing.parse_filter(text)
        except exceptions.InvalidArgument as error:
            assert error.reason == "INVALID_FILTER"
            assert 0 <= int(error.metadata["position"]) <= len(text)
            outcomes.add("invalid")
        else:
            for record in RECORDS.values():
                parsed.matches(record)
            parsed.equalities()
            outcomes.add("valid")
    assert outcomes == {"valid", "invalid"}


# --- page tokens --------------------------------------------------------------------------

CURSOR = {"createTime": datetime(2026, 1, 1, 12, 30, 15, 123456, tzinfo=UTC),
          "id": "projects%2Fp%2Flocations%2Fl%2Foperations%2Fabc"}
FILTER = "done = true AND metadata.kind = demo.countdown"


def token(cursor=CURSOR, parent=PARENT, filter_text=FILTER, key=KEY):
    return pagination.encode_page_token(cursor, parent=parent, filter_text=filter_text, key=key)


def decode(text, parent=PARENT, filter_text=FILTER, key=KEY):
    return pagination.decode_page_token(text, parent=parent, filter_text=filter_text, key=key)


def test_a_token_round_trips_its_cursor_and_is_url_safe():
    issued = token()
    assert decode(issued) == CURSOR
    assert set(issued) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    eastern = CURSOR["createTime"].astimezone(timezone(timedelta(hours=-5)))
    assert decode(token({"createTime": eastern, "id": "x"}))["createTime"] == CURSOR["createTime"]
    early = {"createTime": datetime(1, 1, 1, tzinfo=UTC), "id": "é"}
    assert decode(token(early, filter_text=""), filter_text="") == early


def test_a_token_is_bound_to_the_meaning_of_the_filter_not_its_spelling():
    respelled = "(done=true) AND metadata.kind = \"demo.countdown\""
    assert decode(token(), filter_text=respelled) == CURSOR


@pytest.mark.parametrize(("parent", "filter_text", "key"), [
    ("projects/p/locations/other", FILTER, KEY),
    ("projects/p", FILTER, KEY),
    (PARENT, "done = true", KEY),
    (PARENT, "", KEY),
    (PARENT, "done = true OR metadata.kind = demo.countdown", KEY),
    (PARENT, FILTER, b"j" * 32),
], ids=["another location", "another parent shape", "a narrower filter", "no filter",
        "AND turned into OR", "another key"])
def test_a_token_reused_with_another_parent_filter_or_key_is_invalid(parent, filter_text, key):
    issued = token()
    invalid(lambda: decode(issued, parent=parent, filter_text=filter_text, key=key),
            "INVALID_PAGE_TOKEN")


@pytest.mark.parametrize("part", ["payload", "tag"])
def test_flipping_any_byte_of_the_payload_or_the_tag_is_invalid(part):
    raw = base64.urlsafe_b64decode(token() + "==")
    indexes = range(len(raw) - 32) if part == "payload" else range(len(raw) - 32, len(raw))
    assert len(indexes) >= 32
    for index in indexes:
        for bit in (0x01, 0x80):
            altered = bytearray(raw)
            altered[index] ^= bit
            text = base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode()
            invalid(lambda text=text: decode(text), "INVALID_PAGE_TOKEN")


def test_every_changed_character_of_the_text_is_invalid():
    issued = token()
    alphabet = "Aa0_-"
    for index in range(len(issued)):
        for char in alphabet:
            if char != issued[index]:
                changed = issued[:index] + char + issued[index + 1:]
                invalid(lambda text=changed: decode(text), "INVALID_PAGE_TOKEN")


def forged(payload: bytes, parent=PARENT, filter_text=FILTER):
    """A token with a valid tag over an arbitrary payload (as if the key leaked)."""
    tag = pagination._tag(payload, parent=parent, filter_text=filter_text, key=KEY)
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()


@pytest.mark.parametrize("text", [
    "", "=", "!!!!", "a", "abc=", "abcd" * 300, "ÿÿÿÿ", "a b", "abc\n", "Zm9v",
    base64.urlsafe_b64encode(b"x" * 32).rstrip(b"=").decode(),
    base64.urlsafe_b64encode(b"x" * 64).decode(),
    forged(b"not json"), forged(b"\xff\xfe"), forged(b"[]"), forged(b'{"v":1}'),
    forged(b'{"id":"x","t":1,"v":2}'), forged(b'{"id":"","t":1,"v":1}'),
    forged(b'{"id":"x","t":"1","v":1}'), forged(b'{"id":"x","t":1.5,"v":1}'),
    forged(b'{"id":"x","t":true,"v":1}'), forged(b'{"id":7,"t":1,"v":1}'),
    forged(b'{"id":"x","t":99999999999999999999999,"v":1}'),
    forged(b'{"id":"x","t":1,"v":1,"extra":0}'),
    forged(b"[" * 100_000 + b"]" * 100_000),
    None, 12345,
], ids=["empty", "padding only", "not base64", "one character", "padded", "too long",
        "non-ASCII", "space", "newline", "too short", "no payload", "padded with tag size",
        "payload not JSON", "payload not UTF-8", "payload a list", "payload missing fields",
        "unknown version", "empty id", "string time", "float time", "bool time", "int id",
        "time out of range", "extra field", "deeply nested JSON", "None", "an int"])
def test_garbage_tokens_are_invalid_never_another_error(text):
    invalid(lambda: decode(text), "INVALID_PAGE_TOKEN")


def test_a_token_with_an_invalid_filter_reports_the_filter():
    issued = token()
    invalid(lambda: decode(issued, filter_text="done = maybe"), "INVALID_FILTER")


@pytest.mark.parametrize("cursor", [
    {"createTime": datetime(2026, 1, 1), "id": "x"},
    {"createTime": "2026-01-01T00:00:00Z", "id": "x"},
    {"createTime": T0, "id": ""},
], ids=["naive datetime", "string time", "empty id"])
def test_encoding_a_bad_cursor_is_a_programming_error(cursor):
    with pytest.raises(ValueError):
        token(cursor)


def test_a_short_key_is_refused():
    with pytest.raises(ValueError):
        token(key=b"short")


def test_the_payload_is_keyset_not_an_offset():
    raw = base64.urlsafe_b64decode(token() + "==")[:-32]
    assert json.loads(raw) == {"id": CURSOR["id"], "t": 1767270615123456, "v": 1}


# --- page size ----------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "size"), [
    (None, 50), ("", 50), ("0", 50), ("-0", 50), ("000", 50), ("1", 1), ("50", 50),
    ("999", 999), ("1000", 1000), ("1001", 1000), ("0999", 999), ("99999", 1000),
    ("9" * 5000, 1000),
], ids=["absent", "empty", "zero", "minus zero", "zeros", "one", "fifty", "999", "1000",
        "1001 is capped", "leading zero", "large is capped", "5000 digits is capped"])
def test_page_size(raw, size):
    assert pagination.page_size(raw) == size


@pytest.mark.parametrize("raw", ["-1", "-1000", "abc", "1.5", " 5", "5 ", "+5", "1e3", "\u0665",
                                 "0x10", "-", "-" + "9" * 5000],
                         ids=["minus one", "minus 1000", "word", "decimal", "leading space",
                              "trailing space", "plus sign", "exponent", "Arabic digit", "hex",
                              "lone minus", "huge negative"])
def test_a_negative_or_non_integer_page_size_is_invalid(raw):
    invalid(lambda: pagination.page_size(raw), "INVALID_PAGE_SIZE")
