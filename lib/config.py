"""Settings, read once from the environment into a frozen dataclass.

Environment variables (all optional):

    GOOGLE_CLOUD_PROJECT            project id (default ``demo-local``)
    OPERATIONS_COLLECTION           Firestore collection (default ``operations``)
    OPERATIONS_TOPIC                Pub/Sub topic id the worker listens on
                                    (default ``operations-jobs``)
    OPERATIONS_POLICY_FILE          IAM-style policy JSON; unset means deny all
    OPERATIONS_KIND_MODULES         comma-separated Python modules imported at start
                                    that register your own kinds (``lib.kinds.register``)
    OPERATIONS_SURFACES_FILE        route table JSON replacing the built-in
                                    ``v1``/``v3beta1`` surfaces
    AUTH_ISSUERS                    JSON object: issuer -> {"keys": URL or path,
                                    "audience": the aud its tokens must carry};
                                    keys are a JWKS or an x509 map (kid -> PEM
                                    certificate); the audience is required
    AUTH_TOKENINFO_URL              endpoint for opaque access tokens
                                    (default Google's; empty disables them)
    AUTH_CLOCK_SKEW_SECONDS         allowed clock skew (default 5)
    AUTH_MAX_TOKEN_LIFETIME_SECONDS maximum ``exp - iat`` (default 3600)
    AUTH_MAX_TOKEN_LENGTH           longer tokens are refused (default 4096)
    AUTH_HTTP_TIMEOUT_SECONDS       key and tokeninfo fetch timeout (default 5)
    AUTH_KEYS_REFRESH_SECONDS       minimum gap between key re-fetches on an
                                    unknown ``kid`` (default 60)
    TRUST_FORWARDED_AUTHORIZATION   "true" to accept X-Forwarded-Authorization
    MAX_REQUEST_BYTES               request body limit (default 65536)
    WAIT_MAX_SECONDS                longest ``:wait`` (default 60)
    MAX_OPERATION_TIMEOUT           longest ``timeout`` a create may give an
                                    operation: a Duration such as ``604800s``
                                    or plain seconds (default 7 days)
    FIRESTORE_DEADLINE_SECONDS      deadline of each Firestore call, retries of
                                    transient failures included (default 10)
    LEASE_SECONDS                   worker lease length (default 60)
    HEARTBEAT_SECONDS               lease renewal and cancel poll (default 5)
    PROGRESS_MIN_INTERVAL_SECONDS   progress write throttle (default 1)
    CANCEL_LISTENER                 "false" leaves cancellation to the poll
    CANCEL_GRACE_SECONDS            how long a handler may run on after it saw its
                                    cancel before the worker ends the operation
                                    without it (default 30; a kind may set its own)
    MAX_ATTEMPTS                    tries of a job whose handler fails for an
                                    unexpected reason, or whose workers keep
                                    dying, before it ends with an error (default 3)
    RETRY_BACKOFF_SECONDS           first wait before a retry; doubles (default 1)
    SLICE_SECONDS                   a job running longer than this ends its slice
                                    at its next checkpoint and continues in a new
                                    invocation (default 480, under the 540 s
                                    limit of a Pub/Sub-triggered function)
    SWEEP_QUEUED_AFTER_SECONDS      a QUEUED operation older than this is
                                    re-published by the sweep (default 120)
    LIST_SCAN_LIMIT                 documents one List call reads at most for a
                                    filter Firestore cannot run (default 1000)
    RETENTION_DAYS                  ``expireTime`` of finished operations
                                    (default 30, AIP-151)
    LOG_LEVEL                       minimum log severity (default INFO)
    PAGE_TOKEN_SECRET               key that signs list page tokens; set the
                                    same value on every instance (without it
                                    the key is derived from the project and
                                    collection: tokens are then forgeable)
    OPERATIONS_EVENTS_TOPIC         Pub/Sub topic id of the lifecycle events
                                    (CANCEL_REQUESTED, DONE); unset: no events
    OTEL_*                          the standard OpenTelemetry variables, read
                                    by lib/otel_setup.py and the SDK (exporters,
                                    endpoint, service name, sampler)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TOKENINFO_URL = "https://oauth2.googleapis.com/tokeninfo"


class ConfigError(ValueError):
    """A setting has a value the service cannot start with."""


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted JWT issuer: where its public keys live, and the audience
    (``aud``) its tokens must name: this service, not another one."""

    issuer: str
    keys: str
    audience: str


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, validated."""

    project: str = "demo-local"
    collection: str = "operations"
    topic: str = "operations-jobs"
    policy_file: str | None = None
    surfaces_file: str | None = None
    kind_modules: tuple[str, ...] = ()
    issuers: tuple[IssuerConfig, ...] = ()
    tokeninfo_url: str | None = DEFAULT_TOKENINFO_URL
    clock_skew_seconds: int = 5
    max_token_lifetime_seconds: int = 3600
    max_token_length: int = 4096
    auth_http_timeout_seconds: float = 5.0
    keys_refresh_seconds: float = 60.0
    trust_forwarded_authorization: bool = False
    max_request_bytes: int = 64 * 1024
    wait_max_seconds: float = 60.0
    max_operation_timeout_seconds: float = 7 * 86400.0
    firestore_deadline_seconds: float = 10.0
    lease_seconds: float = 60.0
    heartbeat_seconds: float = 5.0
    progress_min_interval_seconds: float = 1.0
    cancel_listener: bool = True
    cancel_grace_seconds: float = 30.0
    max_attempts: int = 3
    retry_backoff_seconds: float = 1.0
    slice_seconds: float = 480.0
    sweep_queued_after_seconds: float = 120.0
    list_scan_limit: int = 1000
    retention_days: float = 30.0
    log_level: str = "INFO"
    page_token_secret: str | None = None
    events_topic: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings; raises ConfigError naming the variable."""
        env = os.environ if environ is None else environ
        tokeninfo = env.get("AUTH_TOKENINFO_URL", DEFAULT_TOKENINFO_URL).strip()
        return cls(
            project=env.get("GOOGLE_CLOUD_PROJECT") or "demo-local",
            collection=env.get("OPERATIONS_COLLECTION") or "operations",
            topic=env.get("OPERATIONS_TOPIC") or "operations-jobs",
            policy_file=env.get("OPERATIONS_POLICY_FILE") or None,
            surfaces_file=env.get("OPERATIONS_SURFACES_FILE") or None,
            kind_modules=tuple(m.strip() for m in env.get("OPERATIONS_KIND_MODULES", "").split(",")
                               if m.strip()),
            issuers=_issuers(env.get("AUTH_ISSUERS", "")),
            tokeninfo_url=tokeninfo or None,
            clock_skew_seconds=_int(env, "AUTH_CLOCK_SKEW_SECONDS", 5, 0, 300),
            max_token_lifetime_seconds=_int(
                env, "AUTH_MAX_TOKEN_LIFETIME_SECONDS", 3600, 60, 86400
            ),
            max_token_length=_int(env, "AUTH_MAX_TOKEN_LENGTH", 4096, 256, 65536),
            auth_http_timeout_seconds=_float(env, "AUTH_HTTP_TIMEOUT_SECONDS", 5.0, 0.1, 60),
            keys_refresh_seconds=_float(env, "AUTH_KEYS_REFRESH_SECONDS", 60.0, 0, 3600),
            trust_forwarded_authorization=_bool(env, "TRUST_FORWARDED_AUTHORIZATION"),
            max_request_bytes=_int(env, "MAX_REQUEST_BYTES", 64 * 1024, 1024, 32 * 1024 * 1024),
            wait_max_seconds=_float(env, "WAIT_MAX_SECONDS", 60.0, 0, 3600),
            max_operation_timeout_seconds=_seconds(env, "MAX_OPERATION_TIMEOUT", 7 * 86400.0,
                                                   1, 366 * 86400),
            firestore_deadline_seconds=_float(env, "FIRESTORE_DEADLINE_SECONDS", 10.0, 0.5, 300),
            lease_seconds=_float(env, "LEASE_SECONDS", 60.0, 1, 3600),
            heartbeat_seconds=_float(env, "HEARTBEAT_SECONDS", 5.0, 0.05, 600),
            progress_min_interval_seconds=_float(
                env, "PROGRESS_MIN_INTERVAL_SECONDS", 1.0, 0, 60
            ),
            cancel_listener=_bool(env, "CANCEL_LISTENER", default=True),
            cancel_grace_seconds=_float(env, "CANCEL_GRACE_SECONDS", 30.0, 0, 3600),
            max_attempts=_int(env, "MAX_ATTEMPTS", 3, 1, 100),
            retry_backoff_seconds=_float(env, "RETRY_BACKOFF_SECONDS", 1.0, 0, 300),
            slice_seconds=_float(env, "SLICE_SECONDS", 480.0, 0.1, 3600),
            sweep_queued_after_seconds=_float(env, "SWEEP_QUEUED_AFTER_SECONDS", 120.0, 1, 86400),
            list_scan_limit=_int(env, "LIST_SCAN_LIMIT", 1000, 10, 100_000),
            retention_days=_float(env, "RETENTION_DAYS", 30.0, 0.0001, 3650),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            page_token_secret=env.get("PAGE_TOKEN_SECRET") or None,
            events_topic=(env.get("OPERATIONS_EVENTS_TOPIC") or "").strip() or None,
        )


