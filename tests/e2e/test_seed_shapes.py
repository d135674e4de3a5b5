"""Every seed name shape holds real operations: the create route of each shape,
List directly under a parent, the policy on ``operations/**``, each surface's
scopes, and the create's ``timeout`` (the operation's deadline)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from test_http_errors import assert_error

DIALOGFLOW = "https://www.googleapis.com/auth/dialogflow"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


@dataclass(frozen=True)
class Seed:
    surface: str
    create: str  # the create path; {p}: this test's project
    parent: str  # the parent its operations are listed under
    deeper: str | None = None  # a parent under it, whose list must not show them
    wider: str | None = None  # a parent above it, whose list must not show them

    def create_path(self, project: str) -> str:
        return f"/{self.surface}/" + self.create.format(p=project)

    def parent_of(self, project: str) -> str:
        return self.parent.format(p=project)

    def shape(self, project: str) -> str:
        return self.parent_of(project) + "/operations/" if self.parent != "operations" \
            else "operations/"


SEEDS = {
    "POST /v1/jobs -> operations/{id}": Seed("v1", "jobs", "operations",
                                              deeper="projects/{p}/locations/us"),
    "POST /v1/projects/P/locations/L/jobs": Seed("v1", "projects/{p}/locations/us/jobs",
                                                 "projects/{p}/locations/us"),
    "POST /v3beta1/projects/P/jobs": Seed("v3beta1", "projects/{p}/jobs", "projects/{p}",
                                          deeper="projects/{p}/locations/us"),
    "POST /v3beta1/projects/P/locations/L/jobs": Seed(
        "v3beta1", "projects/{p}/locations/us/jobs", "projects/{p}/locations/us",
        wider="projects/{p}"),
}
seeds = pytest.mark.parametrize("seed", SEEDS.values(), ids=SEEDS.keys())


def _headers(stack, seed: Seed, **kwargs):
    """v3beta1 is driven with a dialogflow-only token, v1 with cloud-platform."""
    return stack.headers(DIALOGFLOW if seed.surface == "v3beta1" else CLOUD_PLATFORM, **kwargs)


def _create(api, stack, seed, project, **body):
    body.setdefault("kind", "demo.countdown")
    body.setdefault("params", {"steps": 5, "stepSeconds": 30})
    response = api("POST", seed.create_path(project), json=body, headers=_headers(stack, seed))
    assert response.status_code == 200, response.text
    return response.json()


def _list_names(api, stack, seed, parent, filter_text=""):
    path = f"/{seed.surface}/{parent}" + ("" if parent == "operations" else "/operations")
    response = api("GET", path,
                   params={"filter": filter_text, "pageSize": 1000} if filter_text
                   else {"pageSize": 1000},
                   headers=_headers(stack, seed))
    assert response.status_code == 200, response.text
    return [op["name"] for op in response.json().get("operations", [])]


def _poll(api, path, headers, until, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        operation = api("GET", path, headers=headers).json()
        if until(operation):
            return operation
        assert time.monotonic() < deadline, f"gave up waiting: {operation}"
        time.sleep(0.05)


@seeds
def test_each_create_route_makes_live_operations_in_its_seed_shape(api, stack, unique, seed):
    project = f"p-{unique}"
    started = datetime.now().astimezone()
    created = _create(api, stack, seed, project)
    name = created["name"]
    prefix = seed.shape(project)
    assert name.startswith(prefix) and "/" not in name[len(prefix):], name
    headers = _headers(stack, seed)
    path = f"/{seed.surface}/{name}"

    running = _poll(api, path, headers, lambda op: op["metadata"]["value"]["attempt"] >= 1)
    assert not running.get("done")
    since = started.isoformat(timespec="seconds")
    listed = _list_names(api, stack, seed, seed.parent_of(project),
                         f'metadata.createTime >= "{since}"')
    assert name in listed
    for other in (seed.deeper, seed.wider):
        if other:
            assert name not in _list_names(api, stack, seed, other.format(p=project))

    cancelled = api("POST", f"{path}:cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    waited = api("POST", f"{path}:wait", json={"timeout": "20s"}, headers=headers)
    assert waited.status_code == 200, waited.text
    assert waited.json()["done"] is True and waited.json()["error"]["code"] == 1

    assert api("DELETE", path, headers=headers).status_code == 200
    assert_error(api("GET", path, headers=headers), 404, "NOT_FOUND", "OPERATION_NOT_FOUND")


def test_list_on_operations_shows_only_names_directly_under_it(api, stack, unique):
    seed = SEEDS["POST /v1/jobs -> operations/{id}"]
    flat = _create(api, stack, seed, "unused", params={"steps": 1, "stepSeconds": 0})["name"]
    located = _create(api, stack, SEEDS["POST /v1/projects/P/locations/L/jobs"], f"p-{unique}",
                      params={"steps": 1, "stepSeconds": 0})["name"]
    names = _list_names(api, stack, seed, "operations")
    assert flat in names
    assert located not in names
    assert all(n.startswith("operations/") for n in names)


def test_v3beta1_accepts_a_dialogflow_only_token_and_v1_refuses_it(api, stack, unique):
    dialogflow = stack.headers(DIALOGFLOW)
    body = {"kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}}
    ok = api("POST", f"/v3beta1/projects/p-{unique}/jobs", json=body, headers=dialogflow)
    assert ok.status_code == 200, ok.text
    for path in ("/v1/jobs", f"/v1/projects/p-{unique}/locations/us/jobs"):
        refused = api("POST", path, json=body, headers=dialogflow)
        assert_error(refused, 403, "PERMISSION_DENIED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    flat = api("POST", "/v1/jobs", json=body, headers=stack.headers()).json()["name"]
    for method, suffix in (("GET", ""), ("POST", ":cancel"), ("DELETE", "")):
        assert_error(api(method, f"/v1/{flat}{suffix}", headers=dialogflow), 403,
                     "PERMISSION_DENIED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT")
    assert_error(api("GET", "/v1/operations", headers=dialogflow), 403, "PERMISSION_DENIED",
                 "ACCESS_TOKEN_SCOPE_INSUFFICIENT")


def test_the_policy_matches_operations_names_like_any_other(api, stack, unique):
    body = {"kind": "demo.countdown", "params": {"steps": 5, "stepSeconds": 30}}
    olga = stack.headers(subject="olga@example.com")  # editor on operations/** only
    created = api("POST", "/v1/jobs", json=body, headers=olga)
    assert created.status_code == 200, created.text
    name = created.json()["name"]
    assert api("GET", f"/v1/{name}", headers=olga).status_code == 200
    assert api("GET", "/v1/operations", headers=olga).status_code == 200
    assert api("POST", f"/v1/{name}:cancel", headers=olga).status_code == 200
    assert_error(api("POST", f"/v1/projects/p-{unique}/locations/us/jobs", json=body,
                     headers=olga), 403, "PERMISSION_DENIED", "IAM_PERMISSION_DENIED")

    bob = stack.headers(subject="bob@example.com")  # editor on projects/beta/** only
    for method, path in (("POST", "/v1/jobs"), ("GET", f"/v1/{name}"),
                         ("POST", f"/v1/{name}:cancel"), ("GET", "/v1/operations")):
        response = api(method, path, json=body if path == "/v1/jobs" else None, headers=bob)
        assert_error(response, 403, "PERMISSION_DENIED", "IAM_PERMISSION_DENIED")


def test_a_timeout_sets_the_operations_deadline(api, stack, unique):
    seed = SEEDS["POST /v3beta1/projects/P/jobs"]
    quick = {"steps": 1, "stepSeconds": 0}  # no worker held for the rest of the session
    created = _create(api, stack, seed, f"p-{unique}", timeout="3600.5s", params=quick)
    meta = created["metadata"]["value"]

    def parse(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    assert parse(meta["deadline"]) - parse(meta["createTime"]) == timedelta(seconds=3600.5)
    assert stack.store.get(created["name"])["deadline"] == parse(meta["deadline"])
    without = _create(api, stack, seed, f"p-{unique}", params=quick)
    assert "deadline" not in without["metadata"]["value"]


@pytest.mark.parametrize("timeout", ["0s", "-5s", "604801s", "10", "1h", 5, None.__class__],
                         ids=["zero", "negative", "over seven days", "no unit", "hours",
                              "a number", "an object"])
def test_a_bad_timeout_is_400_and_creates_nothing(api, stack, unique, timeout):
    seed = SEEDS["POST /v1/projects/P/locations/L/jobs"]
    project = f"p-{unique}"
    value = {"x": 1} if timeout is None.__class__ else timeout
    response = api("POST", seed.create_path(project), headers=stack.headers(),
                   json={"kind": "demo.countdown", "params": {"steps": 1}, "timeout": value})
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_DURATION")
    assert _list_names(api, stack, seed, seed.parent_of(project)) == []


def test_seven_days_is_the_longest_timeout(api, stack, unique):
    seed = SEEDS["POST /v1/jobs -> operations/{id}"]
    created = _create(api, stack, seed, "unused", timeout="604800s",
                      params={"steps": 1, "stepSeconds": 0})
    assert "deadline" in created["metadata"]["value"]
