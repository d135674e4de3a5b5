"""The cancel lifecycle on the real emulators: who and why reach the handler,
the acknowledgement is recorded once, a handler that ignores its cancel is
ended after the grace whatever it does, deadlines end operations with code 4,
shielded sections hold a cancel, and a cancel after the handler returned is
too late to discard its result."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from google.api_core import exceptions
from google.cloud import firestore

from lib.core import model
from lib.core.config import Settings
from lib.core.publisher import PubSubJobPublisher
from lib.core.store import FirestoreOperationStore
from lib.jobs.sweep import RecoverySweep
from lib.jobs.worker import OperationWorker
from lib.kinds import Param, register
from lib.tools.localstack import REPO
from tests.leases import claim_as, instance_expired
from tests.waiting import wait_for

SETTINGS = Settings(heartbeat_seconds=0.2, progress_min_interval_seconds=0,
                    cancel_grace_seconds=30)
GRACE = 0.6
RETENTION = timedelta(days=1)
_seen: dict[str, list] = {}


def create(store, unique, kind, name="op", deadline=None, **params):
    name = f"projects/{unique}/locations/l/operations/{name}"
    record = model.new_job(name=name, parent=name.rsplit("/", 2)[0], target="t", kind=kind,
                           params={"key": unique, **params}, created_by="t",
                           now=model.utcnow())
    if deadline is not None:
        record["deadline"] = deadline
    store.create(record)
    return name


def cancel(store, name, reason="the export is no longer needed"):
    store.cancel(name, principal="alice@example.com", now=model.utcnow(), retention=RETENTION,
                 reason=reason)


def cancel_once_running(store, name, **kwargs):
    def run():
        wait_for(lambda: store.get(name)["state"] == "RUNNING", timeout=20)
        time.sleep(0.1)
        cancel(store, name, **kwargs)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def error_info(record):
    details = model.operation_json(record)["error"]["details"]
    assert len(details) == 1
    return details[0]


@register("test.polite", params={"key": Param(str), "how": Param(str)})
def _polite(ctx, params):
    ctx.on_cancel(lambda: _seen.setdefault(params["key"], []).append("cleanup"))
    try:
        ctx.sleep(30)
    except exceptions.Cancelled:
        _seen.setdefault(params["key"], []).append(ctx.cancellation)
        raise
    return {}


def test_the_handler_learns_who_and_why_and_the_three_times_are_recorded(store, unique):
    name = create(store, unique, "test.polite")
    thread = cancel_once_running(store, name)
    assert OperationWorker(store, SETTINGS).run(name) == "cancelled"
    thread.join()
    cancellation, cleanup = _seen[unique][0], _seen[unique][1:]
    assert cancellation.cause == "request"
    assert cancellation.reason == "the export is no longer needed"
    assert cancellation.requested_by == "alice@example.com"
    record = store.get(name)
    assert cancellation.requested_at == record["cancelRequestTime"]
    assert cleanup == ["cleanup"]
    assert (record["cancelRequestTime"] <= record["cancelAcknowledgeTime"]
            <= record["endTime"])
    info = error_info(record)
    assert info["reason"] == "CANCELLED_BY_REQUEST"
    assert info["metadata"] == {"requestedBy": "alice@example.com",
                                "reason": "the export is no longer needed"}
    meta = model.operation_json(record)["metadata"]["value"]
    assert meta["cancelReason"] == "the export is no longer needed"
    assert meta["cancelRequestedBy"] == "alice@example.com"
    assert {"cancelRequestTime", "cancelAcknowledgeTime", "endTime"} <= set(meta)


class AckCountingStore(FirestoreOperationStore):
    """The real store, noting which of its writes carry the acknowledgement."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.acks: list[str] = []

    def update_running(self, name, lease, changes):
        if "cancelAcknowledgeTime" in changes:
            self.acks.append("own write")
        super().update_running(name, lease, changes)

    def finish(self, name, lease, changes, instance_dead_at=None):
        def noted(record):
            result = changes(record)
            if "cancelAcknowledgeTime" in result:
                self.acks.append("final write")
            return result

        return super().finish(name, lease, noted, instance_dead_at)


