"""A stalled Firestore (its emulator paused with SIGSTOP): every call ends
within its deadline as 503 UNAVAILABLE, nothing hangs, and the work resumes
when Firestore does."""

from __future__ import annotations

import base64
import json
import logging
import time
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from google.api_core import exceptions
from google.cloud import firestore

from lib.core import model
from lib.core.config import Settings
from lib.core.publisher import PubSubJobPublisher
from lib.core.store import FirestoreOperationStore
from lib.jobs.sweep import RecoverySweep
from lib.jobs.worker import OperationWorker, Redeliver
from tests.leases import claim_as

DEADLINE = 1.5


@contextmanager
def paused(emulators):
    """The Firestore emulator stopped (SIGSTOP, every process of it); resumed after."""
    emulators.processes[0].pause()
    try:
        yield
    finally:
        emulators.processes[0].resume()


@pytest.fixture
def bounded(emulators, unique, queued, store):
    """A second store on the same collection, with a short deadline."""
    client = firestore.Client(project=emulators.project)
    return FirestoreOperationStore(client, store._collection.id, deadline_seconds=DEADLINE)


@pytest.mark.parametrize("call", ["get", "cancel", "claim", "list"])
def test_a_stalled_firestore_is_unavailable_within_the_deadline(emulators, bounded, queued,
                                                                call):
    name = queued()
    bounded.get(name)  # connected before the pause
    actions = {
        "get": lambda: bounded.get(name),
        "cancel": lambda: bounded.cancel(name, principal="a", now=model.utcnow(),
                                         retention=__import__("datetime").timedelta(days=1)),
        "claim": lambda: claim_as(bounded, name, owner="w", now=model.utcnow(), lease_seconds=5),
        "list": lambda: bounded.list_page(name.rsplit("/", 2)[0], matches=lambda r: True,
                                          equalities={}, bounds=[], size=5, after=None,
                                          now=model.utcnow()),
    }
    with paused(emulators):
        started = time.monotonic()
        with pytest.raises(exceptions.ServiceUnavailable) as caught:
            actions[call]()
        took = time.monotonic() - started
    assert caught.value.reason == "STORE_UNAVAILABLE"
    # A transaction makes up to three calls (begin, read, rollback), each bounded.
    assert took < 4 * DEADLINE + 3
    assert bounded.get(name)["state"] == "QUEUED", "and it works again once resumed"


def test_a_delivery_the_stalled_store_cannot_claim_is_handed_back_to_pub_sub(
        emulators, bounded, queued, caplog):
    name = queued()
    bounded.get(name)
    event = SimpleNamespace(data={"message": {
        "data": base64.b64encode(json.dumps({"name": name}).encode()).decode()}})
    with paused(emulators), pytest.raises(Redeliver):
        OperationWorker(bounded, Settings()).handle_message(event)
    warning = next(r for r in caplog.records if r.name == "operations.worker")
    assert warning.levelno == logging.WARNING and warning.exc_info is None
    assert warning.json_fields == {"operation": name, "reason": "STORE_UNAVAILABLE"}
    assert bounded.get(name)["state"] == "QUEUED", "the next delivery runs it"


def test_a_sweep_tick_on_a_stalled_store_is_skipped_with_a_warning(emulators, bounded, caplog,
                                                                   jobs_topic):
    sweep = RecoverySweep(bounded, PubSubJobPublisher(emulators.project, jobs_topic[0]),
                          Settings())
    with paused(emulators):
        sweep.tick()  # returns: the tick is acknowledged
    warning = next(r for r in caplog.records if r.name == "operations.sweep")
    assert warning.levelno == logging.WARNING and warning.exc_info is None
    assert warning.json_fields == {"reason": "STORE_UNAVAILABLE"}
