"""Traces, metrics, lifecycle events and log correlation, end to end: a stack
of its own exports OTLP/HTTP to an in-process receiver (tests/otlp_receiver.py)
and publishes lifecycle events to a topic read here with a pull subscription."""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from google.longrunning import operations_pb2
from google.protobuf import json_format

from lib.tools import devtoken
from lib.tools.localstack import (
    Emulators,
    Functions,
    create_push_subscription,
    create_topic,
    free_port,
    stack_env,
)
from tests.otlp_receiver import OtlpReceiver, Span

COLLECTION = "operations-otel"


class OtelStack:
    def __init__(self, url: str, receiver: OtlpReceiver, logs: Path, events: Callable[[], list]):
        self.url = url
        self.receiver = receiver
        self.logs = logs
        self.pull_events = events
        self.session = requests.Session()
        self.events: list[Any] = []  # every message pulled so far, in order

    def call(self, method: str, path: str, headers: dict[str, str] | None = None,
             **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path,
                                    headers={**self.auth, **(headers or {})}, **kwargs)

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for path in self.logs.glob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    lines.append(json.loads(line))
        return lines


@pytest.fixture(scope="module")
def otel(emulators: Emulators, dev_dir: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtelStack]:
    devtoken.ensure_dev_key(dev_dir)
    topic = f"otel-{uuid.uuid4().hex[:8]}"
    http_port, worker_port = free_port(), free_port()
    create_push_subscription(
        emulators, topic,
        f"http://127.0.0.1:{worker_port}/projects/{emulators.project}/topics/{topic}")
    create_topic(emulators, f"{topic}-events", pull_subscription=f"{topic}-events-pull")
    logs = tmp_path_factory.mktemp("otel-logs")
    with OtlpReceiver() as receiver:
        env = stack_env(os.environ, emulators, topic, {
            "AUTH_ISSUERS": devtoken.issuers_env(dev_dir),
            "OPERATIONS_COLLECTION": COLLECTION,
            "OPERATIONS_EVENTS_TOPIC": f"{topic}-events",
            "HEARTBEAT_SECONDS": "1",
            "PROGRESS_MIN_INTERVAL_SECONDS": "0",
            "FIRESTORE_DEADLINE_SECONDS": "5",
            "CANCEL_GRACE_SECONDS": "1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_SERVICE_NAME": "operations-http",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
        })
        functions = Functions(env, http_port, worker_port, logs,
                              worker_env={"OTEL_SERVICE_NAME": "operations-worker"})
        functions.start()
        os.environ.update(emulators.env())
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        subscription = subscriber.subscription_path(emulators.project, f"{topic}-events-pull")

        def pull() -> list[Any]:
            response = subscriber.pull(subscription=subscription, max_messages=100, timeout=5)
            if response.received_messages:
                subscriber.acknowledge(subscription=subscription,
                                       ack_ids=[m.ack_id for m in response.received_messages])
            return [m.message for m in response.received_messages]

        stack = OtelStack(f"http://127.0.0.1:{http_port}", receiver, logs, pull)
        stack.auth = {"Authorization": f"Bearer {devtoken.mint(dev_dir=dev_dir)}"}
        _warm_up(stack)
        try:
            yield stack
        finally:
            functions.stop()
            subscriber.close()
            stack.session.close()


def _warm_up(stack: OtelStack) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if stack.call("GET", "/v1/projects/warm/locations/up/operations/x").status_code != 503:
            return
    raise RuntimeError("the stack's store never answered")


@pytest.fixture
def parent(unique: str) -> str:
    return f"projects/p-{unique}/locations/us"


