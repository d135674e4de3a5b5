"""The official clients of both seed APIs, unmodified, pointed at the stack by
their endpoint option only.

- google-api-python-client with its shipped discovery documents:
  ``build("accesscontextmanager", "v1", static_discovery=True, ...)`` on
  ``operations/{id}`` and ``build("dialogflow", "v3beta1", ...)`` on
  ``projects/P/operations/{id}`` and ``projects/P/locations/L/operations/{id}``;
- google-cloud-dialogflow-cx's ``dialogflowcx_v3beta1`` REST transport
  (``get_operation``, ``list_operations``, ``cancel_operation``) on both
  Dialogflow shapes;
- ``google.api_core.operation.from_gapic`` over every shape.

Each client runs the whole cycle: create (over HTTP: neither API has our host
method), get while running, cancel, get until done with code 1, list with a
filter in pages of 2, delete (over HTTP where the client has no delete), and
get gives 404.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import google.oauth2.credentials
import pytest
from google.api_core import exceptions, operation, operations_v1
from google.api_core.future import polling
from google.longrunning import operations_pb2
from google.protobuf import json_format, struct_pb2
from googleapiclient import discovery
from googleapiclient.errors import HttpError

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
DIALOGFLOW = "https://www.googleapis.com/auth/dialogflow"
READ_ONLY = "https://www.googleapis.com/auth/cloud-platform.read-only"
FAST = polling.DEFAULT_POLLING.with_delay(initial=0.05, maximum=0.2, multiplier=1.5)
RUNNING_JOB = {"kind": "demo.countdown", "params": {"steps": 5, "stepSeconds": 30}}
QUICK_JOB = {"kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}}


def credentials(token: str) -> google.oauth2.credentials.Credentials:
    return google.oauth2.credentials.Credentials(token)


def acm(stack, token: str) -> Any:
    """Access Context Manager v1, from the discovery document the library ships."""
    return discovery.build("accesscontextmanager", "v1", static_discovery=True,
                           client_options={"api_endpoint": stack.url},
                           credentials=credentials(token))


def dialogflow(stack, token: str) -> Any:
    """Dialogflow v3beta1, from the discovery document the library ships."""
    return discovery.build("dialogflow", "v3beta1", static_discovery=True,
                           client_options={"api_endpoint": stack.url},
                           credentials=credentials(token))


def dialogflow_cx(stack, token: str) -> Any:
    """google-cloud-dialogflow-cx's generated client on its REST transport; the
    endpoint carries the scheme, which the transport honours."""
    from google.cloud import dialogflowcx_v3beta1

    return dialogflowcx_v3beta1.AgentsClient(
        credentials=credentials(token), transport="rest",
        client_options={"api_endpoint": stack.url})


# --- one adapter per client: the same cycle, each client's own calls ---------------------


@dataclass
class Cycle:
    """What the cycle needs from a client: dicts in and out (proto3 JSON)."""

    get: Callable[[str], dict[str, Any]]
    cancel: Callable[[str], Any]
    list_page: Callable[[str, str, str], dict[str, Any]]  # parent, filter, page token
    delete: Callable[[str], Any] | None  # None: the client has no delete; HTTP does it
    not_found: type[Exception]
    close: Callable[[], None]


def discovery_cycle(client: Any, resource: Callable[[str], Any], cancel_body: bool) -> Cycle:
    """``resource(name)``: the discovery resource whose methods serve ``name``.

    Access Context Manager's cancel takes a CancelOperationRequest body;
    Dialogflow's takes none (each as its discovery document says)."""

    def delete(name: str) -> Any:
        return resource(name).delete(name=name).execute()

    def cancel(name: str) -> Any:
        method = resource(name).cancel
        return (method(name=name, body={}) if cancel_body else method(name=name)).execute()

    has_delete = hasattr(resource("operations/x"), "delete")
    return Cycle(
        get=lambda name: resource(name).get(name=name).execute(),
        cancel=cancel,
        list_page=lambda parent, filter_text, token: resource(parent + "/operations/x").list(
            name=parent, filter=filter_text, pageSize=2, pageToken=token or None).execute(),
        delete=delete if has_delete else None,
        not_found=HttpError,
        close=client.close,
    )


def acm_cycle(client: Any) -> Cycle:
    return discovery_cycle(client, lambda name: client.operations(), cancel_body=True)


