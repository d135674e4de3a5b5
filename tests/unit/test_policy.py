"""Policy: who may do what where, and the errors a bad policy file gets."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions

from lib.core import errors
from lib.core.config import ConfigError
from lib.edge.auth import Principal
from lib.edge.policy import PERMISSIONS, ROLES, Policy, check_permission, compile_pattern

ALICE = Principal("1", "alice@example.com", frozenset(), 0.0, "iss")
BOB = Principal("2", "bob@other.org", frozenset(), 0.0, "iss")
ROBOT = Principal("3", "robot@proj.iam.gserviceaccount.com", frozenset(), 0.0, "iss")
SA_SUBJECT = Principal("robot@proj.iam.gserviceaccount.com", None, frozenset(), 0.0, "iss")
NUMERIC = Principal("1101694844743", None, frozenset(), 0.0, "iss")
OP = "projects/alpha/locations/us/operations/42"


def policy(*bindings: dict[str, Any]) -> Policy:
    return Policy.from_dict({"bindings": list(bindings)})


def binding(members: list[str], resources: list[str] | None = None,
            role: str = "roles/operations.editor") -> dict[str, Any]:
    return {"members": members, "resources": resources or ["**"], "role": role}


def test_roles_are_the_contract() -> None:
    assert set(PERMISSIONS) == {"operations.get", "operations.list", "operations.wait",
                                "operations.cancel", "operations.delete", "jobs.create"}
    assert ROLES["roles/operations.viewer"] == {"operations.get", "operations.list",
                                                "operations.wait"}
    assert ROLES["roles/operations.editor"] == set(PERMISSIONS)


ALLOWS = {
    "an editor may cancel": (binding(["user:alice@example.com"]), ALICE, "operations.cancel",
                             OP, True),
    "a viewer may get": (binding(["user:alice@example.com"], role="roles/operations.viewer"),
                         ALICE, "operations.get", OP, True),
    "a viewer may wait": (binding(["user:alice@example.com"], role="roles/operations.viewer"),
                          ALICE, "operations.wait", OP, True),
    "a viewer may not cancel": (binding(["user:alice@example.com"],
                                        role="roles/operations.viewer"),
                                ALICE, "operations.cancel", OP, False),
    "a viewer may not create jobs": (binding(["user:alice@example.com"],
                                             role="roles/operations.viewer"),
                                     ALICE, "jobs.create", "projects/alpha/locations/us", False),
    "listed permissions grant exactly those": (
        {"members": ["user:alice@example.com"], "resources": ["**"],
         "permissions": ["operations.delete"]}, ALICE, "operations.delete", OP, True),
    "listed permissions grant nothing else": (
        {"members": ["user:alice@example.com"], "resources": ["**"],
         "permissions": ["operations.delete"]}, ALICE, "operations.get", OP, False),
    "another user gets nothing": (binding(["user:alice@example.com"]), BOB, "operations.get",
                                  OP, False),
    "user emails compare case-insensitively": (binding(["user:Alice@Example.com"]), ALICE,
                                               "operations.get", OP, True),
    "a serviceAccount member matches the service account": (
        binding(["serviceAccount:robot@proj.iam.gserviceaccount.com"]), ROBOT, "operations.get",
        OP, True),
    "a serviceAccount member matches a subject-only self-signed JWT": (
        binding(["serviceAccount:robot@proj.iam.gserviceaccount.com"]), SA_SUBJECT,
        "operations.get", OP, True),
    "a user member does not match a service account": (
        binding(["user:robot@proj.iam.gserviceaccount.com"]), ROBOT, "operations.get", OP, False),
    "domain matches the email's domain": (binding(["domain:EXAMPLE.com"]), ALICE,
                                          "operations.get", OP, True),
    "domain does not match another domain": (binding(["domain:example.com"]), BOB,
                                             "operations.get", OP, False),
    "domain does not match a subdomain's parent": (binding(["domain:ample.com"]), ALICE,
                                                   "operations.get", OP, False),
    "domain does not match a principal with no email": (binding(["domain:example.com"]),
                                                        NUMERIC, "operations.get", OP, False),
    "allAuthenticatedUsers matches anyone with a token": (binding(["allAuthenticatedUsers"]),
                                                          NUMERIC, "operations.get", OP, True),
    "* matches one segment": (binding(["user:alice@example.com"],
                                      ["projects/*/locations/*/operations/*"]),
                              ALICE, "operations.get", OP, True),
    "* does not match two segments": (binding(["user:alice@example.com"],
                                              ["projects/*/operations/*"]),
                                      ALICE, "operations.get", OP, False),
    "** matches several segments": (binding(["user:alice@example.com"], ["projects/alpha/**"]),
                                    ALICE, "operations.get", OP, True),
    "a trailing /** matches the list parent itself": (
        binding(["user:alice@example.com"], ["projects/alpha/**"]), ALICE, "operations.list",
        "projects/alpha", True),
    "operations/** matches the bare operations collection": (
        binding(["user:alice@example.com"], ["operations/**"]), ALICE, "operations.list",
        "operations", True),
    "a trailing /** does not match a longer sibling name": (
        binding(["user:alice@example.com"], ["projects/alpha/**"]), ALICE, "operations.get",
        "projects/alphabet/locations/us/operations/1", False),
    "a pattern does not match another project": (
        binding(["user:alice@example.com"], ["projects/alpha/**"]), ALICE, "operations.get",
        "projects/beta/locations/us/operations/1", False),
    "** in the middle": (binding(["user:alice@example.com"], ["projects/**/operations/*"]),
                         ALICE, "operations.get", OP, True),
    "a bare ** matches everything": (binding(["user:alice@example.com"], ["**"]), ALICE,
                                     "operations.get", "operations/a/b/c", True),
    "a literal pattern is not a prefix": (binding(["user:alice@example.com"], ["projects/alpha"]),
                                          ALICE, "operations.get", OP, False),
    "dots in a pattern are literal": (binding(["user:alice@example.com"], ["operations/a.b"]),
                                      ALICE, "operations.get", "operations/axb", False),
}


@pytest.mark.parametrize(("entry", "who", "permission", "resource", "allowed"),
                         ALLOWS.values(), ids=ALLOWS.keys())
def test_policy_allows(entry: dict[str, Any], who: Principal, permission: str, resource: str,
                       allowed: bool) -> None:
    assert policy(entry).allows(who, permission, resource) is allowed


def test_no_binding_means_deny() -> None:
    for permission in PERMISSIONS:
        assert not Policy.deny_all().allows(ALICE, permission, OP)
        assert not policy().allows(ALICE, permission, OP)


def test_bindings_add_up() -> None:
    combined = policy(binding(["user:alice@example.com"], ["projects/alpha/**"],
                              "roles/operations.viewer"),
                      {"members": ["user:alice@example.com"], "resources": ["projects/alpha/**"],
                       "permissions": ["operations.cancel"]})
    assert combined.allows(ALICE, "operations.cancel", OP)
    assert not combined.allows(ALICE, "operations.delete", OP)


def test_unknown_permission_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        policy(binding(["allAuthenticatedUsers"])).allows(ALICE, "operations.explode", OP)


def test_check_permission_denies_with_errorinfo_and_one_audit_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    viewer = policy(binding(["user:alice@example.com"], role="roles/operations.viewer"))
    check_permission(viewer, ALICE, "operations.get", OP)
    with (
        caplog.at_level(logging.WARNING, logger="operations.audit"),
        pytest.raises(exceptions.PermissionDenied) as caught,
    ):
        check_permission(viewer, ALICE, "operations.cancel", OP)
    assert caught.value.reason == errors.IAM_PERMISSION_DENIED
    assert caught.value.metadata == {"permission": "operations.cancel", "resource": OP}
    (record,) = [r for r in caplog.records if r.name == "operations.audit"]
    assert record.json_fields == {"principal": "alice@example.com",  # type: ignore[attr-defined]
                                  "permission": "operations.cancel", "resource": OP,
                                  "reason": errors.IAM_PERMISSION_DENIED}


def test_denial_reads_the_same_whether_the_resource_exists_or_not() -> None:
    denied = []
    for resource in (OP, "projects/alpha/locations/us/operations/does-not-exist"):
        with pytest.raises(exceptions.PermissionDenied) as caught:
            check_permission(Policy.deny_all(), ALICE, "operations.get", resource)
        denied.append(caught.value.message.replace(resource, "<name>"))
    assert denied[0] == denied[1]


def test_policy_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"bindings": [binding(["domain:example.com"],
                                                     ["projects/alpha/**"])]}))
    assert Policy.from_file(str(path)).allows(ALICE, "jobs.create", "projects/alpha/locations/x")


BAD_FILES = {
    "not JSON": ("{bindings: [}", "not valid JSON"),
    "a list at the top": ("[]", "JSON object"),
    "no bindings": ("{}", "bindings"),
    "an unknown top-level field": ('{"bindings": [], "etag": "x"}', "etag"),
    "bindings not a list": ('{"bindings": {}}', "bindings"),
    "an unknown role": (json.dumps({"bindings": [binding(["allAuthenticatedUsers"],
                                                        role="roles/owner")]}),
                        "roles/owner"),
    "an unknown permission": (json.dumps({"bindings": [{"members": ["allAuthenticatedUsers"],
                                                        "resources": ["**"],
                                                        "permissions": ["operations.nuke"]}]}),
                              "operations.nuke"),
    "both role and permissions": (json.dumps({"bindings": [{
        "members": ["allAuthenticatedUsers"], "resources": ["**"],
        "role": "roles/operations.viewer", "permissions": ["operations.get"]}]}), "exactly one"),
    "neither role nor permissions": (json.dumps({"bindings": [{
        "members": ["allAuthenticatedUsers"], "resources": ["**"]}]}), "exactly one"),
    "a member without a kind": (json.dumps({"bindings": [binding(["alice@example.com"])]}),
                                "alice@example.com"),
    "allUsers (no anonymous access here)": (json.dumps({"bindings": [binding(["allUsers"])]}),
                                            "allUsers"),
    "a user that is not an email": (json.dumps({"bindings": [binding(["user:alice"])]}),
                                    "user:alice"),
    "a partial wildcard": (json.dumps({"bindings": [binding(["allAuthenticatedUsers"],
                                                            ["projects/al*"])]}),
                           "projects/al*"),
    "an empty segment": (json.dumps({"bindings": [binding(["allAuthenticatedUsers"],
                                                          ["projects//x"])]}),
                         "projects//x"),
    "missing members": (json.dumps({"bindings": [{"resources": ["**"],
                                                  "role": "roles/operations.viewer"}]}),
                        "members"),
    "empty resources": (json.dumps({"bindings": [{"members": ["allAuthenticatedUsers"],
                                                  "resources": [],
                                                  "role": "roles/operations.viewer"}]}),
                        "resources"),
    "a misspelt field": (json.dumps({"bindings": [{"members": ["allAuthenticatedUsers"],
                                                   "resource": ["**"],
                                                   "role": "roles/operations.viewer"}]}),
                         "resource"),
}


@pytest.mark.parametrize(("text", "problem"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_policy_file_is_a_config_error_naming_file_and_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "bad-policy.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        Policy.from_file(str(path))
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=r"nope\.json"):
        Policy.from_file(str(path))


@pytest.mark.parametrize(("pattern", "name", "matches"), [
    ("operations/**", "operations", True),
    ("operations/**", "operations/a/b", True),
    ("operations/**", "operationsx", False),
    ("projects/*", "projects/p", True),
    ("projects/*", "projects", False),
    ("projects/*", "projects/p/q", False),
])
def test_compile_pattern(pattern: str, name: str, matches: bool) -> None:
    import re

    assert bool(re.fullmatch(compile_pattern(pattern), name)) is matches
