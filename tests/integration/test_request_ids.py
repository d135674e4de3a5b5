"""Idempotent create (AIP-155) through the service, on the real Firestore and
Pub/Sub emulators: a repeated ``requestId`` returns the first operation and
writes and publishes nothing; the key is scoped to the caller and the parent."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from google.api_core import exceptions
from google.cloud import firestore

from lib import model
from lib.config import Settings
from lib.publisher import PubSubJobPublisher
from lib.service import OperationsService
from lib.store import REQUESTS_SUFFIX, request_key

JOB = {"kind": "demo.countdown", "params": {"steps": 1}}


@pytest.fixture
def service(store, emulators, jobs_topic):
    topic, _ = jobs_topic
    return OperationsService(store, PubSubJobPublisher(emulators.project, topic),
                             Settings(project=emulators.project))


@pytest.fixture
def published(jobs_topic):
    return jobs_topic[1]


def test_a_repeated_request_id_returns_the_first_operation_and_writes_nothing(
        service, store, published, unique):
    parent = f"projects/p-{unique}/locations/us"
    request_id = str(uuid.uuid4())
    first = service.create_job(parent, {**JOB, "requestId": request_id}, "alice@example.com")
    writes = store.counter.writes
    again = service.create_job(parent, {**JOB, "requestId": request_id.upper()},
                               "alice@example.com")
    assert again == first
    assert store.counter.writes == writes
    assert published() == [first["name"]]


def test_the_key_is_scoped_to_the_caller_and_the_parent(service, published, unique):
    parent = f"projects/p-{unique}/locations/us"
    request_id = str(uuid.uuid4())
    alice = service.create_job(parent, {**JOB, "requestId": request_id}, "alice@example.com")
    bob = service.create_job(parent, {**JOB, "requestId": request_id}, "bob@example.com")
    elsewhere = service.create_job(f"projects/p-{unique}/locations/eu",
                                   {**JOB, "requestId": request_id}, "alice@example.com")
    assert len({alice["name"], bob["name"], elsewhere["name"]}) == 3
    assert sorted(published()) == sorted([alice["name"], bob["name"], elsewhere["name"]])


def test_two_concurrent_first_calls_create_exactly_one_operation(service, store, published,
                                                                 unique):
    parent = f"projects/p-{unique}/locations/us"
    def race(request_id: str) -> list[object]:
        barrier = threading.Barrier(4)
        answers: list[object] = []

        def call() -> None:
            barrier.wait()
            try:
                answers.append(service.create_job(parent, {**JOB, "requestId": request_id},
                                                  "alice@example.com")["name"])
            except exceptions.GoogleAPICallError as exc:  # contention: the client retries
                answers.append(exc)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return answers

    for _ in range(3):
        answers = race(str(uuid.uuid4()))
        names = {a for a in answers if isinstance(a, str)}
        assert len(names) == 1, answers
        assert all(isinstance(a, str | exceptions.Aborted) for a in answers)
    listed = store.list_page(parent, matches=lambda r: True, equalities={}, bounds=[],
                             size=100, after=None, now=model.utcnow())
    assert len(listed.records) == 3
    assert len(published()) == 3


def test_the_key_is_kept_24_hours_for_the_ttl_policy(service, store, emulators, unique):
    parent = f"projects/p-{unique}/locations/us"
    request_id = str(uuid.uuid4())
    created = service.create_job(parent, {**JOB, "requestId": request_id}, "alice@example.com")
    client = firestore.Client(project=emulators.project)
    key = client.collection(f"ops-{unique}{REQUESTS_SUFFIX}").document(
        request_key("alice@example.com", parent, request_id.lower())).get().to_dict()
    assert key["operation"] == created["name"]
    assert key["expireTime"] - key["createTime"] == timedelta(hours=24)


def test_an_expired_key_or_a_deleted_operation_makes_the_request_new_again(
        store, emulators, jobs_topic, unique):
    topic, _ = jobs_topic
    now = [model.utcnow()]
    service = OperationsService(store, PubSubJobPublisher(emulators.project, topic),
                                Settings(project=emulators.project), clock=lambda: now[0])
    parent = f"projects/p-{unique}/locations/us"
    body = {**JOB, "requestId": str(uuid.uuid4())}
    first = service.create_job(parent, body, "alice@example.com")["name"]
    now[0] += timedelta(hours=24, seconds=1)
    second = service.create_job(parent, body, "alice@example.com")["name"]
    assert second != first
    service.delete_operation(second)
    third = service.create_job(parent, body, "alice@example.com")["name"]
    assert third not in (first, second)
    assert service.create_job(parent, body, "alice@example.com")["name"] == third


@pytest.mark.parametrize("request_id", ["abc", "", 5, "5f1b4c9e9b7a4d8e8f513c2a0c1d7e42",
                                        "{5f1b4c9e-9b7a-4d8e-8f51-3c2a0c1d7e42}",
                                        "urn:uuid:5f1b4c9e-9b7a-4d8e-8f51-3c2a0c1d7e42"],
                         ids=["a word", "empty", "a number", "no hyphens", "braces", "a URN"])
def test_a_request_id_that_is_not_a_uuid_is_400_and_writes_nothing(service, store,
                                                                   request_id):
    with pytest.raises(exceptions.InvalidArgument) as caught:
        service.create_job("projects/p/locations/us", {**JOB, "requestId": request_id}, "a")
    assert caught.value.reason == "INVALID_REQUEST_ID"
    assert store.counter.writes == 0
