"""Cancel semantics, row by row, over HTTP, on every name shape.

Running and finished operations are created over HTTP by the create route of
their shape; queued ones (which must never be claimed) are written straight
to the store and never published.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from google.longrunning import operations_pb2
from google.protobuf import json_format
from test_http_errors import assert_error

from lib import model
from tests.leases import claim_as


@dataclass(frozen=True)
class Shape:
    surface: str
    template: str  # {p}: this test's unique id, {id}: the operation id
    create: str  # the create route's path making this shape; {p} as above

    def name(self, unique: str, op_id: str) -> str:
        return self.template.format(p=unique, id=op_id)


SHAPES = {
    "v1 projects/*/locations/*/operations/*": Shape(
        "v1", "projects/p-{p}/locations/us/operations/{id}",
        "/v1/projects/p-{p}/locations/us/jobs"),
    "v1 operations/**": Shape("v1", "operations/{p}/{id}", "/v1/jobs"),
    "v3beta1 projects/*/operations/*": Shape("v3beta1", "projects/p-{p}/operations/{id}",
                                             "/v3beta1/projects/p-{p}/jobs"),
    "v3beta1 projects/*/locations/*/operations/*": Shape(
        "v3beta1", "projects/p-{p}/locations/us/operations/{id}",
        "/v3beta1/projects/p-{p}/locations/us/jobs"),
}
shapes = pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())


def parse(text: str) -> dict[str, Any]:
    """The Operation JSON, checked to parse as google.longrunning.Operation (no unknown fields)."""
    json_format.Parse(text, operations_pb2.Operation())
    return json.loads(text)


def metadata(operation: dict[str, Any]) -> dict[str, Any]:
    return operation["metadata"]["value"]


@pytest.fixture(scope="module")
def publish(stack) -> Iterator[Callable[[str], None]]:
    """Publishes ``{"name": name}`` to the stack's jobs topic (the only one it made)."""
    from google.cloud import pubsub_v1

    client = pubsub_v1.PublisherClient()
    topic = getattr(stack, "env", {}).get("OPERATIONS_TOPIC")
    if topic:
        topic = client.topic_path(stack.project, topic)
    else:  # an older Stack without env: the session's emulator has just this jobs topic
        topics = [t.name for t in client.list_topics(project=f"projects/{stack.project}")]
        jobs = [t for t in topics if t.rsplit("/", 1)[-1].startswith("jobs-")]
        assert len(jobs) == 1, topics
        topic = jobs[0]

    def send(name: str) -> None:
        client.publish(topic, json.dumps({"name": name}).encode()).result(timeout=10)

    yield send
    client.transport.close()


