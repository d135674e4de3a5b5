"""Google's system parameters: the query parameters and headers every method
takes, and the ``fields`` partial-response mask (``a,b/c,items(d,e)``)."""

from __future__ import annotations

import json
import os

import pytest
from google.api_core import exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from lib import sysparams
from lib.sysparams import apply_mask, parse_mask

EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "120"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
LIST_PARAMS = frozenset({"filter", "pageSize", "pageToken", "returnPartialSuccess"})


def parse(query: dict[str, str | list[str]] | None = None, headers: dict[str, str] | None = None,
          method_params: frozenset[str] = frozenset()):
    pairs = [(k, v if isinstance(v, list) else [v]) for k, v in (query or {}).items()]
    return sysparams.parse(pairs, Headers(headers or {}), method_params)


def reason_of(exc_info) -> str:
    return exc_info.value.reason


# --- the mask parser --------------------------------------------------------------------


MASKS = {
    "one field": ("name", {"name": None}),
    "two fields": ("name,done", {"name": None, "done": None}),
    "a path": ("metadata/value", {"metadata": {"value": None}}),
    "a sub-selection": ("operations(name,done)", {"operations": {"name": None, "done": None}}),
    "the issue's example": ("a,b/c,items(d,e)",
                            {"a": None, "b": {"c": None}, "items": {"d": None, "e": None}}),
    "nested sub-selections": ("a(b(c,d),e/f)",
                              {"a": {"b": {"c": None, "d": None}, "e": {"f": None}}}),
    "a path into a sub-selection": ("a/b(c)", {"a": {"b": {"c": None}}}),
    "whole wins over a part": ("a/b,a", {"a": None}),
    "parts merge": ("a/b,a/c", {"a": {"b": None, "c": None}}),
    "a wildcard": ("operations/*", {"operations": {"*": None}}),
    "an @type": ("metadata/@type", {"metadata": {"@type": None}}),
    "empty is everything": ("", None),
}


@pytest.mark.parametrize(("text", "mask"), MASKS.values(), ids=MASKS.keys())
def test_a_mask_parses_to_its_tree(text, mask):
    assert parse_mask(text) == mask


