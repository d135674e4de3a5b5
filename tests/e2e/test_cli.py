"""``python -m lib.cli`` end to end: a person's session against the running stack.

Each command runs as a subprocess, as a person would run it, and is judged by
what they see: the exit code, the JSON on stdout, the one line on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from google.longrunning import operations_pb2
from google.protobuf import json_format

ROOT = Path(__file__).resolve().parents[2]
DIALOGFLOW = "https://www.googleapis.com/auth/dialogflow"


@pytest.fixture(scope="module")
def token(stack) -> str:
    return stack.token(ttl=900)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OPERATIONS_")}
    return subprocess.run([sys.executable, "-m", "lib.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120, env={**environment, **(env or {})})


@pytest.fixture
def cli(stack, token):
    """``cli(*args)``: the CLI with this stack's endpoint and a valid token."""
    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--endpoint", stack.url, "--token", token)
    return call


def create_job(stack, token: str, parent: str, **params: float) -> str:
    response = requests.post(f"{stack.url}/v1/{parent}/jobs",
                             json={"kind": "demo.countdown", "params": params},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["name"])


def operation(stdout: str) -> operations_pb2.Operation:
    """The printed Operation; parsing rejects unknown fields."""
    return json_format.Parse(stdout, operations_pb2.Operation())


def test_a_job_is_waited_to_success_then_read_and_listed_across_pages(cli, stack, token,
                                                                       parent):
    name = create_job(stack, token, parent, steps=3, stepSeconds=0.3)
    other = create_job(stack, token, parent, steps=1, stepSeconds=0)

    waited = cli("wait", name, "--timeout", "60")
    assert waited.returncode == 0, waited.stderr
    done = operation(waited.stdout)
    assert done.done and done.HasField("response") and not done.HasField("error")
    assert json.loads(waited.stdout)["response"]["value"] == {"steps": 3}
    assert "100%" in waited.stderr.splitlines()[-1]  # the bar, one line per change

    got = cli("get", name)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == json.loads(waited.stdout)  # done: it never changes

    listed = cli("list", parent, "--filter", 'metadata.kind = "demo.countdown"',
                 "--page-size", "1")
    assert listed.returncode == 0, listed.stderr
    names = [op["name"] for op in json.loads(listed.stdout)["operations"]]
    assert sorted(names) == sorted([name, other])  # two pages of one, both walked

    cancelled_only = cli("list", parent, "--filter", "error.code = 1")
    assert cancelled_only.returncode == 0, cancelled_only.stderr
    assert json.loads(cancelled_only.stdout) == {"operations": []}


def test_a_long_job_times_out_then_is_cancelled_deleted_and_gone(cli, stack, token, parent):
    name = create_job(stack, token, parent, steps=5, stepSeconds=30)

    waiting = cli("wait", name, "--timeout", "1")
    assert waiting.returncode == 3, waiting.stderr
    assert not operation(waiting.stdout).done
    assert "still running" in waiting.stderr

    cancelled = cli("cancel", name)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout) == {}

    waited = cli("wait", name, "--timeout", "30")
    assert waited.returncode == 1, waited.stderr
    assert operation(waited.stdout).error.code == 1
    assert "code 1" in waited.stderr

    deleted = cli("delete", name)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout) == {}

    gone = cli("get", name)
    assert gone.returncode == 1
    assert gone.stdout == ""
    assert len(gone.stderr.splitlines()) == 1
    assert "HTTP 404 NOT_FOUND" in gone.stderr and "OPERATION_NOT_FOUND" in gone.stderr


