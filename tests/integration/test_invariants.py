"""The invariant checker on the real Firestore emulator: what the real store,
worker and sweep write passes; documents corrupted with the raw client are
reported by name and rule; ``python -m lib.tools.invariants`` exits 1 on those."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta

from google.api_core import exceptions

from lib.core import model
from lib.core.config import Settings
from lib.core.publisher import PubSubJobPublisher
from lib.jobs.sweep import RecoverySweep
from lib.jobs.worker import OperationWorker
from lib.kinds import register
from lib.tools.invariants import check_collection
from lib.tools.localstack import REPO
from tests.leases import claim_as

SETTINGS = Settings(heartbeat_seconds=0.2, progress_min_interval_seconds=0)
SWEEP = timedelta(seconds=60)
RETENTION = timedelta(days=30)
DROP = object()  # in corrupt(): remove the field


@register("test.invariants.self_cancel")
def _self_cancel(ctx, params):
    raise exceptions.Cancelled("the backend cancelled our call")


def check(store, now=None):
    return check_collection(store._client, store._collection.id, now or model.utcnow(), SWEEP)


def rules_by_name(report):
    found: dict[str, set[str]] = {}
    for violation in report.violations:
        found.setdefault(violation.name, set()).add(violation.rule)
    return found


def cancel(store, name):
    return store.cancel(name, principal="alice@example.com", now=model.utcnow(),
                        retention=RETENTION)


def claim(store, name, lease_seconds=60.0, owner="worker-a"):
    return claim_as(store, name, owner=owner, lease_seconds=lease_seconds)


def cancel_once_running(store, name):
    def run():
        deadline = time.monotonic() + 10
        while store.get(name)["state"] != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.01)
        cancel(store, name)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def legitimate(store, queued, state):
    """A legitimate operation in ``state``, written by the real code paths."""
    name = queued(steps=1, stepSeconds=0.0, **({"failAtStep": 1} if state == "FAILED" else {}))
    if state == "CANCELLED":
        cancel(store, name)
    elif state == "RUNNING":
        claim(store, name)
    elif state != "QUEUED":
        OperationWorker(store, SETTINGS).run(name)
    assert store.get(name)["state"] == state
    return name


def corrupt(store, name, document_id=None, **changes):
    """Rewrites the document with the raw client, bypassing the store."""
    record = store.get(name)
    for key, value in changes.items():
        if value is DROP:
            record.pop(key)
        else:
            record[key] = value
    collection = store._client.collection(store._collection.id)
    if document_id is not None:
        collection.document(model.document_id(name)).delete()
    collection.document(document_id or model.document_id(name)).set(record)


def test_operations_the_real_code_wrote_break_no_rule(store, queued, emulators, jobs_topic):
    names = [legitimate(store, queued, state) for state in
             ("QUEUED", "CANCELLED", "RUNNING", "SUCCEEDED", "FAILED")]
    cancelling = legitimate(store, queued, "RUNNING")
    cancel(store, cancelling)
    sliced = queued(steps=3, stepSeconds=0.0)
    assert OperationWorker(store, replace(SETTINGS, slice_seconds=1e-9)).run(sliced) == "continued"
    cancelled = queued(steps=1, stepSeconds=30.0)
    thread = cancel_once_running(store, cancelled)
    assert OperationWorker(store, SETTINGS).run(cancelled) == "cancelled"
    thread.join()
    dead = queued()
    # A worker that claimed it a minute ago, with a 1 s lease, and died.
    claim_as(store, dead, owner="dead-worker", now=model.utcnow() - timedelta(minutes=1),
             lease_seconds=1)
    cancel(store, dead)
    publisher = PubSubJobPublisher(emulators.project, jobs_topic[0])
    assert RecoverySweep(store, publisher, SETTINGS).run()["cancelled"] == 1

    report = check(store)
    assert report.violations == [] and report.warnings == []
    assert report.operations == len(names) + 4
    assert report.by_state == {"QUEUED": 2, "RUNNING": 2, "SUCCEEDED": 1, "FAILED": 1,
                               "CANCELLED": 3}
    assert store.get(sliced)["continuations"] == 1


def test_a_handler_raising_cancelled_on_its_own_leaves_a_consistent_record(store, unique):
    name = f"projects/{unique}/locations/l/operations/self-cancel"
    store.create(model.new_job(name=name, parent=f"projects/{unique}/locations/l", target="t",
                               kind="test.invariants.self_cancel", params={}, created_by="t",
                               now=model.utcnow()))
    OperationWorker(store, SETTINGS).run(name)
    assert rules_by_name(check(store)) == {}


def test_corrupted_documents_are_reported_by_name_and_rule(store, queued):
    now = model.utcnow()
    cases = [  # (legitimate state, changes, the rules it must then break)
        ("SUCCEEDED", {"error": {"code": 2, "message": "x"}}, {"DONE_WITH_BOTH_RESULTS"}),
        ("SUCCEEDED", {"response": DROP}, {"DONE_WITHOUT_RESULT"}),
        ("FAILED", {"error": DROP, "response": {"ok": True}}, {"FAILED_WITHOUT_ERROR"}),
        ("FAILED", {"error": {"code": 0}}, {"FAILED_WITH_OK_OR_CANCELLED_CODE"}),
        ("CANCELLED", {"error": {"code": 10, "message": "x"}}, {"CANCELLED_WITHOUT_CODE_1"}),
        ("CANCELLED", {"cancelRequested": False, "cancelRequestTime": DROP,
                       "cancelRequestedBy": DROP}, {"CANCELLED_WITHOUT_REQUEST"}),
        ("QUEUED", {"done": True}, {"DONE_STATE_MISMATCH"}),
        ("RUNNING", {"endTime": now + timedelta(hours=1)}, {"PENDING_WITH_END_TIME"}),
        ("SUCCEEDED", {"endTime": DROP}, {"DONE_WITHOUT_END_TIME"}),
        ("FAILED", {"endTime": now - timedelta(hours=1)}, {"END_BEFORE_CREATE"}),
        ("RUNNING", {"lease": None}, {"RUNNING_WITHOUT_LEASE"}),
        ("RUNNING", {"lease": {"owner": "gone", "token": 1}}, {"LEASE_WITHOUT_INSTANCE"}),
        ("RUNNING", {"lease": {"owner": "long-dead", "token": 1}}, {"LEASE_STUCK"}),
        ("QUEUED", {"lease": {"owner": "w", "token": 1}}, {"LEASE_NOT_RELEASED"}),
        ("QUEUED", {"attempt": 2}, {"QUEUED_CLAIMED_WITHOUT_CONTINUATION"}),
        ("RUNNING", {"attempt": -1}, {"ATTEMPT_INVALID"}),
        ("RUNNING", {"progressPercent": 150}, {"PROGRESS_OUT_OF_RANGE"}),
        ("QUEUED", {"parent": "projects/elsewhere/locations/l"}, {"PARENT_MISMATCH"}),
        ("QUEUED", {"createTime": DROP}, {"FIELD_MISSING"}),
        ("QUEUED", {"state": "PAUSED"}, {"UNKNOWN_STATE"}),
    ]
    store.renew_instance("long-dead", now=now - timedelta(minutes=10), lease_seconds=60)
    expected = {}
    for state, changes, rules in cases:
        name = legitimate(store, queued, state)
        corrupt(store, name, **changes)
        expected[name] = rules
    moved = legitimate(store, queued, "QUEUED")
    corrupt(store, moved, document_id="not-its-id")
    expected[moved] = {"DOCUMENT_ID_MISMATCH"}
    unknown_kind = legitimate(store, queued, "SUCCEEDED")
    corrupt(store, unknown_kind, kind="acme.retired")
    clean = legitimate(store, queued, "SUCCEEDED")

    report = check(store)
    assert rules_by_name(report) == expected
    assert [(w.name, w.rule) for w in report.warnings] == [(unknown_kind, "UNKNOWN_KIND")]
    assert clean not in rules_by_name(report)
    assert report.operations == len(expected) + 2


def test_a_collection_larger_than_a_page_is_read_whole(store, unique):
    collection = store._client.collection(store._collection.id)
    now = model.utcnow()
    for first in (0, 500, 1000):
        batch = store._client.batch()
        for i in range(first, min(first + 500, 1001)):
            name = f"projects/{unique}/locations/l/operations/op-{i:04d}"
            batch.set(collection.document(model.document_id(name)), model.new_job(
                name=name, parent=f"projects/{unique}/locations/l", target="t",
                kind="demo.countdown", params={"steps": 1}, created_by="t", now=now))
        batch.commit()
    corrupt(store, f"projects/{unique}/locations/l/operations/op-1000", progressPercent=-5)
    report = check(store)
    assert (report.operations, report.by_state) == (1001, {"QUEUED": 1001})
    assert [v.rule for v in report.violations] == ["PROGRESS_OUT_OF_RANGE"]


def run_cli(emulators, store, *args):
    env = {**os.environ, **emulators.env(), "OPERATIONS_COLLECTION": store._collection.id}
    done = subprocess.run([sys.executable, "-m", "lib.tools.invariants", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.stderr == ""
    return done.returncode, json.loads(done.stdout)


def test_the_cli_exits_0_on_a_clean_collection_and_1_naming_a_broken_operation(
        store, queued, emulators):
    assert run_cli(emulators, store) == (0, {
        "project": emulators.project, "collection": store._collection.id,
        "operations": 0, "by_state": {}, "violations": [], "warnings": []})
    succeeded = legitimate(store, queued, "SUCCEEDED")
    legitimate(store, queued, "QUEUED")
    code, summary = run_cli(emulators, store)
    assert (code, summary["operations"], summary["violations"]) == (0, 2, [])
    assert summary["by_state"] == {"QUEUED": 1, "SUCCEEDED": 1}

    corrupt(store, succeeded, error={"code": 1, "message": "late cancel"})
    code, summary = run_cli(emulators, store)
    assert code == 1
    assert {(v["name"], v["rule"]) for v in summary["violations"]} == {
        (succeeded, "DONE_WITH_BOTH_RESULTS"), (succeeded, "CODE_1_NOT_CANCELLED")}


def test_the_cli_judges_a_lease_stuck_by_the_sweep_interval_it_is_given(store, queued,
                                                                        emulators):
    name = legitimate(store, queued, "RUNNING")
    store.renew_instance("gone", now=model.utcnow() - timedelta(seconds=160), lease_seconds=60)
    corrupt(store, name, lease={"owner": "gone", "token": 1})
    assert run_cli(emulators, store)[0] == 0  # 100 s < 60 s sweep + 60 s lease
    code, summary = run_cli(emulators, store, "--sweep-interval-seconds", "30")
    assert code == 1
    assert [(v["name"], v["rule"]) for v in summary["violations"]] == [(name, "LEASE_STUCK")]

