"""Lifecycle events on the real emulators: marked (in the outbox collection)
in the transaction that changes the state, published after it commits, and
published by the sweep when the process that committed died before publishing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from google.cloud import firestore

from lib import model
from lib.config import Settings
from lib.publisher import PubSubEventPublisher, PubSubJobPublisher
from lib.store import FirestoreOperationStore
from lib.sweep import PENDING_EVENTS_AGE, RecoverySweep
from lib.worker import OperationWorker
from tests.leases import claim_as

SETTINGS = Settings(heartbeat_seconds=0.2, progress_min_interval_seconds=0)
RETENTION = timedelta(days=1)


class Killed(BaseException):
    """The process died right after the commit, before any publish."""


class DiesBeforePublishing:
    def publish_events(self, messages):
        raise Killed


FUTURE = model.utcnow() + timedelta(days=1)


def marked(store, name):
    """The event types still marked pending for ``name``."""
    return [m.event_type for m in store.pending_events(FUTURE, 100) if m.operation == name]


@pytest.fixture
def events_topic(emulators, unique):
    """A real events topic with a pull subscription: ``pulled()`` returns
    (operation, eventType, state, code) of each message, acknowledged."""
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(emulators.project, f"events-{unique}")
    subscription = subscriber.subscription_path(emulators.project, f"events-{unique}")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(request={"name": subscription, "topic": topic,
                                            "enable_message_ordering": True})

    def pulled():
        response = subscriber.pull(subscription=subscription, max_messages=100, timeout=5)
        if response.received_messages:
            subscriber.acknowledge(subscription=subscription,
                                   ack_ids=[m.ack_id for m in response.received_messages])
        return [(m.message.attributes["operation"], m.message.attributes["eventType"],
                 m.message.attributes["state"], m.message.attributes.get("code"))
                for m in response.received_messages]

    yield f"events-{unique}", pulled
    subscriber.close()


@pytest.fixture
def stores(emulators, unique, events_topic):
    """(a store whose process dies before publishing, a live one), one collection."""
    topic, _ = events_topic
    client = firestore.Client(project=emulators.project)
    dying = FirestoreOperationStore(client, f"ops-{unique}", events=DiesBeforePublishing())
    live = FirestoreOperationStore(client, f"ops-{unique}",
                                   events=PubSubEventPublisher(emulators.project, topic))
    return dying, live


def test_a_finished_operation_is_announced_once_and_its_mark_cleared(stores, queued_in,
                                                                       events_topic):
    _, live = stores
    _, pulled = events_topic
    name = queued_in(live)
    assert OperationWorker(live, SETTINGS).run(name) == "succeeded"
    assert pulled() == [(name, "DONE", "SUCCEEDED", "0")]
    assert marked(live, name) == []


def test_a_worker_killed_between_commit_and_publish_still_yields_the_event_via_the_sweep(
        stores, queued_in, events_topic, emulators, unique):
    dying, live = stores
    _, pulled = events_topic
    name = queued_in(dying)
    claim = claim_as(dying, name, owner="w", now=model.utcnow(), lease_seconds=60)
    with pytest.raises(Killed):
        dying.finish(name, claim.lease, lambda _r: model.succeeded_changes(
            {"steps": 1}, now=model.utcnow(), retention=RETENTION))
    assert live.get(name)["done"]
    assert marked(live, name) == ["DONE"], "committed and marked in one transaction"
    assert pulled() == []

    sweep = RecoverySweep(live, PubSubJobPublisher(emulators.project, f"unused-{unique}"),
                          SETTINGS, clock=lambda: model.utcnow())
    assert sweep.run()["events"] == 0, "a fresh mark is left to the process that made it"
    later = model.utcnow() + PENDING_EVENTS_AGE + timedelta(seconds=5)
    sweep = RecoverySweep(live, PubSubJobPublisher(emulators.project, f"unused-{unique}"),
                          SETTINGS, clock=lambda: later)
    assert sweep.run()["events"] == 1
    assert pulled() == [(name, "DONE", "SUCCEEDED", "0")]
    assert marked(live, name) == []
    assert sweep.run()["events"] == 0, "published once"
    assert pulled() == []


def test_a_queued_cancel_marks_both_events_in_its_one_transaction(stores, queued_in,
                                                                   events_topic):
    dying, live = stores
    _, pulled = events_topic
    name = queued_in(dying)
    with pytest.raises(Killed):
        dying.cancel(name, principal="p", now=model.utcnow(), retention=RETENTION)
    assert marked(live, name) == ["CANCEL_REQUESTED", "DONE"]
    assert live.deliver_events(live.pending_events(FUTURE, 100)) == 2
    assert marked(live, name) == []
    assert pulled() == [(name, "CANCEL_REQUESTED", "CANCELLED", "1"),
                        (name, "DONE", "CANCELLED", "1")]


def test_a_failed_publish_fails_nothing_and_leaves_the_mark_for_the_sweep(emulators, unique,
                                                                          queued_in):
    store = FirestoreOperationStore(
        firestore.Client(project=emulators.project), f"ops-{unique}",
        events=PubSubEventPublisher(emulators.project, f"no-such-topic-{unique}",
                                    timeout_seconds=5))
    name = queued_in(store)
    result = store.cancel(name, principal="p", now=model.utcnow(), retention=RETENTION)
    assert result.value == "changed"
    assert store.get(name)["state"] == "CANCELLED"
    assert marked(store, name) == ["CANCEL_REQUESTED", "DONE"]


def test_without_an_events_topic_nothing_is_marked(emulators, unique, queued_in):
    store = FirestoreOperationStore(firestore.Client(project=emulators.project),
                                    f"ops-{unique}")
    name = queued_in(store)
    store.cancel(name, principal="p", now=model.utcnow(), retention=RETENTION)
    assert marked(store, name) == []


@pytest.fixture
def queued_in(unique):
    """``queued_in(store)`` writes a QUEUED one-step job; returns its name."""
    counter = iter(range(1_000_000))

    def make(store):
        name = f"projects/p-{unique}/locations/us/operations/op-{next(counter)}"
        store.create(model.new_job(name=name, parent=name.rsplit("/", 2)[0],
                                   target=name.replace("operations", "jobs"),
                                   kind="demo.countdown", params={"steps": 1, "stepSeconds": 0},
                                   created_by="test@example.com", now=model.utcnow()))
        return name

    return make