def _int(env: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{key} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, low: float, high: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{key} must be between {low} and {high}, got {value}")
    return value


def _seconds(env: Mapping[str, str], key: str, default: float, low: float,
             high: float) -> float:
    """A duration: plain seconds, or a Duration string with its ``s`` suffix."""
    raw = env.get(key, "").strip()
    return _float({key: raw[:-1] if raw.endswith("s") else raw}, key, default, low, high)


def _bool(env: Mapping[str, str], key: str, default: bool = False) -> bool:
    raw = env.get(key, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key} must be true or false, got {raw!r}")


def _issuers(raw: str) -> tuple[IssuerConfig, ...]:
    if not raw.strip():
        return ()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"AUTH_ISSUERS is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("AUTH_ISSUERS must be a JSON object: issuer -> {\"keys\": ...}")
    issuers = []
    for issuer, spec in data.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("keys"), str):
            raise ConfigError(f"AUTH_ISSUERS[{issuer!r}] needs a \"keys\" URL or path")
        audience = spec.get("audience")
        # RFC 8725 section 3.9: without an audience, a JWT this issuer made for
        # another service (a Google API, say) would be accepted here too.
        if not isinstance(audience, str) or not audience.strip():
            raise ConfigError(
                f"AUTH_ISSUERS[{issuer!r}] needs an \"audience\": the aud its tokens must "
                f"carry for this service (for example the API's URL), so that a token it "
                f"made for another service is refused")
        issuers.append(IssuerConfig(issuer=issuer, keys=spec["keys"], audience=audience))
    return tuple(issuers)
