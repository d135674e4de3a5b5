"""List, delete and wait through the service, on the real Firestore emulator."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from google.api_core import exceptions

from lib.core import model
from lib.core.config import Settings
from lib.core.publisher import PubSubJobPublisher
from lib.core.service import OperationsService
from tests.leases import claim_as

RETENTION = timedelta(days=30)


@pytest.fixture
def service(store, emulators):
    settings = Settings(project=emulators.project, wait_max_seconds=3,
                        page_token_secret="test-secret")
    # The publisher is never called here: these tests write operations directly.
    return OperationsService(store, PubSubJobPublisher(emulators.project, "unused"), settings)


@pytest.fixture
def seed(store, unique):
    """``seed(n, parent, done_every=0)``: n operations 1 ms apart, oldest first,
    written in batches; every ``done_every``-th one is finished as failed."""

    def make(n, parent=None, done_every=0):
        parent = parent or f"projects/p-{unique}/locations/us"
        client = store._client
        start = model.utcnow() - timedelta(hours=1)
        names = []
        for offset in range(0, n, 500):
            batch = client.batch()
            for i in range(offset, min(n, offset + 500)):
                name = f"{parent}/operations/op-{i:05d}"
                record = model.new_job(name=name, parent=parent, target=f"{parent}/jobs/{i}",
                                       kind="demo.countdown", params={"steps": 1},
                                       created_by="t", now=start + timedelta(milliseconds=i))
                if done_every and i % done_every == 0:
                    record.update(model.failed_changes(9, "x", now=record["createTime"],
                                                       retention=RETENTION))
                batch.create(store._ref(name), record)
                names.append(name)
            batch.commit()
        return parent, names

    return make


def walk(service, parent, **query):
    """Every page of a list; returns (names in order, number of pages)."""
    names, pages, token = [], 0, ""
    while True:
        page = service.list_operations(parent, {**query, **({"pageToken": token} if token else {})})
        pages += 1
        names += [op["name"] for op in page.get("operations", [])]
        token = page.get("nextPageToken", "")
        if not token:
            return names, pages


def test_pages_walk_every_operation_once_newest_first(service, seed):
    parent, names = seed(95)
    listed, pages = walk(service, parent, pageSize="20")
    assert listed == list(reversed(names))
    assert pages == 5


def test_a_filter_runs_across_pages_and_next_token_is_empty_only_at_the_end(service, seed):
    parent, names = seed(60, done_every=3)
    failed = [n for i, n in enumerate(names) if i % 3 == 0]
    listed, pages = walk(service, parent, pageSize="7", filter="done = true AND error.code = 9")
    assert listed == list(reversed(failed))
    assert pages == 3  # 20 matches in pages of 7: the last page holds 6 and no token
    running, _ = walk(service, parent, pageSize="1000", filter="NOT done = true")
    assert len(running) == 40


def test_a_page_size_of_zero_means_fifty_and_above_a_thousand_means_a_thousand(service, seed):
    parent, _ = seed(60)
    assert len(service.list_operations(parent, {"pageSize": "0"})["operations"]) == 50
    assert len(service.list_operations(parent, {})["operations"]) == 50
    assert len(service.list_operations(parent, {"pageSize": "100000"})["operations"]) == 60


@pytest.mark.parametrize("query", [{"pageSize": "-1"}, {"filter": "colour = red"},
                                   {"pageToken": "garbage"}],
                         ids=["a negative page size", "an unknown field", "a garbage token"])
def test_bad_list_requests_are_invalid_argument(service, seed, query):
    parent, _ = seed(1)
    with pytest.raises(exceptions.InvalidArgument):
        service.list_operations(parent, query)


def test_a_page_token_is_bound_to_its_parent_and_filter(service, seed, unique):
    parent, _ = seed(5)
    other, _ = seed(5, parent=f"projects/q-{unique}/locations/us")
    token = service.list_operations(parent, {"pageSize": "2", "filter": "done = false"})[
        "nextPageToken"]
    with pytest.raises(exceptions.InvalidArgument):
        service.list_operations(other, {"pageSize": "2", "filter": "done = false",
                                        "pageToken": token})
    with pytest.raises(exceptions.InvalidArgument):
        service.list_operations(parent, {"pageSize": "2", "pageToken": token})
    assert len(service.list_operations(parent, {"pageSize": "2", "filter": "done = false",
                                                "pageToken": token})["operations"]) == 2


def test_return_partial_success_is_not_implemented(service, seed):
    parent, _ = seed(1)
    with pytest.raises(exceptions.MethodNotImplemented):
        service.list_operations(parent, {"returnPartialSuccess": "true"})


def test_delete_removes_the_operation_and_a_second_delete_is_not_found(service, seed):
    _, [name] = seed(1)
    service.delete_operation(name)
    with pytest.raises(exceptions.NotFound):
        service.get_operation(name)
    with pytest.raises(exceptions.NotFound):
        service.delete_operation(name)


def test_an_expired_operation_is_not_found_before_ttl_deletes_it(service, store, unique):
    name = f"projects/{unique}/locations/l/operations/old"
    record = model.new_job(name=name, parent=f"projects/{unique}/locations/l", target="t",
                           kind="demo.countdown", params={}, created_by="t",
                           now=model.utcnow() - timedelta(days=2))
    record.update(model.succeeded_changes({}, now=model.utcnow() - timedelta(days=2),
                                          retention=timedelta(days=1)))
    store.create(record)
    with pytest.raises(exceptions.NotFound):
        service.get_operation(name)
    assert service.list_operations(f"projects/{unique}/locations/l", {}) == {}


def finish_later(store, name, after):
    def run():
        time.sleep(after)
        held = claim_as(store, name, owner="w", now=model.utcnow(), lease_seconds=60)
        store.finish(name, held.lease, lambda r: model.succeeded_changes(
            {"ok": True}, now=model.utcnow(), retention=RETENTION))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_wait_on_a_done_operation_returns_at_once(service, seed):
    _, [name] = seed(1, done_every=1)
    started = time.monotonic()
    assert service.wait_operation(name, {"timeout": "30s"})["done"] is True
    assert time.monotonic() - started < 1


def test_wait_returns_when_the_operation_finishes(service, store, seed):
    _, [name] = seed(1)
    thread = finish_later(store, name, after=0.5)
    started = time.monotonic()
    operation = service.wait_operation(name, {"timeout": "30s"})
    thread.join()
    assert operation["done"] is True and operation["response"]["value"] == {"ok": True}
    assert time.monotonic() - started < 2.5  # woken by the listener, not the 3 s cap


def test_wait_past_its_timeout_returns_the_latest_state(service, seed):
    _, [name] = seed(1)
    started = time.monotonic()
    operation = service.wait_operation(name, {"timeout": "0.3s"})
    assert "done" not in operation
    assert 0.25 < time.monotonic() - started < 2


def test_a_longer_wait_is_capped_at_the_configured_maximum(service, seed):
    _, [name] = seed(1)
    started = time.monotonic()
    service.wait_operation(name, {"timeout": "3600s"})
    assert 2.5 < time.monotonic() - started < 6  # WAIT_MAX_SECONDS is 3 here


def test_wait_on_an_operation_deleted_meanwhile_is_not_found(service, store, seed):
    _, [name] = seed(1)
    threading.Timer(0.3, lambda: service.delete_operation(name)).start()
    with pytest.raises(exceptions.NotFound):
        service.wait_operation(name, {"timeout": "10s"})


@pytest.mark.parametrize("body", [{"timeout": "soon"}, {"timeout": 5}, {"timeout": "-1s"},
                                  {"timeout": "1s", "colour": "red"}, {"name": "other"}],
                         ids=["not a duration", "a number", "negative", "an unknown field",
                              "another name"])
def test_a_bad_wait_body_is_invalid_argument(service, seed, body):
    _, [name] = seed(1)
    with pytest.raises(exceptions.InvalidArgument):
        service.wait_operation(name, body)


def test_wait_on_a_missing_operation_is_not_found(service, unique):
    with pytest.raises(exceptions.NotFound):
        service.wait_operation(f"projects/{unique}/locations/l/operations/none", {})


def test_list_reads_scale_with_the_page_not_with_the_offset(service, store, seed):
    parent, _ = seed(400)
    token, reads = "", []
    for _ in range(8):
        before = store.counter.reads
        page = service.list_operations(parent, {"pageSize": "50",
                                                **({"pageToken": token} if token else {})})
        reads.append(store.counter.reads - before)
        token = page.get("nextPageToken", "")
    assert reads[0] == reads[-2] == 51  # page 7 reads what page 1 reads


@pytest.mark.parametrize("filter_text", ["NOT done = false", "error.code = 5 OR error.code = 6",
                                         'metadata.kind != "demo.countdown"'],
                         ids=["NOT", "OR", "!="])
def test_a_filter_firestore_cannot_run_reads_at_most_the_scan_limit_per_call(
        store, seed, emulators, filter_text):
    """5,000 operations, a filter that matches none: each call reads at most
    LIST_SCAN_LIMIT documents (and stops sooner, on time) and answers a short
    (empty) page whose token continues the scan; walking the tokens ends,
    having read each document once."""
    settings = Settings(project=emulators.project, page_token_secret="test-secret",
                        list_scan_limit=1000)
    service = OperationsService(store, PubSubJobPublisher(emulators.project, "unused"), settings)
    parent, _ = seed(5000)
    token, calls, reads = "", 0, []
    while True:
        before = store.counter.reads
        page = service.list_operations(parent, {"filter": filter_text,
                                                **({"pageToken": token} if token else {})})
        reads.append(store.counter.reads - before)
        calls += 1
        assert page.get("operations", []) == []
        token = page.get("nextPageToken", "")
        if not token:
            break
        assert calls < 500, "the walk must end"
    assert max(reads) <= 1000
    assert sum(reads) <= 5000 + calls  # each document once (an empty last read counts 1)
    assert sum(reads) >= 5000


def test_a_short_page_from_the_scan_limit_still_walks_every_match_once(store, seed, emulators):
    settings = Settings(project=emulators.project, page_token_secret="test-secret",
                        list_scan_limit=100)
    service = OperationsService(store, PubSubJobPublisher(emulators.project, "unused"), settings)
    parent, names = seed(1000, done_every=250)  # 4 failed ones, far apart
    found, pages = walk(service, parent, filter="NOT done = false")
    assert found == [n for i, n in enumerate(names) if i % 250 == 0][::-1]
    assert pages >= 10