@pytest.mark.parametrize(("kind", "expected"), [
    ("test.polite", ["final write"]),
    ("test.stubborn", ["own write"]),
], ids=["a prompt handler: in its final write", "a stubborn one: its own write, once"])
def test_the_acknowledgement_is_written_once_though_listener_and_poll_both_see_it(
        store, unique, kind, expected):
    counting = AckCountingStore(store._client, store._collection.id)
    name = create(counting, unique, kind, how="sleep")
    # A 0.05 s heartbeat: the poll sees the cancel too, as well as the listener.
    worker = OperationWorker(counting, replace(SETTINGS, heartbeat_seconds=0.05))
    thread = cancel_once_running(counting, name)
    assert worker.run(name) in ("cancelled", "forced")
    thread.join()
    assert counting.acks == expected
    assert store.get(name)["cancelAcknowledgeTime"] is not None


@register("test.stubborn", params={"key": Param(str), "how": Param(str, default="sleep")},
          cancel_grace_seconds=GRACE)
def _stubborn(ctx, params):
    """Ignores its cancel: sleeps, spins, or blocks in a C call, then tries to
    write progress and return a result (none of which may land)."""
    key = params["key"]
    ctx.on_cancel(lambda: _seen.setdefault(key, []).append("cleanup"))
    ends = time.monotonic() + 3 * GRACE + 1
    how = params.get("how", "sleep")
    if how == "spin":
        while time.monotonic() < ends:
            pass
    elif how == "c-call":
        left, right = socket.socketpair()
        with left, right:
            left.settimeout(ends - time.monotonic())
            with contextlib.suppress(TimeoutError):
                left.recv(1)  # blocks in C: nothing is ever sent
    else:
        time.sleep(ends - time.monotonic())
    ctx.report_progress(99, "still going")
    ctx.checkpoint({"late": True})
    return {"late": True}


@pytest.mark.parametrize("how", ["spin", "c-call"], ids=["a busy loop", "a blocked C call"])
def test_a_handler_that_ignores_its_cancel_is_ended_after_the_grace(store, unique, how,
                                                                     caplog):
    name = create(store, unique, "test.stubborn", how=how)
    worker = OperationWorker(store, SETTINGS)
    committed = {}

    def cancel_it():
        wait_for(lambda: store.get(name)["state"] == "RUNNING", timeout=20)
        time.sleep(0.1)
        cancel(store, name)
        committed["at"] = time.monotonic()

    thread = threading.Thread(target=cancel_it)
    thread.start()
    caplog.set_level(logging.WARNING, logger="operations.worker")
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("run", worker.run(name)))
    runner.start()
    wait_for(lambda: store.get(name)["done"], timeout=3 * GRACE + 5)
    ended = time.monotonic()
    thread.join()
    forced = store.get(name)
    assert forced["state"] == "CANCELLED" and forced["error"]["code"] == 1
    assert error_info(forced)["reason"] == "CANCEL_FORCED"
    assert error_info(forced)["metadata"]["requestedBy"] == "alice@example.com"
    assert GRACE <= ended - committed["at"] < GRACE + 2.0  # the grace, then promptly
    assert forced["cancelRequestTime"] <= forced["cancelAcknowledgeTime"] <= forced["endTime"]
    wait_for(lambda: _seen.get(unique) == ["cleanup"], timeout=5)
    warnings = [r for r in caplog.records if "past the grace" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].json_fields["stuckAt"].startswith(__file__ + ":")
    runner.join(timeout=3 * GRACE + 10)
    assert result["run"] == "forced"
    assert store.get(name) == forced, "nothing the handler did after the grace was written"
    assert _seen[unique] == ["cleanup"], "cleanups ran once"


def test_a_cancel_inside_a_shielded_section_waits_for_its_exit(store, unique):
    steps: list[str] = []

    @register(f"test.shielded.{unique}", params={"key": Param(str)}, cancel_grace_seconds=GRACE)
    def shielded(ctx, params):
        with ctx.shielded():
            ctx.sleep(0.3)  # the cancel arrives here: held
            ctx.raise_if_cancelled()
            ctx.sleep(GRACE + 0.5)  # longer than the grace: never forced inside
            steps.append("committed")
        steps.append(f"cancelled={ctx.cancelled.is_set()}")
        ctx.sleep(30)
        return {}

    name = create(store, unique, f"test.shielded.{unique}")
    thread = cancel_once_running(store, name)
    assert OperationWorker(store, SETTINGS).run(name) == "cancelled"
    thread.join()
    assert steps == ["committed", "cancelled=True"]
    record = store.get(name)
    assert record["cancelAcknowledgeTime"] - record["cancelRequestTime"] >= timedelta(
        seconds=GRACE + 0.4), "acknowledged when the section exited"
    assert error_info(record)["reason"] == "CANCELLED_BY_REQUEST"