MALFORMED = {
    "an empty selection": "a,,b",
    "a leading comma": ",a",
    "a trailing comma": "a,",
    "a trailing slash": "a/",
    "a leading slash": "/a",
    "an empty sub-selection": "a()",
    "an unclosed parenthesis": "a(b",
    "a stray closing parenthesis": "a)",
    "parentheses without a field": "(a)",
    "a space": "a, b",
    "a character outside names": "a;b",
    "a field after a sub-selection": "a(b)c",
    "a path after a sub-selection": "a(b)/c",
    "too deep": "a(" * 20 + "b" + ")" * 20,
    "too long": "a," * 3000 + "a",
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_mask_is_invalid_argument(text):
    with pytest.raises(exceptions.InvalidArgument) as caught:
        parse_mask(text)
    assert reason_of(caught) == "INVALID_FIELD_MASK"


# --- applying a mask --------------------------------------------------------------------


PAGE = {
    "operations": [
        {"name": "operations/a", "done": True, "metadata": {"@type": "t", "value": {"x": 1}}},
        {"name": "operations/b", "metadata": {"@type": "t", "value": {"x": 2}}},
    ],
    "nextPageToken": "tok",
}


def test_a_list_page_keeps_only_the_selected_fields_of_each_operation():
    masked = apply_mask(PAGE, parse_mask("nextPageToken,operations(name,done)"))
    assert masked == {"operations": [{"name": "operations/a", "done": True},
                                     {"name": "operations/b"}],
                      "nextPageToken": "tok"}


def test_a_path_reaches_into_objects_inside_lists():
    assert apply_mask(PAGE, parse_mask("operations/metadata/value/x")) == {
        "operations": [{"metadata": {"value": {"x": 1}}}, {"metadata": {"value": {"x": 2}}}]}


def test_a_wildcard_keeps_every_field_and_masks_within_it():
    assert apply_mask({"a": {"x": 1, "y": 2}, "b": {"x": 3}}, parse_mask("*/x")) == {
        "a": {"x": 1}, "b": {"x": 3}}


def test_fields_that_are_absent_are_left_out_and_scalars_kept():
    assert apply_mask({"name": "n"}, parse_mask("name/deeper,error")) == {"name": "n"}
    assert apply_mask({}, parse_mask("x")) == {}


# --- the parameters ---------------------------------------------------------------------


def test_no_parameters_means_compact_whole_answers():
    params, own = parse()
    assert own == {}
    assert params.render(200, {"a": [1, 2]}) == '{"a":[1,2]}'


def test_pretty_print_indents_and_fields_masks_success_only():
    params, _ = parse({"prettyPrint": "true", "fields": "a"})
    assert json.loads(params.render(200, {"a": 1, "b": 2})) == {"a": 1}
    assert params.render(200, {"a": 1}).startswith("{\n  ")
    error = {"error": {"code": 404}}
    assert json.loads(params.render(404, error)) == error


ACCEPTED = {
    "alt=json": {"alt": "json"},
    "$alt=json": {"$alt": "json"},
    "alt=JSON": {"alt": "JSON"},
    "$alt=json;enum-encoding=int, as generated REST clients send": {
        "$alt": "json;enum-encoding=int"},
    "$.xgafv=1": {"$.xgafv": "1"},
    "$.xgafv=2": {"$.xgafv": "2"},
    "prettyPrint=false": {"prettyPrint": "false"},
    "$prettyPrint=True": {"$prettyPrint": "True"},
    "quotaUser": {"quotaUser": "someone"},
    "$fields": {"$fields": "name"},
    "$requestReason": {"$requestReason": "why"},
    "two spellings that agree": {"alt": "json", "$alt": "json"},
}


@pytest.mark.parametrize("query", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_each_system_parameter_is_accepted_on_any_method(query):
    parse(query)


REFUSED = {
    "alt=media": ({"alt": "media"}, "INVALID_SYSTEM_PARAMETER"),
    "alt=proto": ({"$alt": "proto"}, "INVALID_SYSTEM_PARAMETER"),
    "alt=json with an unknown option": ({"alt": "json;x=y"}, "INVALID_SYSTEM_PARAMETER"),
    "$.xgafv=3": ({"$.xgafv": "3"}, "INVALID_SYSTEM_PARAMETER"),
    "prettyPrint=yes": ({"prettyPrint": "yes"}, "INVALID_SYSTEM_PARAMETER"),
    "prettyPrint=1": ({"prettyPrint": "1"}, "INVALID_SYSTEM_PARAMETER"),
    "a malformed fields": ({"fields": "a(("}, "INVALID_FIELD_MASK"),
    "an unknown parameter": ({"colour": "red"}, "UNKNOWN_QUERY_PARAMETER"),
    "a List parameter elsewhere": ({"pageSize": "3"}, "UNKNOWN_QUERY_PARAMETER"),
    "a parameter twice": ({"alt": ["json", "json"]}, "REPEATED_QUERY_PARAMETER"),
    "two spellings that disagree": ({"fields": "a", "$fields": "b"},
                                    "REPEATED_QUERY_PARAMETER"),
    "an API key (not served)": ({"key": "k"}, "UNKNOWN_QUERY_PARAMETER"),
}


@pytest.mark.parametrize(("query", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_a_bad_or_unknown_parameter_is_invalid_argument(query, reason):
    with pytest.raises(exceptions.InvalidArgument) as caught:
        parse(query)
    assert reason_of(caught) == reason


def test_the_methods_own_parameters_are_returned_apart():
    params, own = parse({"pageSize": "3", "fields": "operations(name)"},
                        method_params=LIST_PARAMS)
    assert own == {"pageSize": "3"}
    assert params.fields == {"operations": {"name": None}}


def test_the_field_mask_header_works_like_the_parameter_and_must_agree():
    params, _ = parse(headers={"X-Goog-FieldMask": "name"})
    assert params.fields == {"name": None}
    with pytest.raises(exceptions.InvalidArgument):
        parse({"fields": "done"}, headers={"X-Goog-FieldMask": "name"})


def test_the_logged_headers_and_quota_user_are_kept_for_the_log_line():
    params, _ = parse({"quotaUser": "q"}, headers={
        "X-Goog-Api-Client": "gl-python/3.12 gdcl/2.0", "X-Goog-User-Project": "billing-1",
        "X-Goog-Request-Reason": "audit"})
    assert params.log_fields == {"quotaUser": "q", "apiClient": "gl-python/3.12 gdcl/2.0",
                                 "userProject": "billing-1", "requestReason": "audit"}
    assert params.reason == "audit"
    long, _ = parse(headers={"X-Goog-Api-Client": "x" * 1000})
    assert len(long.log_fields["apiClient"]) == sysparams.MAX_LOGGED_LENGTH


# --- properties -------------------------------------------------------------------------


MASK_ALPHABET = "ab_@$.-*,/() \x00é"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["a", "b", "c", "@type"]), inner, max_size=3),
    max_leaves=10)


@PROPERTY
@given(st.text(alphabet=MASK_ALPHABET, max_size=40))
def test_any_text_is_a_mask_or_invalid_argument_and_nothing_else(text):
    try:
        parse_mask(text)
    except exceptions.InvalidArgument as exc:
        assert exc.reason == "INVALID_FIELD_MASK"


def _within(masked, whole) -> bool:
    """``masked`` keeps only what ``whole`` holds, in place."""
    if isinstance(masked, dict):
        return isinstance(whole, dict) and all(
            key in whole and _within(value, whole[key]) for key, value in masked.items())
    if isinstance(masked, list):
        return isinstance(whole, list) and len(masked) == len(whole) and all(
            _within(m, w) for m, w in zip(masked, whole, strict=True))
    return masked == whole


@PROPERTY
@given(json_values, st.text(alphabet="abc@type*,/()", max_size=20))
def test_a_mask_only_ever_removes_fields(value, text):
    try:
        mask = parse_mask(text)
    except exceptions.InvalidArgument:
        return
    masked = apply_mask(value, mask)
    assert _within(masked, value)
    assert apply_mask(masked, mask) == masked  # masking twice changes nothing more