def test_a_job_created_through_the_cli_is_waited_on_the_v3beta1_surface(cli, stack, parent):
    created = cli("create", parent, "--kind", "demo.countdown", "--param", "steps=2",
                  "--param", "stepSeconds=0")
    assert created.returncode == 0, created.stderr
    name = operation(created.stdout).name
    assert name.startswith(f"{parent}/operations/")

    result = run_cli("--surface", "v3beta1", "--endpoint", stack.url,
                     "--token", stack.token(DIALOGFLOW), "wait", name, "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["response"]["value"] == {"steps": 2}


def test_without_a_token_a_local_endpoint_gets_a_dev_token_and_says_so(stack, parent):
    result = run_cli("list", parent, "--endpoint", stack.url,
                     env={"DEV_DIR": str(stack.dev_dir)})
    assert result.returncode == 0, result.stderr
    assert "dev token" in result.stderr


def test_a_refused_token_is_one_line_with_the_services_401_and_no_token(stack, parent):
    bad = "not-a-jwt-" + "x" * 20
    result = run_cli("get", f"{parent}/operations/x", "--endpoint", stack.url, "--token", bad)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "HTTP 401 UNAUTHENTICATED" in result.stderr
    assert bad not in result.stderr + result.stdout


@pytest.mark.parametrize("args", [
    ["get"],
    ["wait", "operations/x", "--timeout", "soon"],
    ["list", "projects/p/locations/l", "--page-size", "many"],
    ["get", "projects/p/operations/o"],  # a v3beta1 shape: no v1 path fits it
    ["create", "projects/p/locations/l", "--kind", "demo.countdown", "--param", "steps"],
], ids=["a missing name", "a timeout that is not a number", "a page size that is not a number",
        "a name of the other surface", "a param without a value"])
def test_a_usage_error_exits_2_without_calling_the_service(cli, args):
    result = cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "usage" in result.stderr


SHAPES = {
    "v1 operations/{id}": ("v1", "operations", "operations/"),
    "v1 projects/P/locations/L/operations/{id}": ("v1", "projects/p-{u}/locations/us",
                                                  "projects/p-{u}/locations/us/operations/"),
    "v3beta1 projects/P/operations/{id}": ("v3beta1", "projects/p-{u}",
                                           "projects/p-{u}/operations/"),
    "v3beta1 projects/P/locations/L/operations/{id}": (
        "v3beta1", "projects/p-{u}/locations/us", "projects/p-{u}/locations/us/operations/"),
}


@pytest.mark.parametrize(("surface", "parent", "prefix"), SHAPES.values(), ids=SHAPES.keys())
def test_create_get_cancel_and_list_work_on_every_name_shape(cli, unique, surface, parent,
                                                             prefix):
    parent, prefix = parent.format(u=unique), prefix.format(u=unique)
    created = cli("--surface", surface, "create", parent, "--kind", "demo.countdown",
                  "--param", "steps=5", "--param", "stepSeconds=30")
    assert created.returncode == 0, created.stderr
    name = operation(created.stdout).name
    assert name.startswith(prefix) and "/" not in name[len(prefix):], name

    assert cli("--surface", surface, "cancel", name).returncode == 0
    waited = cli("--surface", surface, "wait", name, "--timeout", "30")
    assert waited.returncode == 1, waited.stderr  # done with an error: cancelled
    assert operation(waited.stdout).error.code == 1

    listed = cli("--surface", surface, "list", parent, "--filter", "error.code = 1")
    assert listed.returncode == 0, listed.stderr
    assert name in [op["name"] for op in json.loads(listed.stdout)["operations"]]
    assert cli("--surface", surface, "get", name).returncode == 0


def test_create_with_a_request_id_and_a_timeout_is_idempotent_and_has_a_deadline(cli, unique):
    import uuid

    args = ("create", "operations", "--kind", "demo.countdown", "--param", "steps=1",
            "--param", "stepSeconds=0", "--request-id", str(uuid.uuid4()),
            "--operation-timeout", "600s")
    first, again = cli(*args), cli(*args)
    assert first.returncode == 0 and again.returncode == 0, (first.stderr, again.stderr)
    assert operation(first.stdout).name == operation(again.stdout).name
    assert "deadline" in json.loads(first.stdout)["metadata"]["value"]
    bad = cli("create", "operations", "--kind", "demo.countdown", "--param", "steps=1",
              "--request-id", "not-a-uuid")
    assert bad.returncode == 1
    assert "INVALID_REQUEST_ID" in bad.stderr