def traceparent() -> tuple[str, str, str]:
    """A fresh sampled W3C traceparent: (header, trace id, span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def create(otel: OtelStack, parent: str, headers: dict[str, str] | None = None,
           **params: Any) -> str:
    response = otel.call("POST", f"/v1/{parent}/jobs", headers=headers,
                         json={"kind": "demo.countdown", "params": params})
    assert response.status_code == 200, response.text
    return response.json()["name"]


def wait_done(otel: OtelStack, name: str, timeout: float = 30) -> dict[str, Any]:
    response = otel.call("POST", f"/v1/{name}:wait", json={"timeout": f"{timeout}s"})
    operation = response.json()
    assert operation.get("done"), operation
    return operation


def wait_running(otel: OtelStack, name: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if otel.call("GET", f"/v1/{name}").json()["metadata"]["value"]["attempt"] >= 1:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never started")


def run_span(otel: OtelStack, trace_id: str, name: str) -> Span:
    """The finished ``operations.run`` span of ``name`` in trace ``trace_id``."""
    def found() -> list[Span]:
        return [span for span in otel.receiver.trace(trace_id)
                if span.name == "operations.run" and span.attributes.get("operations.name") == name
                and span.attributes.get("operations.outcome") != "skipped"]
    spans = otel.receiver.wait_for(found)
    assert spans, f"no operations.run span for {name} in trace {trace_id}"
    return spans[0]


def server_span(otel: OtelStack, trace_id: str, method: str) -> Span:
    spans = otel.receiver.wait_for(lambda: [
        span for span in otel.receiver.trace(trace_id)
        if span.kind == "SERVER" and span.attributes.get("http.request.method") == method])
    assert spans, f"no {method} server span in trace {trace_id}"
    return spans[0]


# Traces.


def test_one_trace_holds_the_create_the_publish_and_the_run_under_the_callers_traceparent(
        otel, parent):
    header, trace_id, caller_span = traceparent()
    name = create(otel, parent, headers={"traceparent": header}, steps=1, stepSeconds=0)
    wait_done(otel, name)

    run = run_span(otel, trace_id, name)
    spans = {span.span_id: span for span in otel.receiver.trace(trace_id)}
    publish = spans[run.parent_span_id]
    server = spans[publish.parent_span_id]
    assert server.kind == "SERVER" and server.parent_span_id == caller_span
    assert server.service == "operations-http"
    assert server.name == "POST /v1/{parent=projects/*/locations/*}/jobs"
    assert server.attributes["http.response.status_code"] == 200
    assert publish.kind == "PRODUCER" and publish.service == "operations-http"
    assert publish.attributes["operations.name"] == name
    assert run.service == "operations-worker"
    assert run.attributes == {"operations.name": name, "operations.kind": "demo.countdown",
                              "operations.attempt": 1, "operations.outcome": "succeeded"}


def test_a_request_continues_an_x_cloud_trace_context(otel):
    trace_id = secrets.token_hex(16)
    response = otel.call("GET", "/v1/projects/p/locations/l/operations/missing",
                         headers={"X-Cloud-Trace-Context": f"{trace_id}/12345;o=1"})
    assert response.status_code == 404
    span = server_span(otel, trace_id, "GET")
    assert span.parent_span_id == format(12345, "016x")
    assert span.attributes["http.response.status_code"] == 404


def test_cancel_wait_and_delete_get_spans_of_their_own_linked_to_the_operations_trace(
        otel, parent):
    header, create_trace, _ = traceparent()
    name = create(otel, parent, headers={"traceparent": header}, steps=20, stepSeconds=30)
    wait_running(otel, name)
    created = server_span(otel, create_trace, "POST")

    cancel_header, cancel_trace, _ = traceparent()
    assert otel.call("POST", f"/v1/{name}:cancel",
                     headers={"traceparent": cancel_header}).status_code == 200
    wait_header, wait_trace, _ = traceparent()
    assert otel.call("POST", f"/v1/{name}:wait", json={"timeout": "20s"},
                     headers={"traceparent": wait_header}).json()["done"] is True
    delete_header, delete_trace, _ = traceparent()
    assert otel.call("DELETE", f"/v1/{name}",
                     headers={"traceparent": delete_header}).status_code == 200

    cancel = server_span(otel, cancel_trace, "POST")
    assert cancel.event_names == ["operations.cancel.requested"]
    for span in (cancel, server_span(otel, wait_trace, "POST"),
                 server_span(otel, delete_trace, "DELETE")):
        assert span.trace_id != create_trace
        assert [(t, s) for t, s, _ in span.links] == [(create_trace, created.span_id)]
    assert run_span(otel, create_trace, name).attributes["operations.outcome"] == "cancelled"


def test_the_run_span_records_when_the_handler_acknowledged_the_cancel(otel, parent):
    header, trace_id, _ = traceparent()
    name = create(otel, parent, headers={"traceparent": header}, steps=20, stepSeconds=30)
    wait_running(otel, name)
    otel.call("POST", f"/v1/{name}:cancel")
    wait_done(otel, name)
    assert "operations.cancel.acknowledged" in run_span(otel, trace_id, name).event_names


def test_a_forced_end_is_a_span_event_and_a_metric(otel, parent):
    forced_before = otel.receiver.total("operations.cancel.forced")
    # Only forced runs: another test's run may be counted meanwhile.
    runs_before = otel.receiver.total("operations.run.duration", outcome="forced")
    header, trace_id, _ = traceparent()
    name = create(otel, parent, headers={"traceparent": header}, steps=3, stepSeconds=2,
                  ignoreCancel=True)
    wait_running(otel, name)
    otel.call("POST", f"/v1/{name}:cancel")
    wait_done(otel, name)
    assert "operations.cancel.forced" in run_span(otel, trace_id, name).event_names
    assert otel.receiver.wait_for(
        lambda: otel.receiver.total("operations.cancel.forced") == forced_before + 1)
    # The stubborn handler's own run ends later; counted before the next test looks.
    assert otel.receiver.wait_for(
        lambda: otel.receiver.total("operations.run.duration", outcome="forced")
        == runs_before + 1)


# Metrics.


def test_metrics_count_each_operation_once_with_sensible_latencies(otel, parent):
    receiver = otel.receiver
    # Runs of earlier tests (a forced handler's own thread ends late) are
    # counted before the baseline is taken: nothing running, two exports on.
    assert receiver.wait_for(lambda: receiver.total("operations.running") == 0)
    time.sleep(1.0)
    names = ("operations.created", "operations.ended", "operations.cancel.requested",
             "operations.queue_latency", "operations.run.duration")
    before = {metric: receiver.total(metric) for metric in names}
    ended_before = {code: receiver.total("operations.ended", code=code) for code in (0, 1, 9)}
    cancel_acks_before = receiver.total("operations.cancel.ack_latency")

    succeeded = create(otel, parent, steps=2, stepSeconds=0.1)
    failed = create(otel, parent, steps=2, stepSeconds=0, failAtStep=2)
    cancelled = create(otel, parent, steps=20, stepSeconds=30)
    wait_running(otel, cancelled)
    otel.call("POST", f"/v1/{cancelled}:cancel")
    otel.call("POST", f"/v1/{cancelled}:cancel")  # a repeat changes nothing
    for name in (succeeded, failed, cancelled):
        wait_done(otel, name)

    def delta(metric: str, **attributes: Any) -> float:
        return receiver.total(metric, **attributes) - (
            ended_before[attributes["code"]] if attributes else before[metric])

    expected = {0: 1, 1: 1, 9: 1}
    assert receiver.wait_for(lambda: all(
        delta("operations.ended", code=code) == count for code, count in expected.items())), {
        code: delta("operations.ended", code=code) for code in expected}
    time.sleep(1.5)  # several more exports: nothing is counted twice
    assert {code: delta("operations.ended", code=code) for code in expected} == expected
    assert delta("operations.created") == 3
    assert delta("operations.cancel.requested") == 1
    assert delta("operations.queue_latency") == 3
    assert delta("operations.run.duration") == 3
    assert receiver.total("operations.running") == 0
    latency = receiver.histogram_sum("operations.queue_latency")
    assert 0 < latency < 60_000 * receiver.total("operations.queue_latency")
    # The succeeded run took its two 0.1 s steps.
    runs = receiver.latest("operations.run.duration")
    succeeded_runs = [p for p in runs.values() if p.attributes.get("outcome") == "succeeded"]
    assert succeeded_runs and sum(p.total for p in succeeded_runs) >= 0.2
    assert receiver.total("operations.cancel.ack_latency") >= cancel_acks_before


# Lifecycle events.


def events_of(otel: OtelStack, names: set[str], expected: int) -> dict[str, list[Any]]:
    """The events pulled so far for ``names``, by operation, once ``expected``
    distinct messages arrived (and a quiet second after, for any extra)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        otel.events.extend(otel.pull_events())
        mine = {m.message_id: m for m in otel.events if m.attributes.get("operation") in names}
        if len(mine) >= expected:
            break
    time.sleep(1.0)
    otel.events.extend(otel.pull_events())
    unique = {m.message_id: m for m in otel.events if m.attributes.get("operation") in names}
    by_operation: dict[str, list[Any]] = {}
    for message in sorted(unique.values(), key=lambda m: m.publish_time.timestamp()):
        by_operation.setdefault(message.attributes["operation"], []).append(message)
    return by_operation


