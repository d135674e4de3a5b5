"""A stalled Firestore (its emulator paused with SIGSTOP): every call ends
within its deadline as 503 UNAVAILABLE, nothing hangs, and the work resumes
when Firestore does."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
from google.api_core import exceptions
from google.cloud import firestore

from lib import model
from lib.store import FirestoreOperationStore

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
        "claim": lambda: bounded.claim(name, owner="w", now=model.utcnow(), lease_seconds=5),
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
