"""Authentication, scopes and permissions over HTTP, on both surfaces.

Requests go out through http.client (``raw_request``) so that headers are sent
exactly as written, repeats included. Every Authorization value sent here is
remembered; the last test checks that none of them reached a log or a body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from google.auth import crypt, jwt
from google.longrunning import operations_pb2
from google.protobuf import json_format
from test_http_errors import assert_error, raw_request

from lib.core import model
from lib.tools import devtoken

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
CLOUD_READ_ONLY = "https://www.googleapis.com/auth/cloud-platform.read-only"
DIALOGFLOW = "https://www.googleapis.com/auth/dialogflow"
SCOPES_HEADER = {
    "v1": f'Bearer error="insufficient_scope", scope="{CLOUD}"',
    "v3beta1": f'Bearer error="insufficient_scope", scope="{CLOUD} {DIALOGFLOW}"',
}
SURFACES = ["v1", "v3beta1"]

# Every Authorization (or forwarded) header value this module sends, and every token.
SENT: list[str] = []


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Tokens:
    """Crafts JWTs with the stack's dev key, honest or not."""

    def __init__(self, stack: Any) -> None:
        self.audience = stack.url  # the dev issuer's audience: the local API's URL
        self.pem = (stack.dev_dir / "dev-issuer.pem").read_bytes()
        self._signers: dict[str | None, crypt.RSASigner] = {}
        jwks = json.loads((stack.dev_dir / "dev-issuer-jwks.json").read_text())
        self.kid = jwks["keys"][0]["kid"]
        private = serialization.load_pem_private_key(self.pem, password=None)
        self.public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": devtoken.DEV_ISSUER, "aud": self.audience, "sub": "dev@example.com",
                  "email": "dev@example.com", "iat": now, "exp": now + 600, "scope": CLOUD}
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def signed(self, key_id: str | None = "", **overrides: Any) -> str:
        """RS256 with the dev key; ``key_id`` "" means the real kid, None none at all."""
        kid = self.kid if key_id == "" else key_id
        if kid not in self._signers:  # loading the key takes ~50 ms: once per kid
            self._signers[kid] = crypt.RSASigner.from_string(self.pem, key_id=kid)
        return jwt.encode(self._signers[kid], self.claims(**overrides)).decode("ascii")

    def unsigned(self) -> str:
        header = {"alg": "none", "typ": "JWT", "kid": self.kid}
        return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(self.claims()).encode())}."

    def hs256_with_public_key(self) -> str:
        header = {"alg": "HS256", "typ": "JWT", "kid": self.kid}
        signing_input = (f"{b64(json.dumps(header).encode())}."
                         f"{b64(json.dumps(self.claims()).encode())}")
        mac = hmac.new(self.public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(mac)}"

    def flipped_signature(self) -> str:
        head, claims, signature = self.signed().split(".")
        middle = len(signature) // 2
        flipped = "A" if signature[middle] != "A" else "B"
        return f"{head}.{claims}.{signature[:middle]}{flipped}{signature[middle + 1:]}"


@pytest.fixture(scope="module")
def tokens(stack) -> Tokens:
    return Tokens(stack)


@pytest.fixture(scope="module")
def names(stack) -> dict[str, str]:
    """An operation that exists and one that does not, names of the same length."""
    parent = f"projects/auth-{uuid.uuid4().hex[:8]}/locations/us"
    present, missing = f"{parent}/operations/op-present", f"{parent}/operations/op-missing"
    stack.store.create(model.new_job(name=present, parent=parent, target=f"{parent}/jobs/x",
                                     kind="demo.countdown", params={"steps": 1},
                                     created_by="test", now=model.utcnow()))
    return {"present": present, "missing": missing}


def send(stack, path: str, authorization: str | list[str] | None = None,
         method: str = "GET", extra: list[tuple[str, str]] | None = None):
    """Sends ``path`` with these Authorization values (a list sends the header repeatedly)."""
    values = [] if authorization is None else (
        [authorization] if isinstance(authorization, str) else authorization)
    headers = [("Authorization", value) for value in values] + (extra or [])
    SENT.extend(value for _, value in headers)
    SENT.extend(value.split()[-1] for _, value in headers if value.split())
    response = raw_request(stack, method, path, headers=headers,
                           body=b"" if method == "POST" else None)
    for _, value in headers:
        for part in value.split():
            if len(part) >= 16:
                assert part not in response.text, "a response body holds the token"
    assert response.status_code != 500, response.text
    return response


