"""google-api-core's own REST operations client and operation future, against the stack.

``AbstractOperationsClient`` over ``OperationsRestTransport`` is what a
generated REST client uses for long-running operations. It sends our bearer
token from a static ``google.oauth2.credentials.Credentials``; ``host`` carries
the scheme (the transport ignores ``url_scheme``), and ``http_options`` maps
each method to this service's paths. ``operation.from_gapic`` takes this
client as it is: it only calls ``get_operation(name, metadata=...)`` and
``cancel_operation(name, metadata=...)``, which the REST client has, so no
adapter is needed.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import google.oauth2.credentials
import pytest
from google.api_core import exceptions, operation, operations_v1
from google.api_core.future import polling
from google.longrunning import operations_pb2
from google.protobuf import json_format, struct_pb2

from lib.core import model

CLOUD = "https://www.googleapis.com/auth/cloud-platform"
DIALOGFLOW = "https://www.googleapis.com/auth/dialogflow"
FAST = polling.DEFAULT_POLLING.with_delay(initial=0.05, maximum=0.2, multiplier=1.5)


def http_options(surface: str, name_pattern: str) -> dict[str, list[dict[str, str]]]:
    uri = f"/{surface}/{{name={name_pattern}}}"
    return {
        "google.longrunning.Operations.GetOperation": [{"method": "get", "uri": uri}],
        "google.longrunning.Operations.CancelOperation": [
            {"method": "post", "uri": uri + ":cancel", "body": "*"}],
        "google.longrunning.Operations.DeleteOperation": [{"method": "delete", "uri": uri}],
        "google.longrunning.Operations.ListOperations": [
            {"method": "get", "uri": f"/{surface}/{{name={name_pattern.rsplit('/', 2)[0]}}}"
                                     "/operations"}],
    }


V1 = http_options("v1", "projects/*/locations/*/operations/*")
V3BETA1 = http_options("v3beta1", "projects/*/locations/*/operations/*")


def make_client(stack, token: str, options=V1) -> operations_v1.AbstractOperationsClient:
    transport = operations_v1.OperationsRestTransport(
        host=stack.url,  # "http://127.0.0.1:PORT": the transport ignores url_scheme
        credentials=google.oauth2.credentials.Credentials(token),
        http_options=options,
    )
    return operations_v1.AbstractOperationsClient(transport=transport)


@pytest.fixture(scope="module")
def client(stack, auth_headers) -> operations_v1.AbstractOperationsClient:
    return make_client(stack, auth_headers["Authorization"].split()[1])


def start(api, parent: str, **params: Any) -> operations_pb2.Operation:
    """Creates a demo.countdown job over HTTP; its Operation as the proto."""
    response = api("POST", f"/v1/{parent}/jobs",
                   json={"kind": "demo.countdown", "params": params})
    assert response.status_code == 200, response.text
    return json_format.Parse(response.text, operations_pb2.Operation())


def future_of(op: operations_pb2.Operation, client) -> operation.Operation:
    return operation.from_gapic(op, client, struct_pb2.Struct,
                                metadata_type=struct_pb2.Struct, polling=FAST)


def attempt(client, name: str) -> float:
    metadata = struct_pb2.Struct()
    assert client.get_operation(name).metadata.Unpack(metadata)
    return metadata["attempt"]


def wait_until(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def test_get_operation_returns_the_operation_the_http_api_shows(api, stack, client, parent):
    # Written to the store and never published: it stays queued, so both reads agree.
    name = f"{parent}/operations/queued-for-the-client"
    stack.store.create(model.new_job(name=name, parent=parent, target=f"{parent}/jobs/q",
                                     kind="demo.countdown", params={"steps": 1},
                                     created_by="test", now=model.utcnow()))
    fetched = client.get_operation(name)
    http = json_format.Parse(api("GET", f"/v1/{name}").text, operations_pb2.Operation())
    assert fetched == http
    assert fetched.name == name and not fetched.done
    metadata = struct_pb2.Struct()
    assert fetched.metadata.Unpack(metadata)
    assert metadata["kind"] == "demo.countdown"
    assert metadata["attempt"] == 0


def test_cancel_operation_stops_a_running_job_and_the_future_sees_it(api, client, parent):
    created = start(api, parent, steps=5, stepSeconds=30)
    future = future_of(created, client)
    wait_until(lambda: attempt(client, created.name) >= 1)
    assert not future.done()
    assert not future.cancelled()

    client.cancel_operation(created.name)

    wait_until(future.done)
    assert future.cancelled()
    assert future.operation.error.code == 1
    assert not future.operation.HasField("response")
    assert future.metadata["requestedCancellation"] is True
    with pytest.raises(exceptions.Cancelled):
        future.result(timeout=5)


def test_the_futures_own_cancel_goes_through_the_rest_client(api, client, parent):
    created = start(api, parent, steps=5, stepSeconds=30)
    future = future_of(created, client)
    assert future.cancel() is True  # queued or running: either way the RPC is made
    wait_until(future.done)
    assert future.cancelled()
    assert future.cancel() is False  # done: no RPC


def test_a_succeeded_jobs_future_result_is_the_struct_of_its_response(api, client, parent):
    future = future_of(start(api, parent, steps=3, stepSeconds=0), client)
    result = future.result(timeout=20)
    assert isinstance(result, struct_pb2.Struct)
    assert json_format.MessageToDict(result) == {"steps": 3}
    assert future.done() and not future.cancelled()
    assert future.metadata["progressPercent"] == 100
    assert future.metadata["kind"] == "demo.countdown"


def test_a_failed_jobs_future_raises_its_error(api, client, parent):
    future = future_of(start(api, parent, steps=2, stepSeconds=0, failAtStep=1), client)
    with pytest.raises(exceptions.FailedPrecondition, match="Step 1"):
        future.result(timeout=20)
    assert not future.cancelled()


def test_errors_reach_the_client_as_api_core_exceptions_with_error_info(api, stack, client,
                                                                        parent):
    name = f"{parent}/operations/not-there"
    with pytest.raises(exceptions.NotFound) as missing:
        client.get_operation(name)
    assert missing.value.reason == "OPERATION_NOT_FOUND"
    assert missing.value.domain

    stranger = make_client(stack, stack.token(subject="eve@example.org"))
    with pytest.raises(exceptions.Forbidden) as denied:  # api-core: HTTP 403
        stranger.cancel_operation(name)
    assert denied.value.reason == "IAM_PERMISSION_DENIED"

    unscoped = make_client(stack, stack.token(DIALOGFLOW))
    with pytest.raises(exceptions.Forbidden) as scoped:
        unscoped.get_operation(name)
    assert scoped.value.reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


def test_the_client_reads_the_v3beta1_surface_with_a_dialogflow_token(api, stack, parent):
    created = start(api, parent, steps=1, stepSeconds=0)
    client = make_client(stack, stack.token(DIALOGFLOW), V3BETA1)
    future = future_of(client.get_operation(created.name), client)
    assert json_format.MessageToDict(future.result(timeout=20)) == {"steps": 1}


def test_the_list_pager_walks_250_operations_in_pages_of_40_with_a_filter(stack, client,
                                                                         parent):
    """250 of 300 operations match; the pager gets each exactly once, newest first."""
    start_time = model.utcnow()
    expected = []
    batch = stack.store._client.batch()
    for i in range(300):
        name = f"{parent}/operations/listed-{i:03d}"
        record = model.new_job(name=name, parent=parent, target=f"{parent}/jobs/{i}",
                               kind="demo.countdown", params={"steps": 1}, created_by="t",
                               now=start_time + timedelta(milliseconds=i))
        if i % 6 == 5:  # 50 of them failed: the filter leaves them out
            record.update(model.failed_changes(9, "x", now=start_time, retention=timedelta(1)))
        else:
            expected.append(name)
        batch.create(stack.store._ref(name), record)
    batch.commit()

    pager = client.list_operations(parent, "done = false", page_size=40)
    pages = list(pager.pages)
    names = [op.name for page in pages for op in page.operations]
    assert names == list(reversed(expected))
    assert [len(page.operations) for page in pages] == [40] * 6 + [10]
    assert pages[-1].next_page_token == ""


def test_delete_through_the_client_then_get_is_not_found(api, client, parent):
    created = start(api, parent, steps=1, stepSeconds=0)
    wait_until(lambda: client.get_operation(created.name).done)
    client.delete_operation(created.name)
    with pytest.raises(exceptions.NotFound):
        client.get_operation(created.name)
    with pytest.raises(exceptions.NotFound):
        client.delete_operation(created.name)
