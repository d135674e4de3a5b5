"""Properties of the parsers that face the caller first: resource names and routes, the
AIP-160 filter, AIP-158 page tokens and the bearer header.

Each parser either returns its value or raises the one documented api-core exception
(a 4xx); no input makes it raise anything else. The oracles here are written from the
contract (README.md, docs/architecture.md, openapi.yaml), not copied from lib/.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.api_core import exceptions
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from lib import errors, listing, model, pagination
from lib.auth import bearer_token
from lib.routes import DEFAULT_SURFACES, RouteMatch, RouteTable

# Small enough for `make test` (the file runs in a few seconds); PROPERTY_EXAMPLES
# raises it for a soak. database=None: no example database written into the repository
# (Hypothesis still caches constants in .hypothesis/, which it git-ignores itself).
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "120"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(PROPERTY, max_examples=max(1, EXAMPLES // 2))

TABLE = RouteTable.from_surfaces(DEFAULT_SURFACES)
ROUTE_ERRORS = (exceptions.InvalidArgument, exceptions.NotFound, exceptions.MethodNotAllowed)
METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]

# The naming rule as openapi.yaml states it: a segment holds letters, digits and -._~,
# is never "." or "..", and a whole name is at most 512 characters.
UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_VALID_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


def is_valid_name(name: str) -> bool:
    return 0 < len(name) <= 512 and all(
        _VALID_SEGMENT.fullmatch(s) and s not in (".", "..") for s in name.split("/"))


segments = st.text(alphabet=UNRESERVED, min_size=1, max_size=40).filter(
    lambda s: s not in (".", ".."))


# --- names: model.check_name ----------------------------------------------------------


@PROPERTY
@given(st.text())
@example("a/../b")
@example("operations/" + "a" * 501)
@example("operations/" + "a" * 502)
def test_check_name_returns_the_name_or_raises_invalid_name_and_nothing_else(text):
    try:
        checked = model.check_name(text)
    except model.InvalidName:
        assert not is_valid_name(text)
    else:
        assert checked == text and is_valid_name(text)


@PROPERTY
@given(st.lists(segments, min_size=1, max_size=12))
def test_a_name_of_unreserved_segments_is_valid_up_to_512_characters(parts):
    name = "/".join(parts)
    if len(name) <= 512:
        assert model.check_name(name) == name
    else:
        with pytest.raises(model.InvalidName):
            model.check_name(name)


# --- routes: RouteTable.match ---------------------------------------------------------


def _shape(route) -> tuple[str, list[str], str]:
    """(prefix, variable pattern segments, suffix) of an AIP-127 template."""
    match = re.fullmatch(r"([^{}]*)\{\w+=([^}]+)\}([^{}]*)", route.template)
    assert match, route.template
    return match[1], match[2].split("/"), match[3]


# Routes that bind a name (POST /v1/jobs is a fixed path: tests/unit/test_routes.py).
ROUTES = {f"{r.method} {r.template}": r for r in TABLE.routes if r.variable is not None}


def _served_methods(template: str) -> set[str]:
    return {r.method for r in TABLE.routes if r.template == template}


@st.composite
def encoded_segment(draw, raw: bytes | None = None) -> tuple[bytes, str]:
    """A segment as bytes and its raw-path spelling: every byte percent-encoded, or
    an unreserved ASCII byte left as is (upper or lower case hex)."""
    if raw is None:
        raw = draw(st.one_of(segments.map(str.encode), st.binary(min_size=0, max_size=12)))
    out = []
    for byte in raw:
        char = chr(byte)
        if byte < 128 and char in UNRESERVED and draw(st.booleans()):
            out.append(char)
        else:
            escape = f"%{byte:02X}"
            out.append(escape.lower() if draw(st.booleans()) else escape)
    return raw, "".join(out)


@st.composite
def templated_paths(draw):
    """A route, the raw path of a name in its template's shape, and that name's
    segments as bytes (any bytes, percent-encoded: the path structure is intact)."""
    route = ROUTES[draw(st.sampled_from(sorted(ROUTES)))]
    prefix, pattern, suffix = _shape(route)
    raw_parts, path_parts = [], []
    for piece in pattern:
        count = draw(st.integers(1, 4)) if piece == "**" else 1
        for _ in range(count):
            if piece in ("*", "**"):
                raw, spelled = draw(encoded_segment())
            else:
                raw, spelled = piece.encode(), piece
            raw_parts.append(raw)
            path_parts.append(spelled)
    return route, prefix + "/".join(path_parts) + suffix, raw_parts


@PROPERTY
@given(templated_paths())
def test_a_path_in_a_template_shape_matches_its_route_or_is_400_for_a_bad_name(case):
    route, path, raw_parts = case
    try:
        name = "/".join(part.decode("utf-8") for part in raw_parts)
    except UnicodeDecodeError:
        name = None
    try:
        found = TABLE.match(route.method, path)
    except exceptions.InvalidArgument as caught:
        assert name is None or not is_valid_name(name), (path, caught.message)
        assert caught.reason == "INVALID_NAME"
    else:
        assert name is not None and is_valid_name(name), path
        assert (found.route.method, found.route.template, found.name) == (
            route.method, route.template, name)


@PROPERTY
@given(st.sampled_from(sorted(ROUTES)), st.data())
def test_valid_names_round_trip_through_the_path_however_they_are_encoded(key, data):
    route = ROUTES[key]
    prefix, pattern, suffix = _shape(route)
    parts: list[tuple[str, bool]] = []  # (segment, is it a wildcard's)
    for piece in pattern:
        count = data.draw(st.integers(1, 5)) if piece == "**" else 1
        parts += [(data.draw(segments), True) if piece in ("*", "**") else (piece, False)
                  for _ in range(count)]
    name = "/".join(segment for segment, _ in parts)
    assume(len(name) <= 512)
    spelled = [data.draw(encoded_segment(segment.encode()))[1] if wildcard else segment
               for segment, wildcard in parts]
    found = TABLE.match(route.method, prefix + "/".join(spelled) + suffix)
    assert found.name == name and model.check_name(found.name) == name
    assert found.route.template == route.template


@QUICK
@given(templated_paths(), st.sampled_from(METHODS))
def test_another_method_on_a_known_path_is_405_naming_the_served_methods(case, method):
    route, path, _ = case
    served = _served_methods(route.template)
    try:
        found = TABLE.match(method, path)
    except exceptions.MethodNotAllowed as caught:
        assert method not in served
        assert set(caught.metadata["allowed"].split(", ")) == served
    except exceptions.InvalidArgument:
        assert method in served  # the name is checked only once a route is chosen
    else:
        assert method in served and found.route.method == method


# Raw paths from the pieces that matter to the router: versions, collection words,
# separators, escapes (good, bad, encoded '/', '.', NUL), custom verbs and a query.
PATH_PIECES = ["/", "/", "/", "v1", "v3beta1", "v2", "operations", "projects", "locations",
               "jobs", "p", "l", "x", ".", "..", "%2E%2E", "%2F", "%2f", "%00", "%FF", "%C3%A9",
               "%", "%z", ":cancel", ":wait", ":", "?", "?pageSize=1", "#", " ", "\x00", "é",
               "~", "-", "_", "//", "\\"]


@PROPERTY
@given(st.sampled_from(METHODS),
       st.one_of(st.text(), st.lists(st.sampled_from(PATH_PIECES), max_size=14).map("".join),
                 st.lists(st.sampled_from(PATH_PIECES), max_size=10).map(
                     lambda pieces: "/v1/" + "".join(pieces))))
@example("GET", "/v1/operations/%2E%2E")
@example("GET", "/v1/operations/a%2Fb")
@example("POST", "/v1/projects/p/locations/l/jobs?x=%2F")
@example("GET", "/v1/operations/" + "%" * 3)
def test_any_raw_path_is_a_match_or_a_documented_4xx_never_another_error(method, path):
    try:
        found = TABLE.match(method, path)
    except ROUTE_ERRORS as caught:
        assert 400 <= caught.code < 500
        assert caught.reason  # every error carries an ErrorInfo reason
        assert errors.error_body(caught)["error"]["code"] == caught.code
    else:
        assert isinstance(found, RouteMatch)
        assert found.route.method == method
        assert is_valid_name(found.name)


# --- the filter: listing.parse_filter -------------------------------------------------

_FIELD_TYPES = {"done": "bool", "error.code": "int", "metadata.kind": "str",
                "metadata.verb": "str", "metadata.target": "str",
                "metadata.createTime": "time"}
_OPS = {"bool": ["=", "!="], "str": ["=", "!="],
        "int": ["=", "!=", "<", "<=", ">", ">="], "time": ["=", "!=", "<", "<=", ">", ">="]}
# What a filter may hold: no C0/C1 control characters other than tab, CR and LF.
_FILTER_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_string_chars = st.characters(codec="utf-8").filter(
    lambda c: c != "*" and not _FILTER_CONTROL.match(c))
_VALUES = {
    "bool": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "str": st.text(_string_chars, max_size=12),
    "time": st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),
                         timezones=st.just(UTC)),
}


@st.composite
def restrictions(draw):
    field = draw(st.sampled_from(sorted(_FIELD_TYPES)))
    kind = _FIELD_TYPES[field]
    return listing.Restriction(field, draw(st.sampled_from(_OPS[kind])),
                               draw(_VALUES[kind]))


def _flat(kind, parts):
    flat = []
    for part in parts:
        flat.extend(part.operands if isinstance(part, kind) else (part,))
    return kind(tuple(flat))


filter_trees = st.recursive(
    restrictions(),
    lambda children: st.one_of(
        children.map(listing.Not),
        st.lists(children, min_size=2, max_size=3).map(lambda p: _flat(listing.And, p)),
        st.lists(children, min_size=2, max_size=3).map(lambda p: _flat(listing.Or, p)),
    ),
    max_leaves=8,
)


@st.composite
def spellings(draw, node, depth=0):
    """One of the many texts of ``node``: any whitespace, quote style, escapes, NOT or
    '-', bare or quoted values, timestamp offsets, redundant parentheses."""
    ws = st.text(alphabet=" \t\r\n", max_size=2)
    ws1 = st.text(alphabet=" \t\r\n", min_size=1, max_size=2)
    if isinstance(node, listing.Restriction):
        text = f"{node.field}{draw(ws)}{node.op}{draw(ws)}{draw(_spell_value(node))}"
    elif isinstance(node, listing.Not):
        inner = draw(spellings(node.operand, depth + 1))
        if not isinstance(node.operand, listing.Restriction):
            inner = f"({draw(ws)}{inner}{draw(ws)})"
        text = (f"NOT{draw(ws1)}{inner}" if draw(st.booleans())
                else f"-{draw(ws)}{inner}")
    else:
        keyword = "AND" if isinstance(node, listing.And) else "OR"
        texts = []
        for operand in node.operands:
            inner = draw(spellings(operand, depth + 1))
            if isinstance(node, listing.Or) and isinstance(operand, listing.And):
                inner = f"({inner})"  # needed: OR binds tighter than AND
            texts.append(inner)
        text = "".join(t if i == 0 else f"{draw(ws1)}{keyword}{draw(ws1)}{t}"
                       for i, t in enumerate(texts))
    if depth < 8 and draw(st.integers(0, 5)) == 0:
        text = f"({draw(ws)}{text}{draw(ws)})"
    return text


@st.composite
def _spell_value(draw, node):
    value = node.value
    kind = _FIELD_TYPES[node.field]
    if kind == "bool":
        return "true" if value else "false"
    if kind == "int":
        digits = str(abs(value)).rjust(draw(st.integers(1, 10)), "0")
        return ("-" if value < 0 else "") + digits
    if kind == "time":
        offset = timedelta(minutes=draw(st.integers(-23 * 60 - 59, 23 * 60 + 59)))
        local = value + offset
        extra = draw(st.sampled_from(["", "0", "123"]))  # nanoseconds are truncated
        fraction = f".{local.microsecond:06d}{extra}" if (value.microsecond or extra) else ""
        if offset or draw(st.booleans()):
            sign = "-" if offset < timedelta(0) else "+"
            minutes = abs(int(offset.total_seconds())) // 60
            zone = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
        else:
            zone = draw(st.sampled_from(["Z", "z"]))
        stamp = (f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
                 f"{draw(st.sampled_from(['T', 't']))}"
                 f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}{fraction}{zone}")
        return f'"{stamp}"' if draw(st.booleans()) else stamp
    if (re.fullmatch(r"[A-Za-z0-9_.~/-]+", value) and value not in ("AND", "OR", "NOT")
            and draw(st.booleans())):
        return value
    quote = draw(st.sampled_from(['"', "'"]))
    out = []
    for char in value:
        if char in ("\\", quote):
            out.append("\\" + char)
        elif char in "\n\t\r" and draw(st.booleans()):
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[char])
        elif char in "\"'" and draw(st.booleans()):
            out.append("\\" + char)
        else:
            out.append(char)
    return quote + "".join(out) + quote


@QUICK
@given(filter_trees, st.data())
def test_every_spelling_of_a_filter_parses_to_it_and_its_canonical_form_too(tree, data):
    text = data.draw(spellings(tree))
    assume(len(text) <= listing.MAX_FILTER_LENGTH)
    parsed = listing.parse_filter(text)
    assert parsed.root == tree, text
    canonical = parsed.canonical
    assert listing.parse_filter(canonical) == parsed, canonical
    assert listing.parse_filter(canonical).canonical == canonical
    assert listing.normalize_filter(text) == canonical


FILTER_PIECES = ["done", "error.code", "metadata.kind", "metadata.verb", "metadata.target",
                 "metadata.createTime", "metadata", "=", "!=", "<", "<=", ">", ">=", ":",
                 "AND", "OR", "NOT", "and", "-", "(", ")", "((((((((", "))))))))", "true",
                 "false", "0", "-1", "2147483648", "99999999999", '"x"', "'y'", '"', "'",
                 "\\", '"\\q"', "*", '"a*"', '"2026-01-01T00:00:00Z"', "2026-02-30T00:00:00Z",
                 "2026-01-01T00:00:00+24:00", "9999-12-31T23:59:59-23:59",
                 "0001-01-01T00:00:00+01:00", " ", "\t", "\n", "\x00", "\x7f", "\x85", "é",
                 "\u2028", ",", "~", "NaN"]


@PROPERTY
@given(st.one_of(st.text(), st.lists(st.sampled_from(FILTER_PIECES), max_size=20).map(" ".join),
                 st.lists(st.sampled_from(FILTER_PIECES), max_size=20).map("".join)))
@example("(" * 33 + "done = true" + ")" * 33)
@example("NOT " * 2000)
@example("metadata.createTime > 0001-01-01T00:00:00+01:00")
@example("metadata.createTime < 9999-12-31T23:59:59-23:59")
def test_any_text_is_a_filter_or_invalid_argument_at_a_position_never_another_error(text):
    try:
        parsed = listing.parse_filter(text)
    except exceptions.InvalidArgument as caught:
        assert caught.code == 400 and caught.reason == "INVALID_FILTER"
        assert 0 <= int(caught.metadata["position"]) <= len(text)
    else:
        canonical = parsed.canonical
        assert listing.parse_filter(canonical) == parsed, (text, canonical)
        assert listing.parse_filter(canonical).canonical == canonical


# --- page tokens: pagination.encode_page_token / decode_page_token ----------------------

KEY = b"k" * 32
PARENT = "projects/p/locations/l"

# Cursor ids are document ids of operation names (projects/P/locations/L/operations/ID,
# as jobs.create makes them), plus any short text: the codec does not care what an id is.
operation_ids = st.tuples(segments, segments, st.text(alphabet="0123456789abcdef",
                                                      min_size=32, max_size=32)).map(
    lambda p: model.document_id(f"projects/{p[0]}/locations/{p[1]}/operations/{p[2]}"))
cursor_ids = st.one_of(operation_ids,
                       st.text(st.characters(exclude_categories=("Cs",)), min_size=1,
                               max_size=60))
cursors = st.fixed_dictionaries({
    "createTime": st.datetimes(
        min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                   timezone(-timedelta(hours=8))])),
    "id": cursor_ids,
})
filters = st.sampled_from(["", "done = true", "metadata.kind = demo.countdown",
                           "error.code != 0 AND NOT done = false"])


@PROPERTY
@given(cursors, filters)
def test_decode_of_encode_is_the_cursor(cursor, filter_text):
    token = pagination.encode_page_token(cursor, parent=PARENT, filter_text=filter_text, key=KEY)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token) and len(token) <= 1024
    assert pagination.decode_page_token(token, parent=PARENT, filter_text=filter_text,
                                     key=KEY) == cursor


@st.composite
def mutations(draw, token: str) -> str:
    """``token`` with one edit: a character changed, inserted or removed, a cut, a suffix."""
    kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "append"]))
    at = draw(st.integers(0, len(token) - 1))
    char = draw(st.one_of(st.sampled_from("ABCabc019-_=+/.%"), st.characters()))
    if kind == "replace":
        return token[:at] + char + token[at + 1:]
    if kind == "insert":
        return token[:at] + char + token[at:]
    if kind == "delete":
        return token[:at] + token[at + 1:]
    if kind == "truncate":
        return token[:at]
    return token + draw(st.text(min_size=1, max_size=8))


@PROPERTY
@given(cursors, filters, st.data())
def test_any_altered_token_is_invalid_argument(cursor, filter_text, data):
    token = pagination.encode_page_token(cursor, parent=PARENT, filter_text=filter_text, key=KEY)
    altered = data.draw(mutations(token))
    assume(altered != token)
    with pytest.raises(exceptions.InvalidArgument) as caught:
        pagination.decode_page_token(altered, parent=PARENT, filter_text=filter_text, key=KEY)
    assert caught.value.reason == "INVALID_PAGE_TOKEN"


@QUICK
@given(cursors, st.text(max_size=40), st.text(max_size=40))
def test_a_token_for_another_parent_or_filter_is_invalid_argument(cursor, parent, filter_text):
    token = pagination.encode_page_token(cursor, parent=PARENT, filter_text="", key=KEY)
    same_filter = filter_text.strip(" \t\r\n") == ""
    assume(parent != PARENT or not same_filter)
    with pytest.raises(exceptions.InvalidArgument):
        pagination.decode_page_token(token, parent=parent, filter_text=filter_text, key=KEY)


@PROPERTY
@given(st.one_of(st.text(), st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                  "0123456789-_", min_size=1, max_size=200)))
@example("")
@example("A" * 1025)
def test_any_text_as_a_token_is_invalid_argument_never_another_error(text):
    with pytest.raises(exceptions.InvalidArgument) as caught:
        pagination.decode_page_token(text, parent=PARENT, filter_text="", key=KEY)
    assert caught.value.reason == "INVALID_PAGE_TOKEN"


# --- the bearer header: auth.bearer_token ---------------------------------------------

MAX_TOKEN = 64
B64TOKEN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
header_names = st.sampled_from(["Authorization", "authorization", "AUTHORIZATION",
                                "X-Forwarded-Authorization", "x-forwarded-authorization",
                                "Accept", "X-Authorization"])
b64tokens = st.builds(lambda body, pad: body + "=" * pad,
                      st.text(alphabet=B64TOKEN, min_size=1, max_size=MAX_TOKEN + 4),
                      st.integers(0, 2))
# A header value on the wire holds no CR or LF (werkzeug refuses them, as HTTP does).
header_values = st.one_of(
    st.text(st.characters(exclude_characters="\r\n"), max_size=80),
    st.builds(lambda scheme, sep, token, tail: scheme + sep + token + tail,
              st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Bearer,",
                               "Token", ""]),
              st.sampled_from([" ", "  ", "\t", "", ",", " , "]),
              b64tokens, st.sampled_from(["", " ", ", Bearer x", " extra", "\x00", '"'])),
)


@PROPERTY
@given(st.lists(st.tuples(header_names, header_values), max_size=4), st.booleans())
def test_any_headers_give_a_token_or_unauthenticated_never_another_error(pairs, trust):
    headers = Headers()
    for name, value in pairs:
        headers.add(name, value)
    forwarded = [v for n, v in pairs if n.lower() == "x-forwarded-authorization"]
    plain = [v for n, v in pairs if n.lower() == "authorization"]
    relevant = forwarded if trust and forwarded else plain
    try:
        token = bearer_token(headers, trust_forwarded=trust, max_length=MAX_TOKEN)
    except exceptions.Unauthenticated as caught:
        missing = caught.reason == errors.CREDENTIALS_MISSING
        assert missing == (not relevant)
        if not missing:
            assert caught.reason == errors.ACCESS_TOKEN_INVALID
        message = errors.error_body(caught)["error"]["message"]
        for value in relevant:  # never the token in an answer
            parts = value.split()
            assert len(parts) < 2 or len(parts[1]) < 8 or parts[1] not in message
    else:
        assert len(relevant) == 1
        scheme, sent = relevant[0].split()
        assert scheme.lower() == "bearer" and sent == token
        assert re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", token) and len(token) <= MAX_TOKEN


@PROPERTY
@given(st.sampled_from(["Bearer", "bearer", "BEARER", "BeArEr"]),
       st.text(alphabet=" \t", min_size=1, max_size=3), b64tokens,
       st.text(alphabet=" \t", max_size=2), st.booleans())
def test_one_bearer_header_with_a_b64token_gives_that_token(scheme, sep, token, tail, trust):
    headers = Headers()
    headers.add("X-Forwarded-Authorization" if trust else "Authorization",
                f"{scheme}{sep}{token}{tail}")
    if len(token) <= MAX_TOKEN:
        assert bearer_token(headers, trust_forwarded=trust, max_length=MAX_TOKEN) == token
    else:
        with pytest.raises(exceptions.Unauthenticated) as caught:
            bearer_token(headers, trust_forwarded=trust, max_length=MAX_TOKEN)
        assert caught.value.reason == errors.ACCESS_TOKEN_INVALID
