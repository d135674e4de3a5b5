"""Idempotent create over HTTP (AIP-155): the same caller repeating a
``requestId`` on the same parent gets the first operation; nothing new runs."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from test_http_errors import assert_error

JOB = {"kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}}
CREATES = {
    "POST /v1/jobs": ("/v1/jobs", "operations"),
    "POST /v1/projects/P/locations/L/jobs": ("/v1/projects/p-{u}/locations/us/jobs",
                                             "projects/p-{u}/locations/us"),
    "POST /v3beta1/projects/P/jobs": ("/v3beta1/projects/p-{u}/jobs", "projects/p-{u}"),
    "POST /v3beta1/projects/P/locations/L/jobs": (
        "/v3beta1/projects/p-{u}/locations/us/jobs", "projects/p-{u}/locations/us"),
}




@pytest.mark.parametrize(("path", "parent"), CREATES.values(), ids=CREATES.keys())
def test_a_repeated_request_id_returns_the_first_operation(api, stack, unique, path, parent):
    path = path.format(u=unique)
    body = {**JOB, "requestId": str(uuid.uuid4())}
    first = api("POST", path, json=body)
    assert first.status_code == 200, first.text
    name = first.json()["name"]
    record = stack.store.get(name)

    again = api("POST", path, json=body)
    assert again.status_code == 200, again.text
    assert again.json()["name"] == name
    assert stack.store.get(name)["createTime"] == record["createTime"]

    other = api("POST", path, json={**JOB, "requestId": str(uuid.uuid4())})
    assert other.json()["name"] != name


def test_a_repeat_after_the_job_ran_returns_it_done_and_runs_nothing_new(api, stack, unique):
    path = f"/v1/projects/p-{unique}/locations/us/jobs"
    body = {**JOB, "requestId": str(uuid.uuid4())}
    name = api("POST", path, json=body).json()["name"]
    waited = api("POST", f"/v1/{name}:wait", json={"timeout": "20s"}).json()
    assert waited["done"] is True
    again = api("POST", path, json=body)
    assert again.json() == waited
    listed = api("GET", f"/v1/projects/p-{unique}/locations/us/operations").json()
    assert [op["name"] for op in listed["operations"]] == [name]


def test_another_callers_identical_request_id_is_another_request(api, stack, unique):
    path = f"/v1/projects/corp/locations/l{unique}/jobs"
    body = {**JOB, "requestId": str(uuid.uuid4())}
    dev = api("POST", path, json=body)
    carol = api("POST", path, json=body, headers=stack.headers(subject="carol@corp.example"))
    assert dev.status_code == carol.status_code == 200, (dev.text, carol.text)
    assert dev.json()["name"] != carol.json()["name"]
    # Each one's repeat returns their own.
    assert api("POST", path, json=body).json()["name"] == dev.json()["name"]
    assert api("POST", path, json=body, headers=stack.headers(
        subject="carol@corp.example")).json()["name"] == carol.json()["name"]


def test_the_same_request_id_on_another_parent_is_another_request(api, unique):
    body = {**JOB, "requestId": str(uuid.uuid4())}
    one = api("POST", f"/v3beta1/projects/p-{unique}/jobs", json=body).json()["name"]
    two = api("POST", f"/v3beta1/projects/p-{unique}/locations/us/jobs", json=body).json()["name"]
    assert one != two


def test_concurrent_first_calls_create_exactly_one_operation(stack, unique):
    path = f"{stack.url}/v1/projects/p-{unique}/locations/us/jobs"
    body = {**JOB, "requestId": str(uuid.uuid4())}
    headers = stack.headers()

    def create(_: int) -> requests.Response:
        return requests.post(path, json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(create, range(6)))
    names = {a.json()["name"] for a in answers if a.status_code == 200}
    assert len(names) == 1, [a.text for a in answers]
    assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
    listed = requests.get(f"{stack.url}/v1/projects/p-{unique}/locations/us/operations",
                          headers=headers, timeout=30).json()
    assert [op["name"] for op in listed["operations"]] == list(names)


@pytest.mark.parametrize("request_id", ["not-a-uuid", 12, "5f1b4c9e9b7a4d8e8f513c2a0c1d7e42"],
                         ids=["a word", "a number", "without hyphens"])
def test_a_request_id_that_is_not_a_uuid_is_400(api, unique, request_id):
    path = f"/v1/projects/p-{unique}/locations/us"
    response = api("POST", f"{path}/jobs", json={**JOB, "requestId": request_id})
    assert_error(response, 400, "INVALID_ARGUMENT", "INVALID_REQUEST_ID")
    assert api("GET", f"{path}/operations").json() == {}