@dataclass
class Operations:
    """Makes and watches operations of one shape for one test."""

    shape: Shape
    unique: str
    api: Any
    stack: Any
    publish: Callable[[str], None]
    count: int = 0

    def path(self, name: str) -> str:
        return f"/{self.shape.surface}/{name}"

    def get(self, name: str) -> requests.Response:
        return self.api("GET", self.path(name))

    def operation(self, name: str) -> dict[str, Any]:
        response = self.get(name)
        assert response.status_code == 200, response.text
        return parse(response.text)

    def cancel(self, name: str, **kwargs: Any) -> requests.Response:
        return self.api("POST", self.path(name) + ":cancel", **kwargs)

    def poll(self, name: str, until: Callable[[dict[str, Any]], bool],
             timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            operation = self.operation(name)
            if until(operation):
                return operation
            assert time.monotonic() < deadline, f"gave up waiting: {operation}"
            time.sleep(0.03)

    def queued(self, **params: Any) -> str:
        """An operation written straight to the store and never published: it stays queued."""
        self.count += 1
        name = self.shape.name(self.unique, f"op-{self.count}")
        parent = name.rsplit("/operations/", 1)[0] if "/operations/" in name else "operations"
        self.stack.store.create(model.new_job(
            name=name, parent=parent, target=f"{parent}/jobs/op-{self.count}",
            kind="demo.countdown", params=params or {"steps": 1}, created_by="test",
            now=model.utcnow()))
        return name

    def started(self, **params: Any) -> str:
        """A job a worker will run, created over HTTP by its shape's create route."""
        response = self.api("POST", self.shape.create.format(p=self.unique),
                            json={"kind": "demo.countdown", "params": params})
        assert response.status_code == 200, response.text
        return str(response.json()["name"])

    def running(self) -> str:
        name = self.started(steps=5, stepSeconds=30)
        self.poll(name, lambda op: metadata(op)["attempt"] >= 1)
        return name

    def finished(self, **params: Any) -> str:
        name = self.started(**params)
        self.poll(name, lambda op: op.get("done", False))
        return name


@pytest.fixture
def make(stack, api, unique, publish) -> Callable[[Shape], Operations]:
    return lambda shape: Operations(shape, unique, api, stack, publish)


# --- the table ------------------------------------------------------------------------


def _queued(ops: Operations) -> str:
    return ops.queued()


def _running(ops: Operations) -> str:
    return ops.running()


def _succeeded(ops: Operations) -> str:
    return ops.finished(steps=1, stepSeconds=0)


def _failed(ops: Operations) -> str:
    return ops.finished(steps=2, stepSeconds=0, failAtStep=1)


def _cancelled(ops: Operations) -> str:
    name = ops.queued()
    assert ops.cancel(name).status_code == 200
    return name


def _is_cancelled(operation: dict[str, Any]) -> bool:
    return operation.get("done") is True and operation.get("error", {}).get("code") == 1


STATES = {
    "a queued operation is done now, cancelled": (_queued, "cancelled"),
    "a running operation is stopped by its worker, cancelled": (_running, "cancelled"),
    "a succeeded operation stays succeeded": (_succeeded, "unchanged"),
    "a failed operation stays failed": (_failed, "unchanged"),
    "a cancelled operation stays cancelled": (_cancelled, "unchanged"),
}


@shapes
@pytest.mark.parametrize(("prepare", "effect"), STATES.values(), ids=STATES.keys())
def test_cancel_answers_200_and_has_the_effect_its_state_calls_for(make, stack, shape, prepare,
                                                                   effect):
    ops = make(shape)
    name = prepare(ops)
    before_json, before_doc = ops.operation(name), stack.store.get(name)

    response = ops.cancel(name)
    assert response.status_code == 200, response.text
    assert response.json() == {}

    if effect == "unchanged":
        assert stack.store.get(name) == before_doc
        assert ops.operation(name) == before_json
        return
    after = ops.poll(name, lambda op: op.get("done", False), timeout=10)
    assert _is_cancelled(after), after
    assert "response" not in after
    assert metadata(after)["requestedCancellation"] is True
    assert metadata(after)["attempt"] == metadata(before_json)["attempt"]
    assert stack.store.get(name)["state"] == "CANCELLED"


@shapes
def test_cancel_of_a_missing_operation_is_404_and_creates_nothing(make, stack, shape):
    ops = make(shape)
    name = shape.name(ops.unique, "never-made")
    assert_error(ops.cancel(name), 404, "NOT_FOUND", "OPERATION_NOT_FOUND")
    assert stack.store.get(name) is None
    assert_error(ops.get(name), 404, "NOT_FOUND", "OPERATION_NOT_FOUND")


@shapes
def test_a_queued_operation_cancelled_is_never_run_by_a_worker(make, stack, publish, shape):
    ops = make(shape)
    name = ops.queued(steps=1, stepSeconds=0)
    assert ops.cancel(name).status_code == 200
    done = stack.store.get(name)
    publish(name)  # the message a create would have sent arrives after the cancel
    deadline = time.monotonic() + 10
    while not any("nothing to run" in line and f'"operation": "{name}"' in line
                  for line in stack.log_text().splitlines()):
        assert time.monotonic() < deadline, "the worker never got the message"
        time.sleep(0.05)
    assert stack.store.get(name) == done
    assert metadata(ops.operation(name))["attempt"] == 0


# --- repeated cancels write nothing ---------------------------------------------------


@shapes
def test_a_second_cancel_of_a_running_operation_keeps_the_first_request_time(make, stack,
                                                                              shape):
    ops = make(shape)
    name = ops.running()
    assert ops.cancel(name).status_code == 200
    first = stack.store.get(name)["cancelRequestTime"]
    assert ops.cancel(name).status_code == 200
    assert stack.store.get(name)["cancelRequestTime"] == first
    assert _is_cancelled(ops.poll(name, lambda op: op.get("done", False), timeout=10))
    assert stack.store.get(name)["cancelRequestTime"] == first


@shapes
def test_a_second_cancel_of_a_claimed_operation_writes_nothing(make, stack, shape):
    # Claimed by a "worker" that never finishes it: it stays RUNNING, cancel requested.
    ops = make(shape)
    name = ops.queued(steps=1)
    assert claim_as(stack.store, name, owner="test-worker", lease_seconds=600) is not None
    assert ops.cancel(name).status_code == 200
    requested = stack.store.get(name)
    assert requested["cancelRequested"] is True and requested["state"] == "RUNNING"
    assert metadata(ops.operation(name))["requestedCancellation"] is True
    assert "done" not in ops.operation(name)

    assert ops.cancel(name).status_code == 200
    assert stack.store.get(name) == requested


@shapes
@pytest.mark.parametrize("prepare", [_succeeded, _cancelled],
                         ids=["after success", "after a cancel"])
def test_repeated_cancels_of_a_done_operation_leave_its_update_time(make, stack, shape,
                                                                    prepare):
    ops = make(shape)
    name = prepare(ops)
    before = stack.store.get(name)
    for _ in range(3):
        assert ops.cancel(name).status_code == 200
    after = stack.store.get(name)
    assert after["updateTime"] == before["updateTime"]
    assert after == before


# --- cancel request bodies ------------------------------------------------------------


BODIES: dict[str, tuple[Callable[[str, str], dict[str, Any]], int]] = {
    "no body": (lambda name, other: {}, 200),
    "an empty JSON body, as google-api-core sends": (
        lambda name, other: {"data": b"", "headers_extra": {"Content-Type": "application/json"}},
        200),
    "{}": (lambda name, other: {"json": {}}, 200),
    "the same name": (lambda name, other: {"json": {"name": name}}, 200),
    "another operation's name": (lambda name, other: {"json": {"name": other}}, 400),
    "the same name and another field": (lambda name, other: {"json": {"name": name, "x": 1}},
                                        400),
    "an unknown field": (lambda name, other: {"json": {"x": 1}}, 400),
    "a name that is not a string": (lambda name, other: {"json": {"name": 5}}, 400),
    "an empty name": (lambda name, other: {"json": {"name": ""}}, 400),
    "garbage": (lambda name, other: {"data": b"cancel it please",
                                     "headers_extra": {"Content-Type": "application/json"}},
                400),
    "a JSON array": (lambda name, other: {"json": []}, 400),
    "JSON null": (lambda name, other: {"data": b"null",
                                       "headers_extra": {"Content-Type": "application/json"}},
                  400),
    "the name as a bare JSON string": (lambda name, other: {"json": name}, 400),
}


@shapes
@pytest.mark.parametrize(("body", "status"), BODIES.values(), ids=BODIES.keys())
def test_a_cancel_body_is_accepted_only_if_empty_or_naming_the_same_operation(
        make, stack, auth_headers, shape, body, status):
    ops = make(shape)
    name = ops.queued()
    other = ops.queued()
    kwargs = body(name, other)
    extra = kwargs.pop("headers_extra", {})
    kwargs["headers"] = {**auth_headers, **extra}
    before, before_other = stack.store.get(name), stack.store.get(other)

    response = ops.cancel(name, **kwargs)
    if status == 200:
        assert response.status_code == 200, response.text
        assert _is_cancelled(ops.operation(name))
    else:
        assert_error(response, 400, "INVALID_ARGUMENT")
        assert stack.store.get(name) == before
        assert "done" not in ops.operation(name)
    assert stack.store.get(other) == before_other


# --- a cancel racing completion --------------------------------------------------------


@dataclass
class RaceRound:
    plan: tuple[float, float]  # (stepSeconds, seconds from create to cancel)
    cancel_status: int
    cancel_text: str
    done: dict[str, Any]
    later: list[dict[str, Any]]  # GETs after done
    record: dict[str, Any]  # the document once done
    record_later: dict[str, Any]


@pytest.fixture(scope="module")
def race(stack) -> tuple[int, list[RaceRound]]:
    """20 jobs of one short step, each cancelled at a random moment, 5 at a time."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    plans = [(rng.uniform(0, 0.2), rng.uniform(0, 0.3)) for _ in range(20)]
    parent = f"projects/race-{seed}/locations/us"
    headers = stack.headers(ttl=900)

    def one_round(plan: tuple[float, float]) -> RaceRound:
        step_seconds, cancel_after = plan
        with requests.Session() as session:
            session.headers.update(headers)

            def get(name: str) -> dict[str, Any]:
                response = session.get(f"{stack.url}/v1/{name}", timeout=30)
                assert response.status_code == 200, response.text
                return parse(response.text)

            created = session.post(f"{stack.url}/v1/{parent}/jobs", timeout=30, json={
                "kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": step_seconds}})
            assert created.status_code == 200, created.text
            name = created.json()["name"]
            time.sleep(cancel_after)
            cancelled = session.post(f"{stack.url}/v1/{name}:cancel", timeout=30)
            deadline = time.monotonic() + 30
            while not (done := get(name)).get("done"):
                assert time.monotonic() < deadline, f"never done: {done}"
                time.sleep(0.03)
            record = stack.store.get(name)
            later = []
            for _ in range(4):
                time.sleep(0.05)
                later.append(get(name))
            return RaceRound(plan, cancelled.status_code, cancelled.text, done, later, record,
                             stack.store.get(name))

    with ThreadPoolExecutor(max_workers=5) as pool:
        return seed, list(pool.map(one_round, plans))


def test_a_cancel_racing_completion_ends_with_exactly_one_result_that_never_changes(race):
    seed, rounds = race
    for race_round in rounds:
        where = f"seed {seed}, (stepSeconds, cancel after) {race_round.plan}"
        done = race_round.done
        assert done["done"] is True
        assert ("response" in done) != ("error" in done), f"{where}: {done}"
        assert race_round.later == [done] * len(race_round.later), where
        assert race_round.record_later == race_round.record, where


def test_a_cancel_racing_completion_is_answered_200_and_ends_succeeded_or_cancelled(race):
    seed, rounds = race
    for race_round in rounds:
        where = f"seed {seed}, (stepSeconds, cancel after) {race_round.plan}"
        assert race_round.cancel_status == 200, f"{where}: {race_round.cancel_text}"
        done = race_round.done
        if "error" in done:
            assert done["error"]["code"] == 1, f"{where}: {done}"
            assert race_round.record["state"] == "CANCELLED", where
        else:
            assert done["response"]["value"] == {"steps": 1}, f"{where}: {done}"
            assert race_round.record["state"] == "SUCCEEDED", where
