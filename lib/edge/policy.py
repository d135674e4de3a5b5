"""IAM-style authorization: bindings of members to roles on resource patterns.

The policy file (``OPERATIONS_POLICY_FILE``)::

    {"bindings": [{"members": ["user:alice@example.com"],
                   "resources": ["projects/alpha/**"],
                   "role": "roles/operations.editor"}]}

A binding names a ``role`` or lists ``permissions`` (exactly one of the two).
Patterns are AIP-127 names: ``*`` is one segment, ``**`` one or more, and a
trailing ``/**`` also covers the prefix itself (the list parent). Anything
not granted is denied. The file is validated whole at start-up, so a typo
stops the service instead of silently denying (or allowing) requests.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions

from lib.core import errors
from lib.core.config import ConfigError
from lib.edge.auth import Principal

PERMISSIONS = (
    "operations.get",
    "operations.list",
    "operations.wait",
    "operations.cancel",
    "operations.delete",
    "jobs.create",
)
_VIEWER = frozenset({"operations.get", "operations.list", "operations.wait"})
ROLES: dict[str, frozenset[str]] = {
    "roles/operations.viewer": _VIEWER,
    "roles/operations.editor": frozenset(PERMISSIONS),
}

_audit = logging.getLogger("operations.audit")
_EMAIL = re.compile(r"[^@\s:]+@[^@\s:]+\.[^@\s:]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
# A literal name segment: no "/", no wildcard, nothing that cannot be in a URL path.
_LITERAL = re.compile(r"[A-Za-z0-9\-._~%!$&'()+,;=:@]+")
_SEGMENT = r"[^/]+"
_SEGMENTS = r"[^/]+(?:/[^/]+)*"
_FIELDS = {"members", "resources", "role", "permissions"}


@dataclass(frozen=True)
class _Binding:
    """One binding, compiled: who (lowercased members), what, where."""

    members: frozenset[str]
    domains: frozenset[str]
    all_authenticated: bool
    permissions: frozenset[str]
    resources: re.Pattern[str]

    def covers(self, principal: Principal) -> bool:
        if self.all_authenticated or principal.member.lower() in self.members:
            return True
        kind, _, identity = principal.member.partition(":")
        if kind == "subject" or not self.domains:
            return False
        return identity.rpartition("@")[2].lower() in self.domains


class Policy:
    """A validated, compiled set of bindings; immutable and thread-safe."""

    def __init__(self, bindings: tuple[_Binding, ...] = ()) -> None:
        self._bindings = bindings

    @classmethod
    def deny_all(cls) -> Policy:
        """The policy when none is configured: nobody may do anything."""
        return cls(())

    @classmethod
    def from_file(cls, path: str) -> Policy:
        """Reads and validates a policy file; ConfigError names the file and the problem."""
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            raise ConfigError(f"policy file {path}: cannot read it: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"policy file {path}: not UTF-8 text") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"policy file {path}: not valid JSON ({exc.msg} at line {exc.lineno}, "
                f"column {exc.colno})"
            ) from None
        except RecursionError:
            raise ConfigError(f"policy file {path}: JSON nested too deeply") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"policy file {path}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Validates and compiles a policy; ConfigError says which field is wrong."""
        if not isinstance(data, Mapping):
            raise ConfigError("the policy must be a JSON object with \"bindings\"")
        unknown = set(data) - {"bindings"}
        if unknown:
            raise ConfigError(f"unknown field {min(unknown)!r} (expected \"bindings\")")
        bindings = data.get("bindings")
        if not isinstance(bindings, list):
            raise ConfigError("missing \"bindings\" (a list)")
        return cls(tuple(_binding(b, f"bindings[{i}]") for i, b in enumerate(bindings)))

    def allows(self, principal: Principal, permission: str, resource: str) -> bool:
        """Whether any binding grants ``permission`` on ``resource`` to the caller."""
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        return any(
            permission in b.permissions and b.covers(principal) and b.resources.fullmatch(resource)
            for b in self._bindings
        )


