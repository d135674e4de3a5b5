"""Public signing keys of trusted JWT issuers: fetched, parsed, cached, rotated.

An issuer's keys live at an http(s) URL or in a local file, as a JWKS
(``{"keys": [...]}``, RSA or EC P-256) or as Google's x509 map
(``{"kid": "-----BEGIN CERTIFICATE-----..."}``). Each key becomes a PEM public
key that ``google.auth.jwt.decode`` accepts. Split from ``auth.py`` to keep
both small; ``auth.py`` is the only caller.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.api_core import exceptions
from google.auth import transport

from lib.core import errors

_log = logging.getLogger("operations.auth")

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_MIN_RSA_BITS = 2048
# The JWS "alg" each key type verifies (this service accepts only these two).
ALG_BY_KIND = {"RSA": "RS256", "EC": "ES256"}


class KeysUnavailable(Exception):
    """The key source could not be read; carries no token data."""


@dataclass(frozen=True)
class SigningKey:
    """One public key: its JWS algorithm and its PEM (SubjectPublicKeyInfo)."""

    alg: str
    pem: bytes


def unavailable() -> exceptions.GoogleAPICallError:
    """The 503 callers see while keys or tokeninfo cannot be reached."""
    return errors.error(
        exceptions.ServiceUnavailable,
        "The access token cannot be verified right now; try again later.",
        errors.TOKEN_VERIFIER_UNAVAILABLE,
    )


class IssuerKeys:
    """The cached key set at one URL or path; thread-safe.

    Keys are fetched on first use, again when a Cache-Control max-age runs
    out, and again when a token names an unknown ``kid`` (at most once per
    ``refresh_seconds``, so a stream of bogus kids cannot hammer the source).
    One fetch runs at a time; threads that waited on it reuse its result.
    """

    def __init__(
        self,
        source: str,
        http: transport.Request,
        *,
        timeout: float,
        refresh_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._source = source
        self._http = http
        self._timeout = timeout
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] | None = None
        self._fetched_at = 0.0
        self._expires_at: float | None = None
        self._generation = 0  # bumped when a fetch attempt ends, success or not

    def key(self, kid: str) -> SigningKey | None:
        """The key named ``kid``, or None if the source does not have it.

        Raises:
            google.api_core.exceptions.ServiceUnavailable: the source is down
                and no usable key set is cached.
        """
        generation, keys = self._generation, self._keys
        now = self._clock()
        if keys is not None and self._fresh(now):
            if kid in keys:
                return keys[kid]
            if now - self._fetched_at < self._refresh_seconds:
                return None
        with self._lock:
            if self._generation == generation:
                self._fetch(now)
            elif self._keys is None or not self._fresh(now):
                # Another thread's fetch failed while this one waited.
                raise unavailable()
            return self._keys.get(kid) if self._keys is not None else None

    def _fresh(self, now: float) -> bool:
        return self._expires_at is None or now < self._expires_at

    def _fetch(self, now: float) -> None:
        """Replaces the key set; called with the lock held."""
        try:
            raw, max_age = self._read()
            keys = parse_key_set(raw)
        except KeysUnavailable as exc:
            self._generation += 1
            _log.warning("signing keys unavailable from %s: %s", self._source, exc)
            if self._keys is not None and self._fresh(now):
                self._fetched_at = now  # keep the known keys; retry after the gap
            else:
                self._keys = None
            raise unavailable() from None
        self._keys = keys
        self._fetched_at = now
        self._expires_at = None if max_age is None else now + max_age
        self._generation += 1  # last: a reader that sees it also sees the keys
        _log.info("loaded %d signing keys from %s", len(keys), self._source)

    def _read(self) -> tuple[bytes, float | None]:
        if not self._source.startswith(("https://", "http://")):
            try:
                return Path(self._source).read_bytes(), None
            except OSError as exc:
                raise KeysUnavailable(f"cannot read file: {exc.strerror}") from None
        try:
            response = self._http(self._source, method="GET", timeout=self._timeout)
        except Exception as exc:  # any transport failure is a 503, never a pass
            raise KeysUnavailable(type(exc).__name__) from None
        if response.status != 200:
            raise KeysUnavailable(f"HTTP {response.status}")
        return response.data, _max_age(response.headers)


def _max_age(headers: Mapping[str, str]) -> float | None:
    """Seconds the response may be cached (Cache-Control max-age minus Age)."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    cache_control = lowered.get("cache-control", "")
    if "no-store" in cache_control.lower() or "no-cache" in cache_control.lower():
        return None
    match = _MAX_AGE.search(cache_control)
    if not match:
        return None
    age = lowered.get("age", "0").strip()
    return max(0.0, float(match.group(1)) - (float(age) if age.isdigit() else 0.0))


def parse_key_set(raw: bytes) -> dict[str, SigningKey]:
    """Parses a JWKS or an x509 map into ``kid -> SigningKey``.

    Keys of other types, curves or uses are skipped (a JWKS may carry keys
    this service does not verify with); a document that is neither form is
    an error.
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise KeysUnavailable("not JSON") from None
    if not isinstance(data, dict):
        raise KeysUnavailable("not a JSON object")
    keys: dict[str, SigningKey] = {}
    if isinstance(data.get("keys"), list):
        for jwk in data["keys"]:
            if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
                key = _from_jwk(jwk)
                if key is not None:
                    keys[jwk["kid"]] = key
        return keys
    if "keys" in data:
        raise KeysUnavailable("\"keys\" is not a list")
    for kid, cert in data.items():
        if not isinstance(cert, str):
            raise KeysUnavailable("neither a JWKS nor an x509 map")
        key = _from_certificate(cert)
        if key is not None:
            keys[kid] = key
    return keys


def _from_jwk(jwk: Mapping[str, Any]) -> SigningKey | None:
    if jwk.get("use", "sig") != "sig":
        return None
    try:
        if jwk.get("kty") == "RSA":
            public: Any = rsa.RSAPublicNumbers(_b64int(jwk["e"]), _b64int(jwk["n"])).public_key()
        elif jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            public = ec.EllipticCurvePublicNumbers(
                _b64int(jwk["x"]), _b64int(jwk["y"]), ec.SECP256R1()
            ).public_key()
        else:
            return None
    except (KeyError, TypeError, ValueError):
        _log.warning("skipping malformed JWK %r", jwk.get("kid"))
        return None
    key = _signing_key(public)
    if key is not None and jwk.get("alg", key.alg) != key.alg:
        return None
    return key


def _from_certificate(pem: str) -> SigningKey | None:
    try:
        public = x509.load_pem_x509_certificate(pem.encode("utf-8")).public_key()
    except ValueError:
        _log.warning("skipping malformed x509 certificate")
        return None
    return _signing_key(public)


def _signing_key(public: Any) -> SigningKey | None:
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < _MIN_RSA_BITS:
            return None
        alg = "RS256"
    elif isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        alg = "ES256"
    else:
        return None
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(alg=alg, pem=pem)


def _b64int(value: Any) -> int:
    if not isinstance(value, str):
        raise TypeError("JWK member is not a string")
    try:
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except binascii.Error:
        raise ValueError("JWK member is not base64url") from None
    return int.from_bytes(data, "big")
