"""``make trace-demo``: the local stack exporting OTLP/HTTP to an in-process
receiver (tests/otlp_receiver.py); runs one job, cancels another, and prints
their traces as trees, the lifecycle events and the metrics.

Everything binds 127.0.0.1 on free ports, in a temporary directory, and is
stopped at the end.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lib.tools import devtoken  # noqa: E402
from lib.tools.localstack import (  # noqa: E402
    Emulators,
    Functions,
    create_push_subscription,
    create_topic,
    free_port,
    stack_env,
)
from tests.otlp_receiver import OtlpReceiver, render_tree  # noqa: E402

METRICS = ("operations.created", "operations.ended", "operations.cancel.requested",
           "operations.queue_latency", "operations.run.duration", "operations.running")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="trace-demo-"))
    emulators = Emulators("demo-local", free_port(), free_port(), work / "emulators")
    print(f"starting the emulators (logs in {work}) ...", flush=True)
    emulators.start()
    functions: Functions | None = None
    try:
        with OtlpReceiver() as receiver:
            functions = _start_functions(emulators, receiver, work)
            _demo(functions, receiver, emulators, work)
    finally:
        if functions is not None:
            functions.stop()
        emulators.stop()
    return 0


def _start_functions(emulators: Emulators, receiver: OtlpReceiver, work: Path) -> Functions:
    topic = f"demo-{uuid.uuid4().hex[:6]}"
    http_port, worker_port = free_port(), free_port()
    create_push_subscription(
        emulators, topic,
        f"http://127.0.0.1:{worker_port}/projects/{emulators.project}/topics/{topic}")
    create_topic(emulators, f"{topic}-events", pull_subscription=f"{topic}-events")
    dev_dir = work / "dev"
    devtoken.ensure_dev_key(dev_dir)
    env = stack_env(os.environ, emulators, topic, {
        "AUTH_ISSUERS": devtoken.issuers_env(dev_dir),
        "OPERATIONS_EVENTS_TOPIC": f"{topic}-events",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "operations-http",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    })
    functions = Functions(env, http_port, worker_port, work / "functions",
                          worker_env={"OTEL_SERVICE_NAME": "operations-worker"})
    functions.start()
    functions.token = devtoken.mint(dev_dir=dev_dir)  # type: ignore[attr-defined]
    functions.topic = topic  # type: ignore[attr-defined]
    return functions


def _demo(functions: Functions, receiver: OtlpReceiver, emulators: Emulators,
          work: Path) -> None:
    url = f"http://127.0.0.1:{functions.http_port}"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {functions.token}"  # type: ignore[attr-defined]
    parent = "projects/demo/locations/local"

    def call(method: str, path: str, trace: str | None = None, **kwargs: Any) -> Any:
        headers = {"traceparent": trace} if trace else {}
        response = session.request(method, url + path, headers=headers, timeout=60, **kwargs)
        return response.json()

    job_trace, cancel_trace, request_trace = (secrets.token_hex(16) for _ in range(3))
    for _ in range(100):  # the first store call of a fresh process opens its channel
        if "error" not in call("GET", f"/v1/{parent}/operations") or _ == 99:
            break
        time.sleep(0.2)
    job = call("POST", f"/v1/{parent}/jobs", _traceparent(job_trace),
               json={"kind": "demo.countdown", "params": {"steps": 2, "stepSeconds": 0.2}})
    call("POST", f"/v1/{job['name']}:wait", json={"timeout": "30s"})
    long = call("POST", f"/v1/{parent}/jobs", _traceparent(cancel_trace),
                json={"kind": "demo.countdown", "params": {"steps": 20, "stepSeconds": 30}})
    while call("GET", f"/v1/{long['name']}")["metadata"]["value"]["attempt"] < 1:
        time.sleep(0.05)
    call("POST", f"/v1/{long['name']}:cancel", _traceparent(request_trace))
    call("POST", f"/v1/{long['name']}:wait", json={"timeout": "30s"})

    receiver.wait_for(lambda: len([s for s in receiver.trace(cancel_trace)
                                   if s.name == "operations.run"]) >= 1)
    time.sleep(1.5)  # the last batches and a metric export
    for title, trace_id in (("a job, created under a caller's traceparent", job_trace),
                            ("a job that was cancelled while running", cancel_trace),
                            ("the cancel request (linked to the job's trace)", request_trace)):
        print(f"\n# {title}: trace {trace_id}")
        print(render_tree(receiver.trace(trace_id)))
    print("\n# lifecycle events")
    for message in _pull_events(emulators, f"{functions.topic}-events"):  # type: ignore[attr-defined]
        attributes = dict(message.attributes)
        print(f"{attributes['eventType']:<17} {attributes['operation']} "
              f"state={attributes['state']} code={attributes.get('code', '-')}")
    print("\n# metrics (summed over instances)")
    for metric in METRICS:
        print(f"{metric:<28} {receiver.total(metric):g}")


def _traceparent(trace_id: str) -> str:
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _pull_events(emulators: Emulators, subscription_id: str) -> list[Any]:
    os.environ.update(emulators.env())
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    subscription = subscriber.subscription_path(emulators.project, subscription_id)
    response = subscriber.pull(subscription=subscription, max_messages=100, timeout=10)
    subscriber.close()
    return sorted((m.message for m in response.received_messages),
                  key=lambda m: m.publish_time.timestamp())


if __name__ == "__main__":
    sys.exit(main())
