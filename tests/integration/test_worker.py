"""The worker in-process, on the real Firestore emulator: cancellation is
pushed to the handler, the handler stops, and the result is written once."""

from __future__ import annotations

import base64
import json
import os
import random
import threading
import time
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace

import pytest

from lib.core import model
from lib.core.config import Settings
from lib.jobs.worker import OperationWorker, job_name
from lib.kinds import Param, register
from tests.leases import claim_as
from tests.waiting import wait_for

SETTINGS = Settings(heartbeat_seconds=0.2, progress_min_interval_seconds=0)


def cancel_soon(store, name, after=0.3):
    """Requests a cancel once the operation is RUNNING; returns when it committed."""
    committed = {}

    def run():
        wait_for(lambda: store.get(name)["state"] == "RUNNING")
        time.sleep(after)  # let the handler get into its step
        store.cancel(name, principal="alice@example.com", now=model.utcnow(),
                     retention=timedelta(days=1))
        committed["at"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, committed


def test_the_listener_pushes_a_cancel_that_cuts_a_30_second_step_short(store, queued):
    """With a 30 s heartbeat, only the listener can deliver the cancel in time."""
    name = queued(steps=3, stepSeconds=30)
    worker = OperationWorker(store, replace(SETTINGS, heartbeat_seconds=30))
    thread, committed = cancel_soon(store, name)
    assert worker.run(name) == "cancelled"
    stopped = time.monotonic()
    thread.join()
    record = store.get(name)
    assert record["state"] == "CANCELLED"
    assert record["error"]["code"] == 1
    assert record["progressPercent"] == 0, "no step after the cancel may have run"
    assert stopped - committed["at"] < 1.0


def test_without_the_listener_the_heartbeat_poll_finds_the_cancel(store, queued):
    name = queued(steps=3, stepSeconds=30)
    worker = OperationWorker(store, replace(SETTINGS, cancel_listener=False))
    thread, committed = cancel_soon(store, name)
    assert worker.run(name) == "cancelled"
    stopped = time.monotonic()
    thread.join()
    assert store.get(name)["error"]["code"] == 1
    assert stopped - committed["at"] < 5.0  # at most one heartbeat (0.2 s), wide margin


def test_the_instance_thread_and_listener_end_with_the_last_job(store, queued):
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
    assert "worker instance" in during and any("ConsumeBidi" in n for n in during)
    wait_for(lambda: not [t for t in threading.enumerate()
                                 if t.ident not in before and t.is_alive()])


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


_race_gates: dict[str, threading.Barrier] = {}


@register("test.race", params={"key": Param(str, required=True)})
def _returns_at_the_gate(ctx, params):
    _race_gates[params["key"]].wait()
    return {"ok": True}


def test_a_cancel_racing_completion_ends_with_exactly_one_result(store, unique):
    """The worker's real finalize against a cancel, released together with a
    random skew. Whoever loses writes nothing of its own: a finalize that
    commits first leaves the cancel nothing to change; a cancel that commits
    first but after the handler returned is too late, so the result is written
    and ``requestedCancellation`` stays true; a cancel the handler saw first
    ends it cancelled with no response.

    RACE_ROUNDS=100 runs the long version.
    """
    rng = random.Random(7)
    worker = OperationWorker(store, SETTINGS)
    seen = set()
    for round_ in range(int(os.environ.get("RACE_ROUNDS", "12"))):
        name = f"projects/{unique}/locations/l/operations/race-{round_}"
        key = f"{unique}-{round_}"
        _race_gates[key] = threading.Barrier(2)
        store.create(model.new_job(name=name, parent=name.rsplit("/", 2)[0], target="t",
                                   kind="test.race", params={"key": key}, created_by="t",
                                   now=model.utcnow()))
        skew = rng.uniform(-0.02, 0.02)

        def cancel_it(name=name, key=key, skew=skew):
            _race_gates[key].wait()
            time.sleep(max(-skew, 0))
            store.cancel(name, principal="alice@example.com", now=model.utcnow(),
                         retention=timedelta(days=1))

        canceller = threading.Thread(target=cancel_it)
        canceller.start()
        outcome = worker.run(name)
        canceller.join()
        record = store.get(name)
        seen.add(outcome)
        assert record["done"] is True
        assert ("response" in record) != ("error" in record)
        if outcome == "succeeded":
            assert record["state"] == "SUCCEEDED" and record["response"] == {"ok": True}
            assert record["statusMessage"] == "Succeeded." and record["progressPercent"] == 100
            if record["cancelRequested"]:  # committed first, but too late
                assert record["cancelRequestTime"] <= record["endTime"]
                assert "cancelAcknowledgeTime" not in record
            else:  # the finalize won: the cancel wrote nothing at all
                assert "cancelRequestTime" not in record and "cancelReason" not in record
        else:
            assert outcome == "cancelled"
            assert record["state"] == "CANCELLED" and record["error"]["code"] == 1
            assert record["statusMessage"] == "Cancelled."
            assert (record["cancelRequestTime"] <= record["cancelAcknowledgeTime"]
                    <= record["endTime"])
    assert seen <= {"succeeded", "cancelled"}


def test_an_orphaned_claim_of_this_very_instance_is_taken_again(store, queued):
    """A claim whose commit landed after its caller gave up leaves the job
    RUNNING under this live instance, which does not run it: the redelivery
    takes it again (a new token) instead of skipping it for as long as we live."""
    name = queued(steps=1, stepSeconds=0)
    orphan = claim_as(store, name, owner="me")
    assert OperationWorker(store, SETTINGS, owner="me").run(name) == "succeeded"
    record = store.get(name)
    assert record["attempt"] == 2 and record["response"] == {"steps": 1}
    assert not store.finish(name, orphan.lease, lambda r: model.failed_changes(
        2, "late", now=model.utcnow(), retention=timedelta(days=1))), "the orphan is fenced"


def test_a_second_delivery_to_the_process_running_it_does_no_work(store, queued):
    name = queued(steps=1, stepSeconds=1.0)
    worker = OperationWorker(store, SETTINGS, owner="me")
    first = []
    runner = threading.Thread(target=lambda: first.append(worker.run(name)))
    runner.start()
    wait_for(lambda: worker.instance.running() == 1)
    assert worker.run(name) == "skipped"
    runner.join()
    assert first == ["succeeded"] and store.get(name)["attempt"] == 1
