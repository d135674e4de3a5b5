"""Create after a failed publish tells the truth, with a publisher that really
fails (a topic that does not exist on the Pub/Sub emulator) and the real
Firestore emulator: 503 "nothing was created" only when nothing is there."""

from __future__ import annotations

import contextlib
import threading

import pytest
from google.api_core import exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from lib.core import model
from lib.core.config import Settings
from lib.core.publisher import PubSubJobPublisher
from lib.core.service import OperationsService
from lib.core.store import FirestoreOperationStore
from tests.leases import claim_as

JOB = {"kind": "demo.countdown", "params": {"steps": 1, "stepSeconds": 0}}


class Then:
    """A publisher that does ``before(name)`` (real store calls), then publishes
    with the real, failing publisher."""

    def __init__(self, publisher, before):
        self._publisher = publisher
        self._before = before

    def publish(self, name):
        self._before(name)
        self._publisher.publish(name)


@pytest.fixture
def failing_publisher(emulators, unique):
    return PubSubJobPublisher(emulators.project, f"no-such-topic-{unique}", timeout_seconds=10)


@pytest.fixture
def impatient_store(emulators, unique):
    """A store that gives up at once on a locked document (no abort retries)
    and after 3 s on anything else."""
    return FirestoreOperationStore(firestore.Client(project=emulators.project),
                                   f"ops-{unique}", deadline_seconds=3, abort_retries=0)


def service_with(store, publisher, emulators):
    return OperationsService(store, publisher,
                             Settings(project=emulators.project, page_token_secret="s"))


@pytest.fixture
def parent(unique):
    return f"projects/p-{unique}/locations/us"


def names_under(store, parent):
    query = store._collection.where(filter=FieldFilter("parent", "==", parent))
    return [record["name"] for record in store._query(query)]


def test_a_failed_publish_of_an_untouched_job_is_503_and_leaves_nothing(
        store, emulators, failing_publisher, parent):
    service = service_with(store, failing_publisher, emulators)
    with pytest.raises(exceptions.ServiceUnavailable) as caught:
        service.create_job(parent, JOB, "dev@example.com")
    assert caught.value.reason == "PUBLISH_FAILED"
    assert "nothing was created" in caught.value.message
    assert names_under(store, parent) == []


def test_a_job_a_worker_claimed_before_the_publish_failed_is_answered_as_it_is(
        store, emulators, failing_publisher, parent):
    def claim(name):
        assert claim_as(store, name, owner="worker", now=model.utcnow(), lease_seconds=60)

    service = service_with(store, Then(failing_publisher, claim), emulators)
    operation = service.create_job(parent, JOB, "dev@example.com")
    assert operation.get("done", False) is False
    assert operation["metadata"]["value"]["attempt"] == 1
    assert operation["metadata"]["value"]["statusMessage"] == "Running."
    assert names_under(store, parent) == [operation["name"]]
    assert store.get(operation["name"])["state"] == "RUNNING"


@contextlib.contextmanager
def locked(store, name):
    """Holds a transaction's lock on the document (the emulator locks pessimistically)."""
    transaction = store._client.transaction()
    transaction._begin()
    store._ref(name).get(transaction=transaction)
    try:
        yield
    finally:
        transaction._rollback()


def discard_failed(caplog):
    return any("the discard failed too" in r.getMessage() for r in caplog.records)


def test_a_job_whose_discard_failed_but_is_there_is_answered_as_created(
        impatient_store, emulators, failing_publisher, parent, caplog):
    store = impatient_store
    held = contextlib.ExitStack()

    def lock(name):
        held.enter_context(locked(store, name))

    service = service_with(store, Then(failing_publisher, lock), emulators)
    with held:
        operation = service.create_job(parent, JOB, "dev@example.com")
    assert operation.get("done", False) is False
    assert operation["metadata"]["value"]["attempt"] == 0
    assert store.get(operation["name"])["state"] == "QUEUED"  # the sweep will publish it
    assert discard_failed(caplog)


class ThenAfterFailure:
    """A publisher that publishes with the real, failing publisher, then does
    ``after(name)`` before the failure reaches the service."""

    def __init__(self, publisher, after):
        self._publisher = publisher
        self._after = after

    def publish(self, name):
        try:
            self._publisher.publish(name)
        finally:
            self._after(name)


def test_a_job_whose_discard_failed_and_is_gone_is_503(
        emulators, failing_publisher, parent, unique, caplog):
    # Every call gives up after 2 s; Firestore is paused for 3 s right after
    # the document is deleted: the discard times out, the re-read (made
    # while Firestore is still paused) is answered once it resumes.
    store = FirestoreOperationStore(firestore.Client(project=emulators.project),
                                    f"ops-{unique}", deadline_seconds=2, abort_retries=0)
    firestore_emulator = emulators.processes[0]
    resumed = threading.Event()

    def delete_then_stall(name):
        store._ref(name).delete()
        firestore_emulator.pause()
        threading.Timer(3.0, lambda: (firestore_emulator.resume(), resumed.set())).start()

    service = service_with(store, ThenAfterFailure(failing_publisher, delete_then_stall),
                           emulators)
    try:
        with pytest.raises(exceptions.ServiceUnavailable) as caught:
            service.create_job(parent, JOB, "dev@example.com")
    finally:
        assert resumed.wait(30)
    assert caught.value.reason == "PUBLISH_FAILED"
    assert names_under(store, parent) == []
    assert discard_failed(caplog)