def bearer(token: str) -> str:
    SENT.append(token)
    return f"Bearer {token}"


def assert_missing_challenge(response) -> None:
    assert_error(response, 401, "UNAUTHENTICATED", "CREDENTIALS_MISSING")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert "error=" not in challenge


def assert_invalid_challenge(response, reason: str = "ACCESS_TOKEN_INVALID") -> None:
    assert_error(response, 401, "UNAUTHENTICATED", reason)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert 'error="invalid_token"' in challenge


# --- no token ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["present", "missing"],
                         ids=["on an existing operation", "on a missing operation, not 404"])
@pytest.mark.parametrize("surface", SURFACES)
def test_a_request_without_a_token_is_401_with_a_bare_bearer_challenge(stack, names, surface,
                                                                       which):
    assert_missing_challenge(send(stack, f"/{surface}/{names[which]}"))


def test_a_cancel_or_create_without_a_token_is_401_and_changes_nothing(stack, names):
    before = stack.store.get(names["present"])
    assert_missing_challenge(send(stack, f"/v1/{names['present']}:cancel", method="POST"))
    parent = names["present"].rsplit("/operations/", 1)[0]
    assert_missing_challenge(send(stack, f"/v1/{parent}/jobs", method="POST"))
    assert stack.store.get(names["present"]) == before


def test_a_token_only_in_x_forwarded_authorization_is_missing_when_gateway_mode_is_off(
        stack, names, tokens):
    response = send(stack, f"/v1/{names['present']}",
                    extra=[("X-Forwarded-Authorization", bearer(tokens.signed()))])
    assert_missing_challenge(response)


# --- bad tokens and bad headers -----------------------------------------------------------