def test_a_cancel_that_lands_after_the_handler_returned_is_too_late(store, unique):
    """With no listener and a long heartbeat the handler cannot see a cancel it
    commits just before returning: the result is written, the cancel flag
    stays, and the cleanup does not run."""

    @register(f"test.late.{unique}", params={"key": Param(str)})
    def finishes(ctx, params):
        ctx.on_cancel(lambda: _seen.setdefault(unique, []).append("cleanup"))
        cancel(store, ctx.name)
        return {"done": True}

    name = create(store, unique, f"test.late.{unique}")
    worker = OperationWorker(store, replace(SETTINGS, cancel_listener=False,
                                            heartbeat_seconds=30))
    assert worker.run(name) == "succeeded"
    record = store.get(name)
    assert record["state"] == "SUCCEEDED" and record["response"] == {"done": True}
    assert model.operation_json(record)["metadata"]["value"]["requestedCancellation"] is True
    assert unique not in _seen


def test_a_queued_operation_past_its_deadline_ends_at_its_claim_with_code_4(store, unique):
    name = create(store, unique, "test.polite",
                  deadline=model.utcnow() - timedelta(seconds=1))
    assert OperationWorker(store, SETTINGS).run(name) == "skipped"
    record = store.get(name)
    assert record["state"] == "FAILED" and record["error"]["code"] == 4
    assert record["attempt"] == 0, "it never ran"
    assert error_info(record)["reason"] == "DEADLINE_EXCEEDED"


def test_the_sweep_ends_a_queued_operation_past_its_deadline(store, unique, emulators,
                                                             jobs_topic):
    name = create(store, unique, "test.polite",
                  deadline=model.utcnow() + timedelta(seconds=0.2))
    sweep = RecoverySweep(store, PubSubJobPublisher(emulators.project, jobs_topic[0]), SETTINGS)
    assert sweep.run()["deadline"] == 0
    time.sleep(0.3)
    assert sweep.run()["deadline"] == 1
    assert store.get(name)["error"]["code"] == 4


def test_a_running_operation_is_stopped_by_its_deadline_with_code_4(store, unique):
    name = create(store, unique, "test.polite",
                  deadline=model.utcnow() + timedelta(seconds=0.8))
    started = time.monotonic()
    assert OperationWorker(store, SETTINGS).run(name) == "deadline"
    assert time.monotonic() - started < 5
    record = store.get(name)
    assert record["state"] == "FAILED" and record["error"]["code"] == 4
    assert error_info(record)["reason"] == "DEADLINE_EXCEEDED"
    assert _seen[unique][0].cause == "deadline"
    assert _seen[unique][1:] == ["cleanup"]
    assert not record["cancelRequested"]


def test_a_stubborn_handler_past_its_deadline_is_forced_with_code_4(store, unique):
    name = create(store, unique, "test.stubborn",
                  deadline=model.utcnow() + timedelta(seconds=0.5))
    assert OperationWorker(store, SETTINGS).run(name) == "forced"
    record = store.get(name)
    assert record["error"]["code"] == 4
    assert error_info(record) == {**error_info(record), "reason": "DEADLINE_EXCEEDED",
                                  "metadata": {"forced": "true"}}


class CancelledRightAfterClaimStore(FirestoreOperationStore):
    """A store whose claim of ``target`` is followed, before the worker has
    its job, by a cancel that reaches the instance's listener first."""

    def __init__(self, *args, target, **kwargs):
        super().__init__(*args, **kwargs)
        self.target = target

    def claim(self, name, **kwargs):
        claimed = super().claim(name, **kwargs)
        if name == self.target and claimed is not None:
            cancel(self, name)
            inbox = self._inbox(claimed.lease.owner)
            wait_for(lambda: list(inbox.stream()), timeout=10, what="the inbox entry")
            time.sleep(0.5)  # the listener has it: the job is not there yet
        return claimed


def test_a_cancel_committed_between_the_claim_and_the_handler_start_is_not_lost(
        emulators, unique):
    client = firestore.Client(project=emulators.project)
    keeper = create(FirestoreOperationStore(client, f"ops-{unique}"), unique, "test.polite",
                    name="keeper")
    store = CancelledRightAfterClaimStore(client, f"ops-{unique}", target=keeper.replace(
        "keeper", "target"))
    target = create(store, unique, "test.polite", name="target")
    # A poll too slow to matter: only the push can tell the handler in time.
    worker = OperationWorker(store, replace(SETTINGS, heartbeat_seconds=60,
                                            lease_seconds=180))
    keeping = threading.Thread(target=worker.run, args=(keeper,))
    keeping.start()  # its job keeps the instance's listener open
    wait_for(lambda: store.get(keeper)["state"] == "RUNNING", timeout=20)
    started = time.monotonic()
    assert worker.run(target) == "cancelled"
    assert time.monotonic() - started < 15  # its 30 s sleep was cut short
    cancel(store, keeper)
    keeping.join(timeout=30)
    assert list(store._inbox(worker.instance.owner).stream()) == []


