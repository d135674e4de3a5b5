"""Who is calling: bearer parsing, token verification (JWT and opaque), scopes.

``GoogleAuthVerifier`` is the one real ``TokenVerifier``. It verifies signed
JWTs with ``google.auth.jwt.decode`` after checking what that function does
not (algorithm, key id, issuer, ``nbf``, lifetime, claim types, size), and
asks a tokeninfo endpoint about opaque access tokens. Every failure becomes an
api-core exception here, once; no message or log line ever holds the token or
``str()`` of a google-auth exception (those can quote the token).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import google.auth.exceptions
from google.api_core import exceptions
from google.auth import jwt, transport
from werkzeug.datastructures import EnvironHeaders

from lib.core import errors
from lib.core.config import Settings
from lib.edge.issuer_keys import ALG_BY_KIND, IssuerKeys, unavailable

_log = logging.getLogger("operations.auth")

# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ACCEPTED_ALGS = frozenset(ALG_BY_KIND.values())
_CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class Principal:
    """The verified caller."""

    subject: str
    email: str | None
    scopes: frozenset[str]
    expires_at: float
    issuer: str

    @property
    def member(self) -> str:
        """The IAM member this caller is: ``user:``, ``serviceAccount:`` or ``subject:``."""
        identity = self.email or (self.subject if _EMAIL.fullmatch(self.subject) else None)
        if identity is None:
            return "subject:" + self.subject
        if identity.lower().endswith(".gserviceaccount.com"):
            return "serviceAccount:" + identity
        return "user:" + identity

    @property
    def id(self) -> str:
        """What logs show: the email, else the subject."""
        return self.email or self.subject


class TokenVerifier(Protocol):
    """Turns a bearer token into a Principal or raises an api-core exception."""

    def verify(self, token: str) -> Principal: ...


def bearer_token(headers: Any, *, trust_forwarded: bool, max_length: int) -> str:
    """The bearer token of a request, checked for shape only (RFC 6750).

    With ``trust_forwarded`` (gateway mode) ``X-Forwarded-Authorization`` wins
    when present: API Gateway and ESPv2 move the caller's token there and put
    their own in ``Authorization``.

    Raises:
        google.api_core.exceptions.Unauthenticated: CREDENTIALS_MISSING when
            there is no header, else ACCESS_TOKEN_INVALID.
    """
    values: list[str] = []
    if trust_forwarded:
        values = _all_values(headers, "X-Forwarded-Authorization")
    if not values:
        values = _all_values(headers, "Authorization")
    if not values:
        raise errors.error(
            exceptions.Unauthenticated,
            "The request has no access token; send Authorization: Bearer <token>.",
            errors.CREDENTIALS_MISSING,
        )
    if len(values) != 1 or "," in values[0]:
        raise _invalid("Send exactly one Authorization header.")
    value = values[0]
    if len(value) > max_length + 64:  # before any splitting or decoding
        raise _invalid("The access token is too long.")
    # SP and HTAB (RFC 9110 whitespace) separate scheme and token; not any
    # Unicode space, which str.split() would take. No regex over the whole
    # token: this runs on every request, the cached ones included.
    value = value.strip(" \t")
    cuts = [at for at in (value.find(" "), value.find("\t")) if at >= 0]
    cut = min(cuts) if cuts else len(value)
    token = value[cut:].lstrip(" \t")
    parts = [value[:cut], token] if token else ([value[:cut]] if value else [])
    if not parts or parts[0].lower() != "bearer":
        raise _invalid("The Authorization scheme must be Bearer.")
    if len(parts) != 2 or not _B64TOKEN.fullmatch(parts[1]):
        raise _invalid("The Authorization header must be Bearer followed by one token.")
    if len(parts[1]) > max_length:
        raise _invalid("The access token is too long.")
    return parts[1]


def _all_values(headers: Any, name: str) -> list[str]:
    """Every value of header ``name``. A WSGI environ holds one at most (the
    server joins repeats with commas): read it directly, not by walking every
    header as ``getlist`` does."""
    if isinstance(headers, EnvironHeaders):
        value = headers.get(name)
        return [] if value is None else [value]
    return list(headers.getlist(name))


def require_scope(principal: Principal, accepted: Collection[str]) -> None:
    """Raises PermissionDenied unless the token carries one of ``accepted``.

    Exact string comparison: ``.../cloud-platform.read-only`` is not
    ``.../cloud-platform``.
    """
    if not principal.scopes.isdisjoint(accepted):
        return
    raise errors.error(
        exceptions.PermissionDenied,
        "Request had insufficient authentication scopes.",
        errors.ACCESS_TOKEN_SCOPE_INSUFFICIENT,
    )


class GoogleAuthVerifier:
    """Verifies JWTs from the configured issuers and opaque tokens at tokeninfo."""

    def __init__(
        self,
        settings: Settings,
        http: transport.Request | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if http is None:
            import google.auth.transport.requests

            http = google.auth.transport.requests.Request()
        self._settings = settings
        self._http = http
        self._clock = clock
        self._issuers = {i.issuer: i for i in settings.issuers}
        sources: dict[str, IssuerKeys] = {}
        for issuer in settings.issuers:
            if issuer.keys not in sources:
                sources[issuer.keys] = IssuerKeys(
                    issuer.keys,
                    http,
                    timeout=settings.auth_http_timeout_seconds,
                    refresh_seconds=settings.keys_refresh_seconds,
                    clock=clock,
                )
        self._keys = {i.issuer: sources[i.keys] for i in settings.issuers}
        self._verified = _PrincipalCache(_CACHE_ENTRIES)

    def verify(self, token: str) -> Principal:
        """The caller a token names, or an api-core exception (401 or 503)."""
        if len(token) > self._settings.max_token_length:
            raise _invalid("The access token is too long.")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self._clock()
        cached = self._verified.get(digest)
        if cached is not None:
            if now > cached.expires_at + self._settings.clock_skew_seconds:
                self._verified.discard(digest)
                raise _expired()
            return cached
        header = _jwt_header(token)
        if header is None:
            principal = self._verify_opaque(token, now)
        else:
            principal = self._verify_jwt(token, header, now)
        self._verified.put(digest, principal)
        return principal

    def _verify_jwt(self, token: str, header: Mapping[str, Any], now: float) -> Principal:
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in _ACCEPTED_ALGS:
            raise _invalid("The access token's signing algorithm is not accepted.")
        if not isinstance(kid, str) or not kid:
            raise _invalid("The access token has no key id (kid).")
        if "crit" in header:  # RFC 7515 4.1.11: no extensions are understood here
            raise _invalid("The access token's header has unsupported critical extensions.")
        claims = _segment(token.split(".")[1])
        if claims is None:
            raise _invalid("The access token is malformed.")
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or issuer not in self._issuers:
            raise _invalid("The access token's issuer is not trusted.")
        _check_claim_types(claims)
        key = self._keys[issuer].key(kid)
        if key is None:
            raise _invalid("The access token's signing key is not known.")
        if key.alg != alg:
            raise _invalid("The access token's signing algorithm does not match its key.")
        try:
            # Times are checked below against the injected clock; google-auth's
            # own iat/exp check (on the wall clock) is switched off by the skew.
            jwt.decode(token, certs={kid: key.pem}, clock_skew_in_seconds=10**11)
        except (ValueError, TypeError, google.auth.exceptions.GoogleAuthError) as exc:
            _log.info("JWT from %s rejected: %s", issuer, type(exc).__name__)
            raise _invalid("The access token's signature is invalid.") from None
        # RFC 8725 section 3.9: a token made for another service is not for us.
        if not _audience_matches(claims.get("aud"), self._issuers[issuer].audience):
            raise _invalid("The access token is not meant for this service (aud).")
        skew = self._settings.clock_skew_seconds
        iat, exp, nbf = claims["iat"], claims["exp"], claims.get("nbf")
        if exp - iat > self._settings.max_token_lifetime_seconds:
            raise _invalid("The access token's lifetime is too long.")
        if iat > now + skew or (nbf is not None and nbf > now + skew):
            raise _invalid("The access token is not valid yet.")
        if now > exp + skew:
            raise _expired()
        return Principal(
            subject=claims["sub"],
            email=_verified_email(claims),
            scopes=frozenset(claims.get("scope", "").split()),
            expires_at=float(exp),
            issuer=issuer,
        )

    def _verify_opaque(self, token: str, now: float) -> Principal:
        url = self._settings.tokeninfo_url
        if url is None:
            raise _invalid("The access token is not a JWT from a trusted issuer.")
        try:
            # POST, so the token is never in a URL (and so never in access logs).
            response = self._http(
                url,
                method="POST",
                body=urlencode({"access_token": token}).encode("ascii"),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=self._settings.auth_http_timeout_seconds,
            )
        except Exception as exc:  # any transport failure is a 503, never a pass
            _log.warning("tokeninfo unreachable: %s", type(exc).__name__)
            raise unavailable() from None
        if response.status in (400, 401):
            raise _invalid("The access token is invalid.")
        if response.status != 200:
            _log.warning("tokeninfo answered HTTP %s", response.status)
            raise unavailable()
        info = _json_object(response.data)
        if info is None:
            _log.warning("tokeninfo answered 200 with a body that is not a JSON object")
            raise unavailable()
        return _tokeninfo_principal(info, url, now, self._settings.clock_skew_seconds)


def _tokeninfo_principal(info: Mapping[str, Any], url: str, now: float, skew: int) -> Principal:
    """Google's tokeninfo answer as a Principal (its numbers are strings)."""
    exp = _number(info.get("exp"))
    if exp is None:
        expires_in = _number(info.get("expires_in"))
        exp = None if expires_in is None else now + expires_in
    subject = info.get("sub") or info.get("azp")
    scope = info.get("scope", "")
    if exp is None or not isinstance(subject, str) or not isinstance(scope, str):
        raise _invalid("The access token is invalid.")
    if now > exp + skew:
        raise _expired()
    return Principal(
        subject=subject,
        email=_verified_email(info),
        scopes=frozenset(scope.split()),
        expires_at=exp,
        issuer=url,
    )


