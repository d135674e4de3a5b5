"""Who may do what, over HTTP: the policy in tests/e2e/policy.json.

alice: viewer on projects/alpha; bob and a service account: editors on
projects/beta; anyone in domain corp.example: editor on projects/corp; any
authenticated caller: get and list on projects/public.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lib.core import model
from lib.tools import devtoken
from lib.tools.localstack import REPO, Process, free_port
from tests.waiting import wait_for

ALICE, BOB = "alice@example.com", "bob@example.com"
ROBOT, CAROL, EVE = "robot@ci.iam.gserviceaccount.com", "carol@corp.example", "eve@example.org"


@pytest.fixture
def ops(stack, unique):
    """One existing, long-running operation in each project of the policy."""
    names = {}
    for project in ("alpha", "beta", "corp", "public"):
        parent = f"projects/{project}/locations/l{unique}"
        name = f"{parent}/operations/op"
        stack.store.create(model.new_job(name=name, parent=parent, target=f"{parent}/jobs/op",
                                         kind="demo.countdown", params={"steps": 1},
                                         created_by="t", now=model.utcnow()))
        names[project] = name
    return names


def request(api, stack, who, method, target, surface="v1"):
    """Sends ``method`` on ``target`` (an operation name or a parent) as ``who``."""
    headers = stack.headers(subject=who)
    if method == "get":
        return api("GET", f"/{surface}/{target}", headers=headers)
    if method == "list":
        return api("GET", f"/{surface}/{target}/operations", headers=headers)
    if method == "wait":
        return api("POST", f"/{surface}/{target}:wait", json={"timeout": "0s"}, headers=headers)
    if method == "cancel":
        return api("POST", f"/{surface}/{target}:cancel", headers=headers)
    if method == "delete":
        return api("DELETE", f"/{surface}/{target}", headers=headers)
    return api("POST", f"/{surface}/{target}/jobs", headers=headers,
               json={"kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}})


TABLE = [
    # who, role, project, method, status
    (ALICE, "viewer", "alpha", "get", 200), (ALICE, "viewer", "alpha", "list", 200),
    (ALICE, "viewer", "alpha", "wait", 200), (ALICE, "viewer", "alpha", "cancel", 403),
    (ALICE, "viewer", "alpha", "delete", 403), (ALICE, "viewer", "alpha", "create", 403),
    (ALICE, "nothing", "beta", "get", 403), (ALICE, "nothing", "beta", "list", 403),
    (ALICE, "nothing", "beta", "cancel", 403), (ALICE, "nothing", "beta", "wait", 403),
    (BOB, "editor", "beta", "get", 200), (BOB, "editor", "beta", "cancel", 200),
    (BOB, "editor", "beta", "create", 200), (BOB, "editor", "beta", "delete", 200),
    (BOB, "nothing", "alpha", "get", 403), (BOB, "nothing", "alpha", "cancel", 403),
    (BOB, "nothing", "alpha", "delete", 403), (BOB, "nothing", "alpha", "create", 403),
    (ROBOT, "editor", "beta", "cancel", 200), (ROBOT, "nothing", "alpha", "list", 403),
    (CAROL, "domain editor", "corp", "cancel", 200), (CAROL, "domain editor", "corp", "list", 200),
    (CAROL, "nothing", "beta", "get", 403),
    (EVE, "allAuthenticatedUsers", "public", "get", 200),
    (EVE, "allAuthenticatedUsers", "public", "list", 200),
    (EVE, "allAuthenticatedUsers", "public", "wait", 403),
    (EVE, "allAuthenticatedUsers", "public", "cancel", 403),
    (EVE, "nothing", "alpha", "get", 403),
]


@pytest.mark.parametrize(("who", "role", "project", "method", "status"), TABLE,
                         ids=[f"{w.split('@')[0]} ({r}) {m} in {p} is {s}"
                              for w, r, p, m, s in TABLE])
def test_the_policy_decides(api, stack, ops, unique, who, role, project, method, status):
    name = ops[project]
    target = name.rsplit("/", 2)[0] if method in ("list", "create") else name
    response = request(api, stack, who, method, target)
    assert response.status_code == status, response.text
    if status == 403:
        error = response.json()["error"]
        assert error["status"] == "PERMISSION_DENIED"
        assert error["details"][0]["reason"] == "IAM_PERMISSION_DENIED"
        assert_unchanged(stack, name, method)
    else:
        assert_done(stack, response, name, method)


def assert_done(stack, response, name, method):
    """An allowed call did what it says: the body and the stored operation show it."""
    body = response.json()
    if method in ("get", "wait"):
        assert body["name"] == name
    elif method == "list":
        assert name in [operation["name"] for operation in body["operations"]]
    elif method == "cancel":
        assert body == {}
        record = stack.store.get(name)
        assert record["cancelRequested"] is True
        assert model.operation_json(record)["metadata"]["value"]["requestedCancellation"]
    elif method == "delete":
        assert body == {}
        assert stack.store.get(name) is None
    else:
        parent = name.rsplit("/operations/", 1)[0]
        assert body["name"].startswith(f"{parent}/operations/")
        assert stack.store.get(body["name"])["createdBy"] != ""


def assert_unchanged(stack, name, method):
    """A denied call changed nothing."""
    record = stack.store.get(name)
    assert record is not None
    assert record["cancelRequested"] is False
    if method == "create":
        parent = name.rsplit("/operations/", 1)[0]
        listed = stack.store.list_page(parent, matches=lambda r: True, equalities={},
                                       bounds=[], size=10, after=None, now=model.utcnow())
        assert [r["name"] for r in listed.records] == [name]


@pytest.mark.parametrize("method", ["get", "cancel", "delete", "wait"])
@pytest.mark.parametrize("surface", ["v1", "v3beta1"])
def test_a_denial_is_the_same_whether_or_not_the_operation_exists(api, stack, ops, unique,
                                                                   method, surface):
    existing = ops["beta"]
    missing = existing.rsplit("/", 1)[0] + "/no-such-op"
    answers = [request(api, stack, ALICE, method, name, surface) for name in (existing, missing)]
    assert [a.status_code for a in answers] == [403, 403]
    # Each names the resource asked for; with that name taken out they are identical.
    bodies = [a.text.replace(name, "NAME") for a, name in zip(answers, (existing, missing),
                                                              strict=True)]
    assert bodies[0] == bodies[1]
    assert request(api, stack, BOB, method, missing, surface).status_code == 404


def test_a_denied_request_is_logged_once_as_a_structured_line(api, stack, ops):
    marker = ops["alpha"]
    assert request(api, stack, BOB, "cancel", marker).status_code == 403

    def denied_lines():
        return [json.loads(line) for line in stack.log_text().splitlines()
                if line.startswith("{") and marker in line and "denied" in line.lower()]

    lines = wait_for(denied_lines)
    assert len(lines) == 1
    assert lines[0]["principal"] == BOB
    assert lines[0]["permission"] == "operations.cancel"
    assert lines[0]["resource"] == marker


def test_an_issuer_without_an_audience_stops_the_start_up_naming_it(stack):
    issuers = json.loads(stack.env["AUTH_ISSUERS"])
    for spec in issuers.values():
        spec.pop("audience")
    env = dict(stack.env, AUTH_ISSUERS=json.dumps(issuers))
    result = subprocess.run([sys.executable, "-c", "import main"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "audience" in result.stderr
    assert devtoken.DEV_ISSUER in result.stderr


def run_http_function(stack, **env):
    """A lone operations_http process with extra settings; returns (process, url)."""
    port = free_port()
    base = dict(stack.env)
    base.update(env)
    process = Process("operations_http", [
        str(REPO / ".venv" / "bin" / "functions-framework"), "--source", str(REPO / "main.py"),
        "--target", "operations_http", "--signature-type", "http", "--host", "127.0.0.1",
        "--port", str(port)], port, env=base, log_path=stack.logs / f"http-{port}.log")
    process.start()
    return process, f"http://127.0.0.1:{port}"


def test_gateway_mode_takes_the_forwarded_token_and_still_verifies_it(stack, ops):
    import requests

    process, url = run_http_function(stack, TRUST_FORWARDED_AUTHORIZATION="true")
    try:
        process.wait_ready(url + "/", 60)
        name = ops["beta"]
        good = requests.get(f"{url}/v1/{name}", timeout=30,
                            headers={"X-Forwarded-Authorization": f"Bearer {stack.token()}"})
        assert good.status_code == 200
        token = stack.token()
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        bad = requests.get(f"{url}/v1/{name}", timeout=30,
                           headers={"X-Forwarded-Authorization": f"Bearer {forged}",
                                    "Authorization": f"Bearer {stack.token()}"})
        assert bad.status_code == 401
        assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    finally:
        process.stop()


def test_a_bad_policy_file_stops_the_start_up_naming_the_problem(stack, tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"bindings": [{"members": ["user:a@b.c"],
                                                "resources": ["projects/**"],
                                                "role": "roles/operations.owner"}]}))
    env = dict(stack.env, OPERATIONS_POLICY_FILE=str(policy))
    result = subprocess.run([sys.executable, "-c", "import main"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "roles/operations.owner" in result.stderr
    assert str(policy) in result.stderr