class PartitionedStore(FirestoreOperationStore):
    """A store whose instance-lease renewals fail while ``partitioned`` is set,
    as they would while this worker cannot reach Firestore."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.partitioned = threading.Event()

    def renew_instance(self, owner, **kwargs):
        if self.partitioned.is_set():
            raise exceptions.ServiceUnavailable("partitioned")
        return super().renew_instance(owner, **kwargs)


def test_a_handler_whose_job_was_taken_over_while_its_lease_lapsed_sees_lease_lost(
        emulators, unique):
    client = firestore.Client(project=emulators.project)
    store = PartitionedStore(client, f"ops-{unique}")
    elsewhere = FirestoreOperationStore(client, f"ops-{unique}")  # another worker's
    causes = []

    @register(f"test.lost.{unique}", params={"key": Param(str)})
    def waits(ctx, params):
        try:
            ctx.sleep(30)  # never writes: only the instance can tell it
        finally:
            causes.append(ctx.cancellation and ctx.cancellation.cause)
        return {}

    name = create(store, unique, f"test.lost.{unique}")

    def partition_then_take_over():
        wait_for(lambda: store.get(name)["state"] == "RUNNING", timeout=20)
        owner = store.get(name)["lease"]["owner"]
        store.partitioned.set()
        wait_for(lambda: instance_expired(store, owner), timeout=20)
        assert claim_as(elsewhere, name, owner="worker-b") is not None
        store.partitioned.clear()

    thread = threading.Thread(target=partition_then_take_over)
    thread.start()
    started = time.monotonic()
    worker = OperationWorker(store, replace(SETTINGS, lease_seconds=1))
    assert worker.run(name) == "lease_lost"
    thread.join()
    assert time.monotonic() - started < 20  # told, not left to sleep its 30 s
    assert causes == ["lease_lost"]
    record = store.get(name)
    assert (record["state"], record["lease"]["owner"]) == ("RUNNING", "worker-b")


STUBBORN_PROCESS = textwrap.dedent("""
    import sys, time
    from google.cloud import firestore
    from lib.core.config import Settings
    from lib.kinds import register
    from lib.core.store import FirestoreOperationStore
    from lib.jobs.worker import OperationWorker

    @register("test.deaf")
    def deaf(ctx, params):
        while True:
            time.sleep(0.05)

    store = FirestoreOperationStore(firestore.Client(project=sys.argv[1]), sys.argv[2])
    settings = Settings(lease_seconds=1.0, heartbeat_seconds=0.3, cancel_grace_seconds=30)
    print(OperationWorker(store, settings, owner="child").run(sys.argv[3]), flush=True)
""")


@pytest.mark.parametrize("sig", [signal.SIGSTOP, signal.SIGKILL], ids=["frozen", "killed"])
def test_a_cancelled_operation_ends_even_if_its_worker_process_stops(store, unique, emulators,
                                                                     jobs_topic, sig):
    """Grace (30 s here) never comes: the process is frozen or dead. Its
    instance lease (1 s) runs out and the next sweep ends the operation."""
    name = f"projects/{unique}/locations/l/operations/deaf"
    store.create(model.new_job(name=name, parent=name.rsplit("/", 2)[0], target="t",
                               kind="test.deaf", params={}, created_by="t", now=model.utcnow()))
    child = subprocess.Popen(
        [sys.executable, "-c", STUBBORN_PROCESS, emulators.project, store._collection.id, name],
        cwd=REPO, env={**os.environ, **emulators.env(), "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: store.get(name)["state"] == "RUNNING", timeout=20)
        cancel(store, name)
        cancelled_at = time.monotonic()
        child.send_signal(sig)
        sweep = RecoverySweep(store, PubSubJobPublisher(emulators.project, jobs_topic[0]),
                              SETTINGS)
        wait_for(lambda: sweep.run()["cancelled"] == 1 or store.get(name)["done"], timeout=20)
        record = store.get(name)
        assert record["state"] == "CANCELLED" and record["error"]["code"] == 1
        assert error_info(record)["reason"] == "CANCEL_FORCED"
        assert time.monotonic() - cancelled_at < 1.0 + 5  # lease + a few sweep passes
    finally:
        child.kill()
        child.wait()