def test_one_event_per_cancel_request_and_per_end(otel, parent):
    header, _, _ = traceparent()
    succeeded = create(otel, parent, headers={"traceparent": header}, steps=1, stepSeconds=0)
    cancelled = create(otel, parent, steps=20, stepSeconds=30)
    wait_done(otel, succeeded)
    wait_running(otel, cancelled)
    otel.call("POST", f"/v1/{cancelled}:cancel")
    otel.call("POST", f"/v1/{cancelled}:cancel")
    wait_done(otel, cancelled)

    events = events_of(otel, {succeeded, cancelled}, expected=3)
    assert [m.attributes["eventType"] for m in events[succeeded]] == ["DONE"]
    # One of each. Their order is not promised: the HTTP function publishes
    # the request and the worker the end (an ordering key orders one publisher's).
    assert sorted(m.attributes["eventType"] for m in events[cancelled]) == [
        "CANCEL_REQUESTED", "DONE"]
    done = events[succeeded][0]
    assert dict(done.attributes) == {
        "eventType": "DONE", "operation": succeeded, "kind": "demo.countdown",
        "state": "SUCCEEDED", "code": "0", "traceparent": done.attributes["traceparent"]}
    assert done.attributes["traceparent"].split("-")[1] == header.split("-")[1]
    assert done.ordering_key == succeeded
    operation = json_format.Parse(done.data, operations_pb2.Operation())
    assert operation.name == succeeded and operation.done
    requested, ended = sorted(events[cancelled], key=lambda m: m.attributes["eventType"])
    assert requested.attributes["state"] == "RUNNING" and "code" not in requested.attributes
    assert (ended.attributes["state"], ended.attributes["code"]) == ("CANCELLED", "1")
    assert json.loads(ended.data)["error"]["code"] == 1


