"""Over HTTP, with Firestore stalled (its emulator paused): 503 UNAVAILABLE with
Retry-After within the store's deadline, never a hang and never a 500."""

from __future__ import annotations

import time

import pytest


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