def dialogflow_cycle(client: Any) -> Cycle:
    def resource(name: str) -> Any:
        projects = client.projects()
        return (projects.locations().operations() if "/locations/" in name
                else projects.operations())

    return discovery_cycle(client, resource, cancel_body=False)


def cx_cycle(client: Any) -> Cycle:
    def to_dict(message: Any) -> dict[str, Any]:
        return json_format.MessageToDict(message)

    return Cycle(
        get=lambda name: to_dict(client.get_operation({"name": name})),
        cancel=lambda name: client.cancel_operation({"name": name}),
        list_page=lambda parent, filter_text, token: to_dict(client.list_operations(
            {"name": parent, "filter": filter_text, "page_size": 2, "page_token": token})),
        delete=None,
        not_found=exceptions.NotFound,
        close=client.transport.close,
    )


@dataclass(frozen=True)
class Shape:
    create: str  # the create path, {u}: the test's unique id
    parent: str
    surface: str


ACM = Shape("/v1/jobs", "operations", "v1")
DF_PROJECT = Shape("/v3beta1/projects/p-{u}/jobs", "projects/p-{u}", "v3beta1")
DF_LOCATION = Shape("/v3beta1/projects/p-{u}/locations/global/jobs",
                    "projects/p-{u}/locations/global", "v3beta1")

CLIENTS = {
    "accesscontextmanager v1 (discovery) on operations/{id}": (ACM, acm, acm_cycle, CLOUD),
    "dialogflow v3beta1 (discovery) on projects/P/operations/{id}": (
        DF_PROJECT, dialogflow, dialogflow_cycle, DIALOGFLOW),
    "dialogflow v3beta1 (discovery) on projects/P/locations/L/operations/{id}": (
        DF_LOCATION, dialogflow, dialogflow_cycle, DIALOGFLOW),
    "dialogflowcx_v3beta1 REST on projects/P/operations/{id}": (
        DF_PROJECT, dialogflow_cx, cx_cycle, DIALOGFLOW),
    "dialogflowcx_v3beta1 REST on projects/P/locations/L/operations/{id}": (
        DF_LOCATION, dialogflow_cx, cx_cycle, DIALOGFLOW),
}


