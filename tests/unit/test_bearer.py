"""bearer_token: what a request's Authorization headers yield, or the 401 they get."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from werkzeug.datastructures import EnvironHeaders, Headers

from lib.core import errors
from lib.edge.auth import bearer_token

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
MAX = 4096


def headers(*pairs: tuple[str, str]) -> Headers:
    result = Headers()
    for name, value in pairs:
        result.add(name, value)
    return result


ACCEPTED = {
    "Bearer and a token": ([("Authorization", f"Bearer {TOKEN}")], False, TOKEN),
    "lowercase bearer": ([("Authorization", f"bearer {TOKEN}")], False, TOKEN),
    "uppercase BEARER": ([("Authorization", f"BEARER {TOKEN}")], False, TOKEN),
    "an opaque Google token": ([("Authorization", "Bearer ya29.c.a0Af_x-y~z+/==")], False,
                               "ya29.c.a0Af_x-y~z+/=="),
    "a token exactly at the length cap": ([("Authorization", "Bearer " + "a" * MAX)], False,
                                          "a" * MAX),
    "the forwarded header ignored when trust is off": (
        [("Authorization", f"Bearer {TOKEN}"), ("X-Forwarded-Authorization", "Bearer other")],
        False, TOKEN),
    "the forwarded header preferred when trust is on": (
        [("Authorization", "Bearer gateway-token"), ("X-Forwarded-Authorization",
                                                     f"Bearer {TOKEN}")], True, TOKEN),
    "Authorization used when trust is on and nothing is forwarded": (
        [("Authorization", f"Bearer {TOKEN}")], True, TOKEN),
}


@pytest.mark.parametrize(("pairs", "trust", "expected"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_bearer_token_is_returned(pairs: list[tuple[str, str]], trust: bool,
                                  expected: str) -> None:
    assert bearer_token(headers(*pairs), trust_forwarded=trust, max_length=MAX) == expected


REFUSED = {
    "no header": ([], False, errors.CREDENTIALS_MISSING),
    "only a forwarded header when trust is off": (
        [("X-Forwarded-Authorization", f"Bearer {TOKEN}")], False, errors.CREDENTIALS_MISSING),
    "the Basic scheme": ([("Authorization", "Basic dXNlcjpwYXNz")], False,
                         errors.ACCESS_TOKEN_INVALID),
    "a token with no scheme": ([("Authorization", TOKEN)], False, errors.ACCESS_TOKEN_INVALID),
    "Bearer and no token": ([("Authorization", "Bearer")], False, errors.ACCESS_TOKEN_INVALID),
    "Bearer and blanks": ([("Authorization", "Bearer   ")], False, errors.ACCESS_TOKEN_INVALID),
    "an empty header": ([("Authorization", "")], False, errors.ACCESS_TOKEN_INVALID),
    "two Authorization headers": ([("Authorization", f"Bearer {TOKEN}"),
                                   ("Authorization", f"Bearer {TOKEN}")], False,
                                  errors.ACCESS_TOKEN_INVALID),
    "two headers joined with a comma (gunicorn)": (
        [("Authorization", f"Bearer {TOKEN}, Bearer {TOKEN}")], False,
        errors.ACCESS_TOKEN_INVALID),
    "two tokens after Bearer": ([("Authorization", f"Bearer {TOKEN} {TOKEN}")], False,
                                errors.ACCESS_TOKEN_INVALID),
    "a character outside RFC 6750's b64token": ([("Authorization", "Bearer ab\"cd")], False,
                                                errors.ACCESS_TOKEN_INVALID),
    "one character over the length cap": ([("Authorization", "Bearer " + "a" * (MAX + 1))],
                                          False, errors.ACCESS_TOKEN_INVALID),
    "a megabyte header": ([("Authorization", "Bearer " + "a" * 1_000_000)], False,
                          errors.ACCESS_TOKEN_INVALID),
    "two forwarded headers when trust is on": (
        [("X-Forwarded-Authorization", f"Bearer {TOKEN}"),
         ("X-Forwarded-Authorization", f"Bearer {TOKEN}")], True, errors.ACCESS_TOKEN_INVALID),
    "a bad forwarded header when trust is on, even with a good Authorization": (
        [("Authorization", f"Bearer {TOKEN}"), ("X-Forwarded-Authorization", "Basic xyz")], True,
        errors.ACCESS_TOKEN_INVALID),
}


@pytest.mark.parametrize(("pairs", "trust", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_bad_authorization_is_401_with_a_reason(pairs: list[tuple[str, str]], trust: bool,
                                                reason: str) -> None:
    with pytest.raises(exceptions.Unauthenticated) as caught:
        bearer_token(headers(*pairs), trust_forwarded=trust, max_length=MAX)
    assert caught.value.reason == reason
    assert TOKEN not in str(caught.value)


def test_bearer_token_reads_a_wsgi_environ() -> None:
    environ = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}",
               "HTTP_X_FORWARDED_AUTHORIZATION": "Bearer forwarded"}
    assert bearer_token(EnvironHeaders(environ), trust_forwarded=False, max_length=MAX) == TOKEN
    assert bearer_token(EnvironHeaders(environ), trust_forwarded=True,
                        max_length=MAX) == "forwarded"