def test_a_job_cancelled_while_queued_announces_both_events_at_once(otel, parent):
    # Created straight in the store, never published: it stays queued.
    from google.cloud import firestore

    from lib.core import model
    from lib.core.store import FirestoreOperationStore

    store = FirestoreOperationStore(firestore.Client(), COLLECTION)
    name = f"{parent}/operations/queued-{uuid.uuid4().hex[:6]}"
    store.create(model.new_job(name=name, parent=parent, target=f"{parent}/jobs/x",
                               kind="demo.countdown", params={"steps": 1},
                               created_by="dev@example.com", now=model.utcnow()))
    assert otel.call("POST", f"/v1/{name}:cancel").status_code == 200
    events = events_of(otel, {name}, expected=2)
    assert [m.attributes["eventType"] for m in events[name]] == ["CANCEL_REQUESTED", "DONE"]
    future = model.utcnow() + timedelta(days=1)
    assert [m for m in store.pending_events(future, 100) if m.operation == name] == [], (
        "published marks are cleared")


# Logs.


def test_log_lines_carry_the_trace_and_span_of_their_request_and_run(otel, parent):
    header, trace_id, _ = traceparent()
    name = create(otel, parent, headers={"traceparent": header}, steps=1, stepSeconds=0)
    wait_done(otel, name)
    run = run_span(otel, trace_id, name)
    server = server_span(otel, trace_id, "POST")
    lines = [line for line in otel.log_lines() if line.get("operation") == name]
    trace_name = f"projects/demo-test/traces/{trace_id}"
    running = [line for line in lines if line["message"] == "running"]
    queued = [line for line in lines if line["message"] == "job queued"]
    assert running and queued
    assert running[0]["logging.googleapis.com/trace"] == trace_name
    assert running[0]["logging.googleapis.com/spanId"] == run.span_id
    assert queued[0]["logging.googleapis.com/trace"] == trace_name
    assert queued[0]["logging.googleapis.com/spanId"] == server.span_id
