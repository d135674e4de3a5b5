"""The dev issuer: signed JWTs the local stack accepts (never used in production).

``python -m lib.devtoken [--scope S]... [--subject EMAIL] [--ttl SECONDS]
[--audience URL]`` prints one RS256 token and nothing else on stdout, so it
composes: ``curl -H "Authorization: Bearer $(.venv/bin/python -m lib.devtoken)" ...``.

Its ``aud`` is the local API's URL, ``http://127.0.0.1:$PORT`` (PORT as for
``make run``, default 8080): the audience ``issuers_env`` configures, so a
token minted for one local stack is refused by another on a different port.

The private key is made on first use at ``.dev/dev-issuer.pem`` (repo root,
ignored by git; ``DEV_DIR`` overrides the directory), mode 0600, and its
public JWKS is written beside it for the verifier (see ``issuers_env``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

DEV_ISSUER = "https://devtoken.operations.local"
DEFAULT_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_SUBJECT = "dev@example.com"
DEFAULT_TTL = 3600
DEFAULT_PORT = 8080
_KEY_FILE = "dev-issuer.pem"
_JWKS_FILE = "dev-issuer-jwks.json"


def dev_dir_path(dev_dir: Path | None = None) -> Path:
    """Where the dev key lives: the argument, else ``DEV_DIR``, else ``<repo>/.dev``."""
    if dev_dir is not None:
        return Path(dev_dir)
    if os.environ.get("DEV_DIR"):
        return Path(os.environ["DEV_DIR"])
    return Path(__file__).resolve().parents[2] / ".dev"


def ensure_dev_key(dev_dir: Path | None = None) -> Path:
    """Makes the dev key pair if missing; returns the path of its public JWKS.

    Safe to call from several processes at once: the key file appears
    atomically (link of a finished temp file), and the first one wins.
    """
    directory = dev_dir_path(dev_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = directory / _KEY_FILE
    if not key_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_new(key_path, pem)
    jwks_path = directory / _JWKS_FILE
    public = _public_jwk(_private_key(key_path.read_bytes()))
    jwks = json.dumps({"keys": [public]}, indent=2).encode()
    if not jwks_path.exists() or jwks_path.read_bytes() != jwks:
        _replace(jwks_path, jwks)
    return jwks_path


def local_audience(port: int | str | None = None) -> str:
    """The local API's URL, the dev issuer's audience: ``http://127.0.0.1:PORT``
    (``port``, else the PORT variable, else 8080)."""
    return f"http://127.0.0.1:{port or os.environ.get('PORT') or DEFAULT_PORT}"


def mint(
    scopes: Sequence[str] = (DEFAULT_SCOPE,),
    subject: str = DEFAULT_SUBJECT,
    ttl: int = DEFAULT_TTL,
    dev_dir: Path | None = None,
    audience: str | None = None,
) -> str:
    """A signed dev token for ``subject`` with ``scopes``, valid ``ttl`` seconds,
    for ``audience`` (default ``local_audience()``)."""
    directory = dev_dir_path(dev_dir)
    ensure_dev_key(directory)
    pem = (directory / _KEY_FILE).read_bytes()
    signer = crypt.RSASigner.from_string(pem, key_id=_public_jwk(_private_key(pem))["kid"])
    now = int(time.time())
    claims = {
        "iss": DEV_ISSUER,
        "aud": audience or local_audience(),
        "sub": subject,
        "email": subject,
        "iat": now,
        "exp": now + int(ttl),
        "scope": " ".join(scopes),
    }
    token: bytes = jwt.encode(signer, claims)
    return token.decode("ascii")


def issuers_env(dev_dir: Path | None = None, audience: str | None = None) -> str:
    """The ``AUTH_ISSUERS`` value that trusts the dev issuer (via the JWKS file)
    for tokens minted for ``audience`` (default ``local_audience()``)."""
    jwks_path = ensure_dev_key(dev_dir)
    return json.dumps({DEV_ISSUER: {"keys": str(jwks_path.resolve()),
                                    "audience": audience or local_audience()}})


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: prints one token on stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m lib.devtoken", description="Print a dev bearer token for the local stack."
    )
    parser.add_argument(
        "--scope", action="append", help=f"OAuth scope (repeatable; default {DEFAULT_SCOPE})"
    )
    parser.add_argument("--subject", default=DEFAULT_SUBJECT, help="sub and email claims")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="lifetime in seconds")
    parser.add_argument("--audience", default=None,
                        help="aud claim: the local API's URL (default http://127.0.0.1:$PORT, "
                             f"PORT defaulting to {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    if args.ttl < 1:
        parser.error("--ttl must be at least 1 second")
    print(mint(scopes=args.scope or [DEFAULT_SCOPE], subject=args.subject, ttl=args.ttl,
               audience=args.audience))
    return 0


def _private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"the dev key in {_KEY_FILE} is not an RSA private key")
    return key


def _public_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The public JWK, its kid the RFC 7638 thumbprint (stable for the key)."""
    numbers = key.public_key().public_numbers()
    jwk = {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _write_new(path: Path, data: bytes) -> None:
    """Creates ``path`` (0600) with ``data`` unless another process got there first."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        with contextlib.suppress(FileExistsError):  # another process won the race
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _replace(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
