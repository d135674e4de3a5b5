"""Over HTTP, with Firestore stalled (its emulator paused): 503 UNAVAILABLE with
Retry-After within the store's deadline, never a hang and never a 500."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import requests


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("GET", "", None), ("POST", ":cancel", None), ("POST", ":wait", {"timeout": "0s"}),
    ("DELETE", "", None), ("GET", "LIST", None), ("POST", "JOB", None)],
    ids=["get", "cancel", "wait", "delete", "list", "create"])
def test_a_stalled_store_answers_503_with_retry_after(api, stack, parent, method, suffix, body):
    name = f"{parent}/operations/stalled"
    path = f"/v1/{name}{suffix}"
    if suffix == "LIST":
        path = f"/v1/{parent}/operations"
    if suffix == "JOB":
        path, body = f"/v1/{parent}/jobs", {"kind": "demo.countdown", "params": {"steps": 1}}
    api("GET", f"/v1/{name}")  # the function's Firestore channel is up before the pause
    firestore = stack.emulators.processes[0]
    firestore.pause()
    try:
        started = time.monotonic()
        response = api(method, path, json=body, timeout=60)
        took = time.monotonic() - started
    finally:
        firestore.resume()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    error = response.json()["error"]
    assert error["status"] == "UNAVAILABLE"
    assert error["details"][0]["reason"] in ("STORE_UNAVAILABLE", "PUBLISH_FAILED")
    assert took < 25  # FIRESTORE_DEADLINE_SECONDS is 5 in the e2e stack


def test_a_push_the_stalled_store_cannot_take_is_nacked_without_a_crash(api, stack, parent):
    """The worker answers 503, so Pub/Sub delivers the message again; its log
    has one warning for it, and no crash."""
    name = f"{parent}/operations/undelivered"
    message_id = uuid.uuid4().hex
    headers = {"ce-id": message_id, "ce-specversion": "1.0", "ce-source": "//pubsub.test",
               "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
               "Content-Type": "application/json"}
    body = {"message": {"data": base64.b64encode(json.dumps({"name": name}).encode()).decode(),
                        "messageId": message_id}}
    log_path = stack.logs / "operations_worker.log"
    seen = log_path.stat().st_size
    firestore = stack.emulators.processes[0]
    firestore.pause()
    try:
        response = requests.post(stack.worker_url, json=body, headers=headers, timeout=60)
    finally:
        firestore.resume()
    assert response.status_code == 503
    with log_path.open(errors="replace") as file:
        file.seek(seen)
        log = file.read()
    lines = [json.loads(line) for line in log.splitlines() if name in line]
    assert [(line["severity"], line["message"]) for line in lines] == [
        ("WARNING", "delivery failed; Pub/Sub will deliver it again")]
    assert "stack_trace" not in lines[0] and "Traceback" not in log