def poll(get: Callable[[], dict[str, Any]], until: Callable[[dict[str, Any]], bool],
         timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = get()
        if until(found):
            return found
        assert time.monotonic() < deadline, f"gave up waiting: {found}"
        time.sleep(0.05)


@pytest.mark.parametrize(("shape", "build", "adapt", "scope"), CLIENTS.values(),
                         ids=CLIENTS.keys())
def test_the_official_client_runs_the_whole_cycle(api, stack, unique, shape, build, adapt,
                                                  scope):
    token = stack.token(scope)
    headers = {"Authorization": f"Bearer {token}"}
    create_path, parent = shape.create.format(u=unique), shape.parent.format(u=unique)
    since = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    time.sleep(1)  # createTime >= since, at second precision
    quick = [api("POST", create_path, json=QUICK_JOB, headers=headers).json()["name"]
             for _ in range(2)]
    created = api("POST", create_path, json=RUNNING_JOB, headers=headers)
    assert created.status_code == 200, created.text
    name = created.json()["name"]
    client = adapt(build(stack, token))
    try:
        run_cycle(api, client, shape, headers, parent, since, quick, name)
    finally:
        client.close()


def run_cycle(api, client: Cycle, shape: Shape, headers: dict[str, str], parent: str,
              since: str, quick: list[str], name: str) -> None:
    running = poll(lambda: client.get(name),
                   lambda op: op["metadata"]["value"]["attempt"] >= 1)
    assert running["name"] == name and not running.get("done")

    client.cancel(name)
    done = poll(lambda: client.get(name), lambda op: op.get("done", False))
    assert done["error"]["code"] == 1
    assert done["metadata"]["value"]["requestedCancellation"] is True

    filter_text = f'metadata.createTime >= "{since}" AND metadata.kind = "demo.countdown"'
    pages, token_ = [], ""
    while True:
        page = client.list_page(parent, filter_text, token_)
        pages.append([op["name"] for op in page.get("operations", [])])
        token_ = page.get("nextPageToken", "")
        if not token_:
            break
    assert [len(p) for p in pages] == [2, 1], pages
    assert sorted(n for p in pages for n in p) == sorted([*quick, name])
    cancelled = client.list_page(parent, f'{filter_text} AND error.code = 1', "")
    assert [op["name"] for op in cancelled["operations"]] == [name]

    if client.delete is not None:
        client.delete(name)
    else:
        assert api("DELETE", f"/{shape.surface}/{name}", headers=headers).status_code == 200
    with pytest.raises(client.not_found) as caught:
        client.get(name)
    status = getattr(getattr(caught.value, "resp", None), "status", None)
    assert status == 404 or isinstance(caught.value, exceptions.NotFound)


REFUSALS = {
    "accesscontextmanager v1 with a dialogflow-only token": (ACM, acm, acm_cycle, DIALOGFLOW),
    "dialogflow v3beta1 (discovery) with a read-only token": (
        DF_PROJECT, dialogflow, dialogflow_cycle, READ_ONLY),
    "dialogflowcx_v3beta1 REST with a read-only token": (
        DF_LOCATION, dialogflow_cx, cx_cycle, READ_ONLY),
}


@pytest.mark.parametrize(("shape", "build", "adapt", "scope"), REFUSALS.values(),
                         ids=REFUSALS.keys())
def test_a_scope_refusal_reaches_the_client_as_403(api, stack, unique, shape, build, adapt,
                                                   scope):
    created = api("POST", shape.create.format(u=unique), json=QUICK_JOB)
    name = created.json()["name"]
    client = adapt(build(stack, stack.token(scope)))
    try:
        refused(client, name, shape.parent.format(u=unique))
    finally:
        client.close()


def refused(client: Cycle, name: str, parent: str) -> None:
    for call in (lambda: client.get(name), lambda: client.cancel(name),
                 lambda: client.list_page(parent, "", "")):
        with pytest.raises((HttpError, exceptions.Forbidden)) as caught:
            call()
        if isinstance(caught.value, HttpError):
            assert caught.value.resp.status == 403
            assert "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in caught.value.content.decode()
        else:
            assert caught.value.code == 403
            assert caught.value.reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


# --- google.api_core.operation.from_gapic on every shape ---------------------------------


def operations_client(stack, token: str, surface: str,
                      pattern: str) -> operations_v1.AbstractOperationsClient:
    """api-core's REST operations client, mapped onto one name shape."""
    uri = f"/{surface}/{{name={pattern}}}"
    transport = operations_v1.OperationsRestTransport(
        host=stack.url, credentials=credentials(token),
        http_options={
            "google.longrunning.Operations.GetOperation": [{"method": "get", "uri": uri}],
            "google.longrunning.Operations.CancelOperation": [
                {"method": "post", "uri": uri + ":cancel", "body": "*"}],
        })
    return operations_v1.AbstractOperationsClient(transport=transport)


FUTURES = {
    "operations/{id}": ("/v1/jobs", "v1", "operations/**"),
    "projects/P/locations/L/operations/{id} on v1": (
        "/v1/projects/p-{u}/locations/us/jobs", "v1", "projects/*/locations/*/operations/*"),
    "projects/P/operations/{id}": ("/v3beta1/projects/p-{u}/jobs", "v3beta1",
                                   "projects/*/operations/*"),
    "projects/P/locations/L/operations/{id} on v3beta1": (
        "/v3beta1/projects/p-{u}/locations/us/jobs", "v3beta1",
        "projects/*/locations/*/operations/*"),
}


@pytest.mark.parametrize(("create", "surface", "pattern"), FUTURES.values(), ids=FUTURES.keys())
def test_from_gapic_reports_cancelled_on_every_shape(api, stack, unique, create, surface,
                                                     pattern):
    scope = DIALOGFLOW if surface == "v3beta1" else CLOUD
    token = stack.token(scope)
    response = api("POST", create.format(u=unique), json=RUNNING_JOB,
                   headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    op = json_format.Parse(response.text, operations_pb2.Operation())
    client = operations_client(stack, token, surface, pattern)
    future = operation.from_gapic(op, client, struct_pb2.Struct,
                                  metadata_type=struct_pb2.Struct, polling=FAST)
    assert future.cancelled() is False
    assert future.cancel() is True
    with pytest.raises(exceptions.GoogleAPICallError) as caught:
        future.result(timeout=30)
    assert caught.value.code == 499  # CANCELLED as api-core maps it
    assert future.cancelled() is True
    assert future.done() is True