BAD_TOKENS: dict[str, tuple[Callable[[Tokens], str], str]] = {
    "a token that is not a JWT": (lambda t: "not-a-jwt-at-all", "ACCESS_TOKEN_INVALID"),
    "three segments of garbage": (lambda t: "abc.def.ghi", "ACCESS_TOKEN_INVALID"),
    "a JWT with a fourth segment": (lambda t: t.signed() + ".abc", "ACCESS_TOKEN_INVALID"),
    "a JWT with one signature character flipped": (Tokens.flipped_signature,
                                                   "ACCESS_TOKEN_INVALID"),
    "a JWT with alg none and no signature": (Tokens.unsigned, "ACCESS_TOKEN_INVALID"),
    "an HS256 JWT keyed with the dev public key": (Tokens.hs256_with_public_key,
                                                   "ACCESS_TOKEN_INVALID"),
    "an expired JWT": (lambda t: t.signed(iat=int(time.time()) - 600,
                                          exp=int(time.time()) - 60), "ACCESS_TOKEN_EXPIRED"),
    "a JWT whose nbf is ten minutes ahead": (lambda t: t.signed(nbf=int(time.time()) + 600),
                                             "ACCESS_TOKEN_INVALID"),
    "a JWT issued ten minutes ahead": (lambda t: t.signed(iat=int(time.time()) + 600,
                                                          exp=int(time.time()) + 1200),
                                       "ACCESS_TOKEN_INVALID"),
    "a JWT with an unknown kid": (lambda t: t.signed(key_id="not-the-dev-key"),
                                  "ACCESS_TOKEN_INVALID"),
    "a JWT with no kid": (lambda t: t.signed(key_id=None), "ACCESS_TOKEN_INVALID"),
    "a JWT from an untrusted issuer": (lambda t: t.signed(iss="https://issuer.example"),
                                       "ACCESS_TOKEN_INVALID"),
    "a JWT living two hours": (lambda t: t.signed(exp=int(time.time()) + 7200),
                               "ACCESS_TOKEN_INVALID"),
    "a JWT without exp": (lambda t: t.signed(exp=None), "ACCESS_TOKEN_INVALID"),
    "a JWT without aud": (lambda t: t.signed(aud=None), "ACCESS_TOKEN_INVALID"),
    "a JWT made for another Google API": (
        lambda t: t.signed(aud="https://pubsub.googleapis.com/"), "ACCESS_TOKEN_INVALID"),
    "a JWT made for another local API": (
        lambda t: t.signed(aud=devtoken.local_audience(1)), "ACCESS_TOKEN_INVALID"),
    "a JWT whose scope claim is a list": (lambda t: t.signed(scope=[CLOUD]),
                                          "ACCESS_TOKEN_INVALID"),
    "a validly signed JWT over 4096 characters": (lambda t: t.signed(pad="x" * 4000),
                                                  "ACCESS_TOKEN_INVALID"),
    "4097 characters of opaque token": (lambda t: "a" * 4097, "ACCESS_TOKEN_INVALID"),
}


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize(("make", "reason"), BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_bad_token_is_401_invalid_token(stack, names, tokens, make, reason, surface):
    response = send(stack, f"/{surface}/{names['present']}", bearer(make(tokens)))
    assert_invalid_challenge(response, reason)


BAD_HEADERS: dict[str, Callable[[Tokens], str | list[str]]] = {
    "Basic credentials": lambda t: "Basic ZGV2QGV4YW1wbGUuY29tOnNlY3JldA==",
    "the Bearer scheme with no token": lambda t: "Bearer",
    "Bearer followed by two tokens": lambda t: f"Bearer {t.signed()} {t.signed()}",
    "a token with no scheme": lambda t: t.signed(),
    "two Authorization headers with the same valid token": lambda t: [bearer(t.signed())] * 2,
    "two valid bearer values joined by a comma": (
        lambda t: f"{bearer(t.signed())}, {bearer(t.signed())}"),
    "a token with characters outside RFC 6750": lambda t: "Bearer abc$def",
}


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("make", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_a_bad_authorization_header_is_401_invalid_token(stack, names, tokens, make, surface):
    assert_invalid_challenge(send(stack, f"/{surface}/{names['present']}", make(tokens)))


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
@pytest.mark.parametrize("surface", SURFACES)
def test_the_bearer_scheme_is_case_insensitive(stack, names, tokens, surface, scheme):
    token = tokens.signed()
    SENT.append(token)
    present = send(stack, f"/{surface}/{names['present']}", f"{scheme} {token}")
    assert present.status_code == 200, present.text
    assert json_format.Parse(present.text, operations_pb2.Operation()).name == names["present"]
    assert_error(send(stack, f"/{surface}/{names['missing']}", f"{scheme} {token}"),
                 404, "NOT_FOUND", "OPERATION_NOT_FOUND")


# --- scopes ---------------------------------------------------------------------------


SCOPE_CASES = {
    "a dialogflow-only token on v3beta1 (existing)": (DIALOGFLOW, "v3beta1", "present", 200),
    "a dialogflow-only token on v3beta1 (missing)": (DIALOGFLOW, "v3beta1", "missing", 404),
    "a dialogflow-only token on v1 (existing)": (DIALOGFLOW, "v1", "present", 403),
    "a dialogflow-only token on v1 (missing, not 404)": (DIALOGFLOW, "v1", "missing", 403),
    "a read-only token on v1": (CLOUD_READ_ONLY, "v1", "present", 403),
    "a read-only token on v3beta1": (CLOUD_READ_ONLY, "v3beta1", "present", 403),
    "a token with an empty scope on v1": ("", "v1", "present", 403),
    "a token with an empty scope on v3beta1": ("", "v3beta1", "present", 403),
    "a cloud-platform prefix that is another scope on v1": (CLOUD + "X", "v1", "present", 403),
    "cloud-platform among other scopes on v1": (f"openid {CLOUD} email", "v1", "present", 200),
    "cloud-platform among other scopes on v3beta1": (f"{CLOUD_READ_ONLY} {CLOUD}", "v3beta1",
                                                     "present", 200),
}


@pytest.mark.parametrize(("scope", "surface", "which", "status"), SCOPE_CASES.values(),
                         ids=SCOPE_CASES.keys())
def test_each_surface_accepts_only_its_scopes(stack, names, tokens, scope, surface, which,
                                              status):
    response = send(stack, f"/{surface}/{names[which]}", bearer(tokens.signed(scope=scope)))
    if status == 200:
        assert response.status_code == 200, response.text
        assert response.json()["name"] == names[which]
    elif status == 404:
        assert_error(response, 404, "NOT_FOUND", "OPERATION_NOT_FOUND")
    else:
        assert_error(response, 403, "PERMISSION_DENIED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        assert response.headers["WWW-Authenticate"] == SCOPES_HEADER[surface]


def test_a_scope_refusal_of_a_cancel_changes_nothing(stack, names, tokens):
    before = stack.store.get(names["present"])
    response = send(stack, f"/v1/{names['present']}:cancel",
                    bearer(tokens.signed(scope=DIALOGFLOW)), method="POST")
    assert_error(response, 403, "PERMISSION_DENIED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT")
    assert stack.store.get(names["present"]) == before


# --- permissions ----------------------------------------------------------------------


def _comparable(response, name: str) -> tuple[int, dict[str, str], str]:
    headers = {k: v for k, v in response.header_list if k.lower() not in ("date",)}
    return response.status_code, headers, response.text.replace(name, "<name>")


@pytest.mark.parametrize("method", ["GET", "POST"], ids=["get", "cancel"])
@pytest.mark.parametrize("surface", SURFACES)
def test_a_caller_without_permission_gets_the_same_403_whether_or_not_it_exists(
        stack, names, tokens, surface, method):
    before = stack.store.get(names["present"])
    token = tokens.signed(sub="eve@example.org", email="eve@example.org")
    suffix = ":cancel" if method == "POST" else ""
    answers = {}
    for which in ("present", "missing"):
        response = send(stack, f"/{surface}/{names[which]}{suffix}", bearer(token),
                        method=method)
        assert_error(response, 403, "PERMISSION_DENIED", "IAM_PERMISSION_DENIED")
        assert "WWW-Authenticate" not in response.headers
        answers[which] = _comparable(response, names[which])
    assert answers["present"] == answers["missing"]
    assert stack.store.get(names["present"]) == before


ORDER = {
    "no token on a missing operation is 401, not 404": (None, "v1", 401),
    "a bad token on a missing operation is 401, not 404": ("bad", "v3beta1", 401),
    "a wrong-scope token on a missing operation is 403, not 404": (DIALOGFLOW, "v1", 403),
}


@pytest.mark.parametrize(("scope", "surface", "status"), ORDER.values(), ids=ORDER.keys())
def test_checks_run_token_then_scope_then_existence(stack, names, tokens, scope, surface,
                                                    status):
    authorization = None if scope is None else bearer(
        tokens.flipped_signature() if scope == "bad" else tokens.signed(scope=scope))
    response = send(stack, f"/{surface}/{names['missing']}", authorization)
    assert response.status_code == status, response.text


def test_a_bad_name_is_400_before_any_token_check(stack):
    assert_error(send(stack, "/v1/operations/a%2Fb"), 400, "INVALID_ARGUMENT")


# --- secrets never leak: keep this test last in the module ------------------------------


def test_no_token_or_authorization_value_reaches_the_logs(stack, names, tokens):
    # A few more of the kinds google-auth likes to quote in its exception messages.
    for value in [tokens.signed() + ".extra.segments", tokens.flipped_signature(),
                  tokens.signed(exp=int(time.time()) - 60, iat=int(time.time()) - 120),
                  "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", tokens.signed()]:
        send(stack, f"/v1/{names['present']}", bearer(value))
    log_deadline = time.monotonic() + 1
    logs = stack.log_text()
    while names["present"] not in logs and time.monotonic() < log_deadline:
        time.sleep(0.05)
        logs = stack.log_text()
    assert '"status": 401' in logs and names["present"] in logs  # the log really is there
    secrets = {value for value in SENT if len(value) >= 16}
    assert len(secrets) >= 5
    leaked = [value[:24] + "..." for value in secrets if value in logs]
    assert not leaked, f"tokens found in the function logs: {leaked}"
    signatures = {value.rsplit(".", 1)[-1] for value in secrets if value.count(".") >= 2}
    leaked = [s[:24] for s in signatures if len(s) >= 40 and s in logs]
    assert not leaked, f"token signatures found in the function logs: {leaked}"
    assert "Bearer " not in logs and "Authorization" not in logs