def _check_claim_types(claims: Mapping[str, Any]) -> None:
    """The claim types RFC 7519 and this service require, before any use."""
    for name in ("exp", "iat"):
        if name not in claims:
            raise _invalid(f"The access token has no {name} claim.")
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _is_number(claims[name]):
            raise _invalid(f"The access token's {name} claim is not a number.")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise _invalid("The access token has no subject (sub).")
    if not isinstance(claims.get("scope", ""), str):
        raise _invalid("The access token's scope claim is not a string.")
    if not isinstance(claims.get("email", ""), str):
        raise _invalid("The access token's email claim is not a string.")


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) < 10**11
    )


def _number(value: Any) -> float | None:
    """A tokeninfo number: Google sends decimal strings."""
    if isinstance(value, str) and value.isdigit() and len(value) < 12:
        return float(value)
    return float(value) if _is_number(value) else None


def _verified_email(claims: Mapping[str, Any]) -> str | None:
    """The email claim, unless the issuer says it is unverified."""
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        return None
    verified = claims.get("email_verified", True)
    return email if verified is True or verified == "true" else None


def _audience_matches(aud: Any, audience: str) -> bool:
    if isinstance(aud, str):
        return aud == audience
    return isinstance(aud, list) and audience in aud


def _jwt_header(token: str) -> dict[str, Any] | None:
    """The JOSE header if the token is shaped like a JWT, else None (opaque).

    Two dots alone do not make a JWT: Google access tokens look like
    ``ya29.c.xxx``; a JWT's first segment is a base64url JSON object.
    """
    if token.count(".") != 2:
        return None
    return _segment(token.split(".", 1)[0])


def _segment(encoded: str) -> dict[str, Any] | None:
    """A base64url JSON object segment, or None for anything else."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]*", encoded):
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    return _json_object(raw)


def _json_object(raw: bytes) -> dict[str, Any] | None:
    def no_constants(name: str) -> Any:
        raise ValueError(name)  # NaN and Infinity are not JSON numbers

    try:
        data = json.loads(raw, parse_constant=no_constants)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _invalid(message: str) -> exceptions.GoogleAPICallError:
    return errors.error(exceptions.Unauthenticated, message, errors.ACCESS_TOKEN_INVALID)


def _expired() -> exceptions.GoogleAPICallError:
    return errors.error(
        exceptions.Unauthenticated, "The access token has expired.", errors.ACCESS_TOKEN_EXPIRED
    )


class _PrincipalCache:
    """Verified tokens by sha256, oldest evicted first; thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[bytes, Principal] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Principal | None:
        return self._entries.get(key)

    def put(self, key: bytes, principal: Principal) -> None:
        with self._lock:
            self._entries[key] = principal
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def discard(self, key: bytes) -> None:
        with self._lock:
            self._entries.pop(key, None)