def check_permission(policy: Policy, principal: Principal, permission: str, resource: str) -> None:
    """Raises PermissionDenied (and writes one audit line) unless the policy allows.

    The message is the same whether the resource exists or not, so a denial
    reveals nothing about it.
    """
    if policy.allows(principal, permission, resource):
        return
    _audit.warning(
        "permission denied: %s %s on %s",
        principal.id,
        permission,
        resource,
        extra={
            "json_fields": {
                "principal": principal.id,
                "permission": permission,
                "resource": resource,
                "reason": errors.IAM_PERMISSION_DENIED,
            }
        },
    )
    raise errors.error(
        exceptions.PermissionDenied,
        f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).",
        errors.IAM_PERMISSION_DENIED,
        permission=permission,
        resource=resource,
    )


def compile_pattern(pattern: str) -> str:
    """The regex (for fullmatch) of one AIP-127 resource pattern.

    Raises:
        ConfigError: an empty segment, or a wildcard inside a segment.
    """
    if pattern == "**":
        return _SEGMENTS
    segments = pattern.split("/")
    parts = []
    for segment in segments:
        if segment == "*":
            parts.append(_SEGMENT)
        elif segment == "**":
            parts.append(_SEGMENTS)
        elif _LITERAL.fullmatch(segment):
            parts.append(re.escape(segment))
        else:
            raise ConfigError(
                f"bad resource pattern {pattern!r}: each segment must be a name, '*' or '**'"
            )
    if len(segments) > 1 and segments[-1] == "**":
        # A trailing /** also covers the prefix: projects/alpha/** grants the
        # list parent projects/alpha itself.
        return "/".join(parts[:-1]) + f"(?:/{_SEGMENTS})?"
    return "/".join(parts)


def _binding(data: Any, where: str) -> _Binding:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a JSON object")
    unknown = set(data) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown field {min(unknown)!r}")
    if ("role" in data) == ("permissions" in data):
        raise ConfigError(f"{where}: needs exactly one of \"role\" or \"permissions\"")
    if "role" in data:
        if data["role"] not in ROLES:
            raise ConfigError(
                f"{where}.role: unknown role {data['role']!r} (known: {', '.join(ROLES)})"
            )
        permissions = ROLES[data["role"]]
    else:
        listed = _strings(data, "permissions", where)
        for permission in listed:
            if permission not in PERMISSIONS:
                raise ConfigError(f"{where}.permissions: unknown permission {permission!r}")
        permissions = frozenset(listed)
    members, domains, everyone = set(), set(), False
    for member in _strings(data, "members", where):
        kind, _, value = member.partition(":")
        if member == "allAuthenticatedUsers":
            everyone = True
        elif kind in ("user", "serviceAccount") and _EMAIL.fullmatch(value):
            members.add(member.lower())
        elif kind == "domain" and _DOMAIN.fullmatch(value):
            domains.add(value.lower())
        else:
            raise ConfigError(
                f"{where}.members: bad member {member!r} (expected user:EMAIL, "
                "serviceAccount:EMAIL, domain:DOMAIN or allAuthenticatedUsers)"
            )
    patterns = []
    for pattern in _strings(data, "resources", where):
        try:
            patterns.append(compile_pattern(pattern))
        except ConfigError as exc:
            raise ConfigError(f"{where}.resources: {exc}") from None
    return _Binding(
        members=frozenset(members),
        domains=frozenset(domains),
        all_authenticated=everyone,
        permissions=permissions,
        resources=re.compile("|".join(f"(?:{p})" for p in patterns)),
    )


def _strings(data: Mapping[str, Any], field: str, where: str) -> list[str]:
    value = data.get(field)
    if field not in data:
        raise ConfigError(f"{where}: missing \"{field}\"")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{field}: must be a non-empty list of strings")
    return value
