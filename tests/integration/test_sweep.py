"""The recovery sweep on the real emulators: it re-publishes what a dead worker
left, finishes what it must, and never touches a live worker's operation."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

from google.cloud import firestore

from lib.core import model
from lib.core.config import Settings
from lib.core.publisher import PubSubJobPublisher
from lib.core.store import FirestoreOperationStore
from lib.jobs.sweep import RecoverySweep
from lib.jobs.worker import OperationWorker
from tests.leases import claim_as

SETTINGS = Settings(max_attempts=2, sweep_queued_after_seconds=1, heartbeat_seconds=0.2,
                    progress_min_interval_seconds=0)


def sweep(store, emulators, topic, at, settings=SETTINGS):
    publisher = PubSubJobPublisher(emulators.project, topic)
    return RecoverySweep(store, publisher, settings, clock=lambda: at).run()


def test_a_dead_workers_operation_is_republished_and_taken_over(store, queued, emulators,
                                                                 jobs_topic):
    topic, published = jobs_topic
    name = queued(steps=1, stepSeconds=0)
    dead = claim_as(store, name, owner="dead", now=model.utcnow(), lease_seconds=1)
    later = model.utcnow() + timedelta(seconds=5)
    assert sweep(store, emulators, topic, later)["republished"] == 1
    assert published() == [name]
    assert OperationWorker(store, SETTINGS, clock=lambda: later).run(name) == "succeeded"
    record = store.get(name)
    assert record["attempt"] == 2 and record["response"] == {"steps": 1}
    assert store.finish(name, dead.lease, lambda r: model.cancelled_changes(
        now=later, retention=timedelta(days=1))) is False, "the dead worker must write nothing"
    assert store.get(name) == record


def test_a_live_workers_operation_is_left_alone(store, queued, emulators, jobs_topic):
    topic, published = jobs_topic
    name = queued()
    claim_as(store, name, owner="alive", now=model.utcnow(), lease_seconds=60)
    assert sweep(store, emulators, topic, model.utcnow()) == {
        "republished": 0, "cancelled": 0, "failed": 0, "requeued": 0, "deadline": 0,
        "errors": 0, "events": 0}
    assert published() == []


def test_a_cancel_requested_before_the_worker_died_ends_cancelled(store, queued, emulators,
                                                                  jobs_topic):
    topic, _ = jobs_topic
    name = queued()
    claim_as(store, name, owner="dead", now=model.utcnow(), lease_seconds=1)
    store.cancel(name, principal="a", now=model.utcnow(), retention=timedelta(days=1))
    inbox = store._inbox("dead")
    assert [entry.id for entry in inbox.stream()] == [model.document_id(name)]
    assert sweep(store, emulators, topic, model.utcnow() + timedelta(seconds=5))["cancelled"] == 1
    record = store.get(name)
    assert record["done"] and record["error"]["code"] == 1
    # Nothing points at the dead instance any more: it is forgotten, its inbox too.
    assert not store._instances.document("dead").get().exists
    assert list(inbox.stream()) == []


def test_an_operation_whose_workers_keep_dying_fails_after_max_attempts(store, queued,
                                                                       emulators, jobs_topic):
    topic, _ = jobs_topic
    name = queued()
    now = model.utcnow()
    for attempt in range(SETTINGS.max_attempts):
        claim_as(store, name, owner=f"dead-{attempt}", now=now + timedelta(seconds=10 * attempt),
                    lease_seconds=1)
    report = sweep(store, emulators, topic, now + timedelta(seconds=60))
    assert report["failed"] == 1
    record = store.get(name)
    assert record["state"] == "FAILED" and record["error"]["code"] == 10  # ABORTED
    assert "2 attempts" in record["error"]["message"]


def test_a_queued_operation_whose_message_was_lost_is_requeued(store, queued, emulators,
                                                               jobs_topic):
    topic, published = jobs_topic
    fresh_settings = replace(SETTINGS, sweep_queued_after_seconds=3600)
    name = queued()
    assert sweep(store, emulators, topic, model.utcnow(), fresh_settings)["requeued"] == 0
    assert sweep(store, emulators, topic, model.utcnow() + timedelta(seconds=5))["requeued"] == 1
    assert published() == [name]


def test_an_operation_locked_by_a_frozen_transaction_is_skipped_not_fatal(store, queued,
                                                                         emulators, jobs_topic):
    """A worker frozen inside a transaction keeps its document locked (until
    Firestore expires the lock): the sweep counts that one as an error and
    still recovers the rest; the next pass recovers it."""
    topic, _ = jobs_topic
    locked, free = queued(), queued()
    for name in (locked, free):
        claim_as(store, name, owner="dead", now=model.utcnow(), lease_seconds=1)
        store.cancel(name, principal="a", now=model.utcnow(), retention=timedelta(days=1))
    impatient = FirestoreOperationStore(firestore.Client(project=emulators.project),
                                        store._collection.id, abort_retries=0)
    holding, release = threading.Event(), threading.Event()
    holder_client = firestore.Client(project=emulators.project)

    @firestore.transactional
    def hold(transaction):
        impatient._ref(locked).get(transaction=transaction)
        holding.set()
        release.wait(30)

    holder = threading.Thread(target=hold, args=(holder_client.transaction(),))
    holder.start()
    try:
        assert holding.wait(10)
        later = model.utcnow() + timedelta(seconds=5)
        report = sweep(impatient, emulators, topic, later)
        assert report["cancelled"] == 1 and report["errors"] == 1
        assert store.get(free)["done"] and not store.get(locked)["done"]
    finally:
        release.set()
        holder.join()
    assert sweep(impatient, emulators, topic, later)["cancelled"] == 1
    assert store.get(locked)["error"]["code"] == 1
