"""In-process store and worker on the real Firestore emulator."""

from __future__ import annotations

import json

import pytest
from google.cloud import firestore

from lib.core import model
from lib.core.store import FirestoreOperationStore


@pytest.fixture
def store(emulators, unique) -> FirestoreOperationStore:
    """A store on a collection of this test's own."""
    return FirestoreOperationStore(firestore.Client(project=emulators.project), f"ops-{unique}")


@pytest.fixture
def queued(store, unique):
    """``queued(steps=.., **params)`` writes a QUEUED demo.countdown job; returns its name."""
    counter = iter(range(1_000_000))

    def make(**params):
        params.setdefault("steps", 1)
        params.setdefault("stepSeconds", 0.0)
        name = f"projects/p-{unique}/locations/us/operations/op-{next(counter)}"
        store.create(model.new_job(name=name, parent=name.rsplit("/", 2)[0],
                                   target=name.replace("operations", "jobs"),
                                   kind="demo.countdown", params=params,
                                   created_by="test@example.com", now=model.utcnow()))
        return name

    return make


@pytest.fixture
def jobs_topic(emulators, unique):
    """A real topic with a pull subscription: what the sweep published, by name."""
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(emulators.project, f"sweep-{unique}")
    subscription = subscriber.subscription_path(emulators.project, f"sweep-{unique}")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic)

    def published() -> list[str]:
        response = subscriber.pull(subscription=subscription, max_messages=100, timeout=5)
        return sorted(json.loads(m.message.data)["name"] for m in response.received_messages)

    yield f"sweep-{unique}", published
    subscriber.close()
