"""GoogleAuthVerifier against a local key server and tokeninfo endpoint.

No emulators: a 127.0.0.1 HTTP server plays Google's JWKS, x509 and tokeninfo
endpoints. A scripted clock decides every expiry, so no test sleeps.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google.auth.transport.requests
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from google.api_core import exceptions
from google.auth import crypt, jwt
from google.oauth2 import service_account

from lib.core import errors
from lib.core.config import IssuerConfig, Settings
from lib.edge.auth import GoogleAuthVerifier, Principal, require_scope
from lib.tools import devtoken
from tests.keyserver import KeyServer, closed_port_url

ISS_A = "https://issuer-a.test"
ISS_B = "https://issuer-b.test"
ISS_X = "https://x509-issuer.test"
SA_EMAIL = "worker@demo-project.iam.gserviceaccount.com"
AUD = "https://operations.test"  # every issuer's audience: this service
CLOUD = "https://www.googleapis.com/auth/cloud-platform"
CLOUD_RO = "https://www.googleapis.com/auth/cloud-platform.read-only"
DIALOGFLOW = "https://www.googleapis.com/auth/dialogflow"


# --- key material (made once per module: RSA generation is slow) -------------


@dataclass(frozen=True)
class Keys:
    a1: rsa.RSAPrivateKey
    a2: rsa.RSAPrivateKey
    a3: rsa.RSAPrivateKey
    ec_a: ec.EllipticCurvePrivateKey
    b1: rsa.RSAPrivateKey
    x1: rsa.RSAPrivateKey
    sa: rsa.RSAPrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    def make() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Keys(make(), make(), make(), ec.generate_private_key(ec.SECP256R1()), make(), make(),
                make())


def pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64(data: bytes | int) -> str:
    if isinstance(data, int):
        data = data.to_bytes((data.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk(kid: str, key: Any) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    if isinstance(key, rsa.RSAPrivateKey):
        return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                "n": b64(numbers.n), "e": b64(numbers.e)}
    return {"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big"))}


def certificate(key: rsa.RSAPrivateKey, name: str) -> str:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sign(key: Any, claims: dict[str, Any], kid: str | None,
         header: dict[str, Any] | None = None) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        signer: Any = crypt.RSASigner.from_string(pem(key), key_id=kid)
    else:
        signer = crypt.ES256Signer.from_string(pem(key), key_id=kid)
    return jwt.encode(signer, claims, header=header).decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """header.payload, both base64url JSON, and no signature yet."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


# --- the world: key server, scripted clock, verifier -------------------------


