"""The worker in-process, on the real Firestore emulator: cancellation is
pushed to the handler, the handler stops, and the result is written once."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace

import pytest

from lib import model
from lib.config import Settings
from lib.kinds import Param, register
from lib.worker import OperationWorker, job_name

SETTINGS = Settings(heartbeat_seconds=0.2, progress_min_interval_seconds=0)


def cancel_soon(store, name, after=0.3):
    """Requests a cancel once the operation is RUNNING; returns when it committed."""
    committed = {}

    def run():
        deadline = time.monotonic() + 10
        while store.get(name)["state"] != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(after)
        store.cancel(name, principal="alice@example.com", now=model.utcnow(),
                     retention=timedelta(days=1))
        committed["at"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, committed


@pytest.mark.parametrize("listener", [True, False], ids=["pushed by the listener",
                                                         "found by the heartbeat poll"])
def test_a_cancel_cuts_a_30_second_step_short(store, queued, listener):
    name = queued(steps=3, stepSeconds=30)
    worker = OperationWorker(store, replace(SETTINGS, cancel_listener=listener))
    thread, committed = cancel_soon(store, name)
    assert worker.run(name) == "cancelled"
    stopped = time.monotonic()
    thread.join()
    record = store.get(name)
    assert record["state"] == "CANCELLED"
    assert record["error"]["code"] == 1
    assert record["progressPercent"] == 0, "no step after the cancel may have run"
    # Wide margins: the listener takes ~10 ms, the poll at most one heartbeat.
    assert stopped - committed["at"] < (2.0 if listener else 5.0)


def test_the_listener_and_heartbeat_threads_end_with_the_handler(store, queued):
    name = queued(steps=2, stepSeconds=0.2)
    before = {t.ident for t in threading.enumerate()}
    during: set[str] = set()
    finished = threading.Event()

    def sample():
        while not finished.wait(0.01):
            during.update(t.name for t in threading.enumerate() if t.ident not in before)

    sampler = threading.Thread(target=sample)
    sampler.start()
    assert OperationWorker(store, SETTINGS).run(name) == "succeeded"
    finished.set()
    sampler.join()
    before.add(sampler.ident)
    assert any("heartbeat" in n for n in during) and any("ConsumeBidi" in n for n in during)
    deadline = time.monotonic() + 5  # the listener's threads take a moment to exit
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
        if not left:
            break
        time.sleep(0.05)
    assert left == []


def test_a_successful_run_writes_the_response_and_full_progress(store, queued):
    name = queued(steps=4, stepSeconds=0)
    assert OperationWorker(store, SETTINGS).run(name) == "succeeded"
    record = store.get(name)
    assert record["response"] == {"steps": 4}
    assert record["progressPercent"] == 100
    assert record["lease"] is None
    assert record["expireTime"] > record["endTime"]


def test_fail_at_step_ends_with_failed_precondition(store, queued):
    name = queued(steps=5, stepSeconds=0, failAtStep=3)
    assert OperationWorker(store, SETTINGS).run(name) == "failed"
    record = store.get(name)
    assert record["error"]["code"] == 9
    assert record["state"] == "FAILED"


def test_a_duplicate_message_does_no_work_twice(store, queued):
    name = queued(steps=1, stepSeconds=0.5)
    results = []
    workers = [OperationWorker(store, SETTINGS, owner=f"w{i}") for i in range(5)]
    threads = [threading.Thread(target=lambda w=w: results.append(w.run(name))) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["skipped"] * 4 + ["succeeded"]
    assert store.get(name)["attempt"] == 1
    assert OperationWorker(store, SETTINGS).run(name) == "skipped"


def test_an_operation_cancelled_while_queued_is_never_run(store, queued):
    name = queued(steps=1)
    store.cancel(name, principal="a", now=model.utcnow(), retention=timedelta(days=1))
    assert OperationWorker(store, SETTINGS).run(name) == "skipped"
    assert store.get(name)["attempt"] == 0


_cleanups: list[str] = []


@register("test.cleanup", params={"seconds": Param(float, default=30.0)})
def _with_cleanup(ctx, params):
    ctx.on_cancel(lambda: _cleanups.append("cleaned"))
    ctx.sleep(params["seconds"])
    return {}


def test_a_cleanup_callback_runs_exactly_once_on_cancel(store, unique):
    name = f"projects/{unique}/locations/l/operations/c"
    store.create(model.new_job(name=name, parent="p", target="t", kind="test.cleanup",
                               params={"seconds": 30.0}, created_by="t", now=model.utcnow()))
    _cleanups.clear()
    thread, _ = cancel_soon(store, name, after=0.1)
    assert OperationWorker(store, SETTINGS).run(name) == "cancelled"
    thread.join()
    assert _cleanups == ["cleaned"]


def message(data: bytes):
    return SimpleNamespace(data={"message": {"data": base64.b64encode(data).decode()}})


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"name": 3}', b'{"name": "a//b"}',
                                  b'{"other": "x"}'],
                         ids=["garbage", "a list", "a number name", "a bad name", "no name"])
def test_a_message_that_can_never_be_processed_is_acknowledged(store, data):
    assert job_name(message(data)) is None
    OperationWorker(store, SETTINGS).handle_message(message(data))  # returns: acked, not retried


def test_a_message_for_a_deleted_operation_is_skipped(store, unique):
    name = f"projects/{unique}/locations/l/operations/gone"
    worker = OperationWorker(store, SETTINGS)
    assert job_name(message(json.dumps({"name": name}).encode())) == name
    assert worker.run(name) == "skipped"