class Clock:
    """A scripted clock: tests move time, nothing sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    server: KeyServer
    clock: Clock
    keys: Keys
    http: google.auth.transport.requests.Request
    jwks_a: str

    def verifier(self, **overrides: Any) -> GoogleAuthVerifier:
        issuers = (
            IssuerConfig(ISS_A, self.server.url("/a/jwks"), AUD),
            IssuerConfig(ISS_B, self.server.url("/b/jwks"), AUD),
            IssuerConfig(ISS_X, self.server.url("/x/certs"), AUD),
            IssuerConfig(SA_EMAIL, self.server.url(f"/robot/v1/metadata/x509/{SA_EMAIL}"), AUD),
        )
        settings = Settings(**{
            "issuers": issuers,
            "tokeninfo_url": self.server.url(KeyServer.TOKENINFO_PATH),
            "keys_refresh_seconds": 60.0,
            **overrides,
        })
        return GoogleAuthVerifier(settings, http=self.http, clock=self.clock)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock.now)
        claims = {"iss": ISS_A, "aud": AUD, "sub": "alice@example.com",
                  "email": "alice@example.com", "iat": now, "exp": now + 600,
                  "scope": f"{CLOUD} {DIALOGFLOW}"}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def token(self, key: Any = None, kid: str | None = "a1", **claims: Any) -> str:
        return sign(key or self.keys.a1, self.claims(**claims), kid)


_DROP = object()


@pytest.fixture
def world(keys: Keys) -> Iterator[World]:
    server = KeyServer().start()
    server.serve_json("/a/jwks", {"keys": [jwk("a1", keys.a1), jwk("a2", keys.a2),
                                           jwk("e1", keys.ec_a)]})
    server.serve_json("/b/jwks", {"keys": [jwk("b1", keys.b1)]})
    server.serve_json("/x/certs", {"x1": certificate(keys.x1, "x509 issuer")})
    server.serve_json(f"/robot/v1/metadata/x509/{SA_EMAIL}",
                      {"sa-key-1": certificate(keys.sa, SA_EMAIL)})
    session = requests.Session()
    session.trust_env = False  # never a proxy for 127.0.0.1
    http = google.auth.transport.requests.Request(session)
    try:
        yield World(server, Clock(float(int(datetime.datetime.now().timestamp()))), keys, http,
                    server.url("/a/jwks"))
    finally:
        session.close()
        server.stop()


def assert_no_token_leak(exc: exceptions.GoogleAPICallError, token: str) -> None:
    shown = [str(exc), exc.message, json.dumps(errors.error_body(exc))]
    pieces = [token] + [p for p in token.split(".") if len(p) >= 8]
    for text in shown:
        for piece in pieces:
            assert piece not in text


# --- tokens that verify --------------------------------------------------------


def test_rs256_token_from_a_jwks_issuer_gives_the_principal(world: World) -> None:
    principal = world.verifier().verify(world.token())
    assert principal == Principal(
        subject="alice@example.com", email="alice@example.com",
        scopes=frozenset({CLOUD, DIALOGFLOW}), expires_at=world.clock.now + 600, issuer=ISS_A)
    assert principal.member == "user:alice@example.com"


def test_es256_token_from_a_jwks_issuer_verifies(world: World) -> None:
    principal = world.verifier().verify(world.token(world.keys.ec_a, "e1", scope=CLOUD))
    assert principal.scopes == {CLOUD}


def test_token_from_an_x509_map_issuer_verifies(world: World) -> None:
    principal = world.verifier().verify(world.token(world.keys.x1, "x1", iss=ISS_X))
    assert principal.issuer == ISS_X


def service_account_credentials(world: World, **kwargs: Any) -> service_account.Credentials:
    info = {"type": "service_account", "project_id": "demo-project",
            "private_key_id": "sa-key-1", "private_key": pem(world.keys.sa).decode(),
            "client_email": SA_EMAIL, "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token"}
    return service_account.Credentials.from_service_account_info(info, **kwargs)


def test_service_account_self_signed_jwt_for_this_service_with_scopes_verifies(
        world: World) -> None:
    # google-auth's self-signed JWT with this service as its audience and a scope claim.
    credentials = jwt.Credentials.from_signing_credentials(
        service_account_credentials(world), audience=AUD, additional_claims={"scope": CLOUD})
    credentials.refresh(world.http)  # self-signed: no HTTP to Google
    token = credentials.token.decode()
    world.clock.now = jwt.decode(token, verify=False)["iat"] + 1
    principal = world.verifier().verify(token)
    assert principal.member == f"serviceAccount:{SA_EMAIL}"
    assert principal.scopes == {CLOUD}
    assert world.server.hits(KeyServer.TOKENINFO_PATH) == 0


def test_a_service_accounts_jwt_made_for_another_google_api_is_refused(world: World) -> None:
    """RFC 8725 section 3.9: the same trusted issuer, its token meant for
    Pub/Sub (or, scoped with always_use_jwt_access, for no one in particular)."""
    other = jwt.Credentials.from_signing_credentials(
        service_account_credentials(world), audience="https://pubsub.googleapis.com/",
        additional_claims={"scope": CLOUD})
    other.refresh(world.http)
    scoped = service_account_credentials(world, scopes=[CLOUD], always_use_jwt_access=True)
    scoped.refresh(world.http)
    for token in (other.token.decode(), scoped.token):
        world.clock.now = jwt.decode(token, verify=False)["iat"] + 1
        with pytest.raises(exceptions.Unauthenticated) as caught:
            world.verifier().verify(token)
        assert caught.value.reason == errors.ACCESS_TOKEN_INVALID
        assert "aud" in caught.value.message


# --- tokens that do not --------------------------------------------------------

INVALID, EXPIRED = errors.ACCESS_TOKEN_INVALID, errors.ACCESS_TOKEN_EXPIRED


def _bad_signature(w: World) -> str:
    header, _, signature = w.token().split(".")
    return f"{header}.{b64(json.dumps(w.claims(sub='mallory@example.com')).encode())}.{signature}"


def _alg_none(w: World) -> str:
    return unsigned({"alg": "none", "kid": "a1", "typ": "JWT"}, w.claims()) + "."


def _hs256_with_public_key(w: World) -> str:
    signing_input = unsigned({"alg": "HS256", "kid": "a1", "typ": "JWT"}, w.claims())
    mac = hmac.new(public_pem(w.keys.a1), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _huge(w: World) -> str:
    return w.token(padding="x" * 5000)


@dataclass(frozen=True)
class Case:
    make: Callable[[World], str]
    reason: str
    opaque: bool = False  # routed to tokeninfo rather than to JWT verification


REJECTED = {
    "garbage": Case(lambda w: "garbage", INVALID, opaque=True),
    "two dots of garbage": Case(lambda w: "abc.def.ghi", INVALID, opaque=True),
    "bad base64 in the payload": Case(
        lambda w: w.token().split(".")[0] + ".!!!notbase64!!!." + w.token().split(".")[2],
        INVALID),
    "a header that is not JSON": Case(
        lambda w: b64(b"not json") + "." + w.token().split(".", 1)[1], INVALID, opaque=True),
    "a payload that is not a JSON object": Case(
        lambda w: w.token().split(".")[0] + "." + b64(b"[1, 2]") + ".c2ln", INVALID),
    "a bad signature": Case(_bad_signature, INVALID),
    "alg none": Case(_alg_none, INVALID),
    "HS256 signed with the public key as the HMAC secret": Case(_hs256_with_public_key, INVALID),
    "an expired token": Case(lambda w: w.token(iat=int(w.clock.now) - 700,
                                               exp=int(w.clock.now) - 100), EXPIRED),
    "iat in the future": Case(lambda w: w.token(iat=int(w.clock.now) + 60), INVALID),
    "nbf in the future": Case(lambda w: w.token(nbf=int(w.clock.now) + 60), INVALID),
    "no exp": Case(lambda w: w.token(exp=_DROP), INVALID),
    "no iat": Case(lambda w: w.token(iat=_DROP), INVALID),
    "a string iat": Case(lambda w: w.token(iat=str(int(w.clock.now))), INVALID),
    "a boolean exp": Case(lambda w: w.token(exp=True), INVALID),
    "a lifetime over the maximum": Case(lambda w: w.token(exp=int(w.clock.now) + 3601), INVALID),
    "an unknown kid although another key of the issuer would verify": Case(
        lambda w: w.token(kid="retired"), INVALID),
    "no kid": Case(lambda w: w.token(kid=None), INVALID),
    "an unknown issuer": Case(lambda w: w.token(iss="https://evil.test"), INVALID),
    "issuer B's key and kid claiming issuer A": Case(lambda w: w.token(w.keys.b1, "b1"), INVALID),
    "issuer B's key under issuer A's kid": Case(lambda w: w.token(w.keys.b1, "a1"), INVALID),
    "an RSA-signed token naming an EC kid": Case(lambda w: w.token(kid="e1"), INVALID),
    "a critical header extension": Case(
        lambda w: sign(w.keys.a1, w.claims(), "a1", {"crit": ["exp"], "exp": 1}), INVALID),
    "a non-string scope": Case(lambda w: w.token(scope=[CLOUD]), INVALID),
    "no subject": Case(lambda w: w.token(sub=_DROP), INVALID),
    "a token over the length cap": Case(_huge, INVALID),
}


@pytest.mark.parametrize("case", REJECTED.values(), ids=REJECTED.keys())
def test_rejected_token_is_401_with_the_reason_and_no_token_in_the_error(
    world: World, case: Case
) -> None:
    verifier = world.verifier()
    token = case.make(world)
    with pytest.raises(exceptions.Unauthenticated) as caught:
        verifier.verify(token)
    assert caught.value.reason == case.reason
    assert_no_token_leak(caught.value, token)
    if not case.opaque:
        assert world.server.hits(KeyServer.TOKENINFO_PATH) == 0


def test_token_over_the_length_cap_is_refused_before_any_http(world: World) -> None:
    with pytest.raises(exceptions.Unauthenticated):
        world.verifier().verify(_huge(world))
    assert world.server.hits() == 0


def test_the_audience_must_name_this_service(world: World) -> None:
    verifier = world.verifier()
    assert verifier.verify(world.token(aud=AUD)).subject
    assert verifier.verify(world.token(aud=["https://other.example.com", AUD])).subject


@pytest.mark.parametrize("aud", [
    _DROP, "https://other.example.com", AUD + "/", "", ["https://other.example.com"], [], 7,
    {"aud": AUD}], ids=["missing", "another service", "this URL with a slash", "empty",
                       "a list without this service", "an empty list", "a number", "an object"])
def test_a_jwt_whose_audience_is_missing_or_different_is_invalid_token(world: World,
                                                                      aud: Any) -> None:
    token = world.token(aud=aud)
    with pytest.raises(exceptions.Unauthenticated) as caught:
        world.verifier().verify(token)
    assert caught.value.reason == errors.ACCESS_TOKEN_INVALID
    assert caught.value.message == "The access token is not meant for this service (aud)."
    assert_no_token_leak(caught.value, token)


def test_a_cached_token_still_expires_by_the_clock(world: World) -> None:
    verifier = world.verifier()
    token = world.token()
    verifier.verify(token)
    world.clock.now += 600 + 5  # at exp + skew: still fine
    assert verifier.verify(token).subject == "alice@example.com"
    world.clock.now += 1
    with pytest.raises(exceptions.Unauthenticated) as caught:
        verifier.verify(token)
    assert caught.value.reason == EXPIRED


# --- keys: refresh, rotation, outages ------------------------------------------


def test_unknown_kid_refetches_keys_at_most_once_per_refresh_interval(world: World) -> None:
    verifier = world.verifier(keys_refresh_seconds=60.0)
    verifier.verify(world.token())
    assert world.server.hits("/a/jwks") == 1
    for _ in range(3):  # inside the interval: no re-fetch, however many bogus kids
        with pytest.raises(exceptions.Unauthenticated):
            verifier.verify(world.token(kid="bogus"))
    assert world.server.hits("/a/jwks") == 1
    world.clock.now += 61
    for _ in range(3):
        with pytest.raises(exceptions.Unauthenticated):
            verifier.verify(world.token(kid="bogus"))
    assert world.server.hits("/a/jwks") == 2


def test_rotated_key_is_accepted_after_a_refresh(world: World) -> None:
    verifier = world.verifier(keys_refresh_seconds=60.0)
    verifier.verify(world.token())
    world.server.serve_json("/a/jwks", {"keys": [jwk("a1", world.keys.a1),
                                                 jwk("a3", world.keys.a3)]})
    world.clock.now += 61
    principal = verifier.verify(world.token(world.keys.a3, "a3"))
    assert principal.issuer == ISS_A
    assert world.server.hits("/a/jwks") == 2


def test_cache_control_max_age_expires_the_key_set(world: World) -> None:
    world.server.serve_json("/a/jwks", {"keys": [jwk("a1", world.keys.a1)]},
                            headers={"Cache-Control": "public, max-age=300, must-revalidate"})
    verifier = world.verifier(keys_refresh_seconds=3600.0)
    verifier.verify(world.token())
    world.server.serve_json("/a/jwks", {"keys": [jwk("a2", world.keys.a2)]})
    world.clock.now += 301
    with pytest.raises(exceptions.Unauthenticated):  # a1 is gone from the new set
        verifier.verify(world.token(scope=CLOUD))
    assert verifier.verify(world.token(world.keys.a2, "a2")).subject
    assert world.server.hits("/a/jwks") == 2


def test_concurrent_first_requests_fetch_the_keys_once(world: World) -> None:
    verifier = world.verifier()
    tokens = [world.token(sub=f"user{i}@example.com") for i in range(16)]
    results: list[Any] = []
    barrier = threading.Barrier(len(tokens))

    def run(token: str) -> None:
        barrier.wait()
        results.append(verifier.verify(token).subject)

    threads = [threading.Thread(target=run, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 16
    assert world.server.hits("/a/jwks") == 1


KEY_OUTAGES = {
    "connection refused": lambda w: closed_port_url("/jwks"),
    "HTTP 500": lambda w: w.server.serve_json("/down", {"error": "x"}, status=500),
    "a body that is not JSON": lambda w: w.server.serve_json("/notjson", "nope"),
}


@pytest.mark.parametrize("keys_url", KEY_OUTAGES.values(), ids=KEY_OUTAGES.keys())
def test_unreachable_keys_are_503_never_a_pass(world: World, keys_url: Callable) -> None:
    verifier = world.verifier(issuers=(IssuerConfig(ISS_A, keys_url(world), AUD),))
    with pytest.raises(exceptions.ServiceUnavailable) as caught:
        verifier.verify(world.token())
    assert caught.value.reason == errors.TOKEN_VERIFIER_UNAVAILABLE


# --- opaque tokens at tokeninfo -------------------------------------------------

OPAQUE = "ya29.c.opaque-access-token_0123456789"  # Google's shape: two dots, not a JWT


def _tokeninfo(world: World, scope: str = CLOUD, ttl: int = 600) -> dict[str, str]:
    exp = int(world.clock.now) + ttl
    return {"azp": "1234.apps.googleusercontent.com", "aud": "1234.apps.googleusercontent.com",
            "sub": "110169484474386276334", "scope": scope, "exp": str(exp),
            "expires_in": str(ttl), "email": "bob@example.com", "email_verified": "true",
            "access_type": "online"}


def test_opaque_token_is_checked_at_tokeninfo_and_cached_until_exp(world: World) -> None:
    world.server.tokeninfo[OPAQUE] = _tokeninfo(world, scope=f"{CLOUD} openid")
    verifier = world.verifier()
    principal = verifier.verify(OPAQUE)
    assert principal.scopes == {CLOUD, "openid"}
    assert principal.member == "user:bob@example.com"
    assert principal.issuer == world.server.url(KeyServer.TOKENINFO_PATH)
    assert verifier.verify(OPAQUE) == principal
    assert world.server.hits(KeyServer.TOKENINFO_PATH) == 1
    world.clock.now += 606
    with pytest.raises(exceptions.Unauthenticated) as caught:
        verifier.verify(OPAQUE)
    assert caught.value.reason == EXPIRED


def test_opaque_token_travels_in_the_body_never_the_url(world: World) -> None:
    world.server.tokeninfo[OPAQUE] = _tokeninfo(world)
    world.verifier().verify(OPAQUE)
    (request,) = world.server.requests
    assert request.method == "POST"
    assert OPAQUE not in request.request_line
    assert request.body.decode() == f"access_token={OPAQUE}"


def test_opaque_token_tokeninfo_does_not_know_is_401(world: World) -> None:
    with pytest.raises(exceptions.Unauthenticated) as caught:
        world.verifier().verify(OPAQUE)
    assert caught.value.reason == INVALID
    assert_no_token_leak(caught.value, OPAQUE)


def test_opaque_token_without_a_tokeninfo_url_is_401_without_http(world: World) -> None:
    with pytest.raises(exceptions.Unauthenticated):
        world.verifier(tokeninfo_url=None).verify(OPAQUE)
    assert world.server.hits() == 0


@pytest.mark.parametrize("name", ["connection refused", "HTTP 500", "HTTP 503"])
def test_tokeninfo_down_is_503_never_a_pass(world: World, name: str) -> None:
    world.server.tokeninfo[OPAQUE] = _tokeninfo(world)
    url = world.server.url(KeyServer.TOKENINFO_PATH)
    if name == "connection refused":
        url = closed_port_url("/tokeninfo")
    else:
        world.server.tokeninfo_status = int(name.split()[1])
    with pytest.raises(exceptions.ServiceUnavailable) as caught:
        world.verifier(tokeninfo_url=url).verify(OPAQUE)
    assert caught.value.reason == errors.TOKEN_VERIFIER_UNAVAILABLE
    assert_no_token_leak(caught.value, OPAQUE)


# --- scopes ---------------------------------------------------------------------

SCOPE_CASES = {
    "cloud-platform satisfies v1": ({CLOUD}, [CLOUD], True),
    "dialogflow satisfies v3beta1": ({DIALOGFLOW}, [CLOUD, DIALOGFLOW], True),
    "cloud-platform.read-only does not satisfy cloud-platform": ({CLOUD_RO}, [CLOUD], False),
    "a prefix of the scope does not satisfy it": ({"https://www.googleapis.com/auth/cloud"},
                                                  [CLOUD], False),
    "no scopes satisfy nothing": (set(), [CLOUD], False),
}


@pytest.mark.parametrize(("scopes", "accepted", "allowed"), SCOPE_CASES.values(),
                         ids=SCOPE_CASES.keys())
def test_scope_check_compares_exact_strings(scopes: set[str], accepted: list[str],
                                            allowed: bool) -> None:
    principal = Principal("s", None, frozenset(scopes), 0.0, ISS_A)
    if allowed:
        require_scope(principal, accepted)
    else:
        with pytest.raises(exceptions.PermissionDenied) as caught:
            require_scope(principal, accepted)
        assert caught.value.reason == errors.ACCESS_TOKEN_SCOPE_INSUFFICIENT


def test_read_only_scope_in_a_token_is_refused_for_cloud_platform(world: World) -> None:
    principal = world.verifier().verify(world.token(scope=CLOUD_RO))
    with pytest.raises(exceptions.PermissionDenied):
        require_scope(principal, [CLOUD])


# --- the dev issuer ---------------------------------------------------------------


def test_dev_token_verifies_with_the_issuers_env_configuration(tmp_path: Path) -> None:
    token = devtoken.mint(scopes=[CLOUD, DIALOGFLOW], subject="dev@example.com", ttl=300,
                          dev_dir=tmp_path)
    settings = Settings.from_env({"AUTH_ISSUERS": devtoken.issuers_env(tmp_path),
                                  "AUTH_TOKENINFO_URL": ""})
    principal = GoogleAuthVerifier(settings).verify(token)
    assert principal.member == "user:dev@example.com"
    assert principal.scopes == {CLOUD, DIALOGFLOW}
    assert principal.issuer == devtoken.DEV_ISSUER
    assert (tmp_path / "dev-issuer.pem").stat().st_mode & 0o777 == 0o600


def test_a_dev_token_for_another_local_api_is_refused(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "AUTH_ISSUERS": devtoken.issuers_env(tmp_path, audience="http://127.0.0.1:8080"),
        "AUTH_TOKENINFO_URL": ""})
    verifier = GoogleAuthVerifier(settings)
    mine = devtoken.mint(dev_dir=tmp_path, audience="http://127.0.0.1:8080")
    assert jwt.decode(mine, verify=False)["aud"] == "http://127.0.0.1:8080"
    assert verifier.verify(mine).subject == devtoken.DEFAULT_SUBJECT
    with pytest.raises(exceptions.Unauthenticated) as caught:
        verifier.verify(devtoken.mint(dev_dir=tmp_path, audience="http://127.0.0.1:9090"))
    assert caught.value.reason == errors.ACCESS_TOKEN_INVALID


def test_the_dev_audience_is_the_local_apis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORT", raising=False)
    assert devtoken.local_audience() == "http://127.0.0.1:8080"
    monkeypatch.setenv("PORT", "9123")
    assert devtoken.local_audience() == "http://127.0.0.1:9123"
    assert devtoken.local_audience(8443) == "http://127.0.0.1:8443"


def test_dev_key_is_made_once_and_reused(tmp_path: Path) -> None:
    first = devtoken.ensure_dev_key(tmp_path).read_text()
    key = (tmp_path / "dev-issuer.pem").read_bytes()
    assert devtoken.ensure_dev_key(tmp_path).read_text() == first
    assert (tmp_path / "dev-issuer.pem").read_bytes() == key


def test_devtoken_cli_prints_only_the_token(tmp_path: Path) -> None:
    env = {**os.environ, "DEV_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "lib.devtoken", "--scope", "X", "--subject", "a@b.c",
         "--ttl", "60", "--audience", "http://127.0.0.1:8123"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
        check=True, timeout=60)
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    claims = jwt.decode(token, verify=False)
    assert (claims["iss"], claims["sub"], claims["email"], claims["scope"], claims["aud"]) == (
        devtoken.DEV_ISSUER, "a@b.c", "a@b.c", "X", "http://127.0.0.1:8123")
    assert claims["exp"] - claims["iat"] == 60
    settings = Settings.from_env({"AUTH_ISSUERS": devtoken.issuers_env(
        tmp_path, audience="http://127.0.0.1:8123")})
    assert GoogleAuthVerifier(settings).verify(token).scopes == {"X"}
