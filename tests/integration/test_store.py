"""The store's transactions on the real Firestore emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lib.core import model
from lib.core.store import CancelResult, Lease
from tests.leases import claim_as

RETENTION = timedelta(days=30)


def cancel(store, name, who="alice@example.com"):
    return store.cancel(name, principal=who, now=model.utcnow(), retention=RETENTION)


def claim(store, name, owner="worker-a", lease_seconds=60.0, now=None):
    return claim_as(store, name, owner=owner, now=now, lease_seconds=lease_seconds)


def test_cancel_of_a_queued_operation_finishes_it_cancelled(store, queued):
    name = queued()
    assert cancel(store, name) is CancelResult.CHANGED
    record = store.get(name)
    assert record["done"] is True
    assert record["state"] == "CANCELLED"
    assert record["error"]["code"] == 1
    assert record["cancelRequestedBy"] == "alice@example.com"
    assert claim(store, name) is None, "a worker must never run a cancelled operation"


def test_cancel_of_a_running_operation_only_raises_the_flag(store, queued):
    name = queued()
    claim(store, name)
    assert cancel(store, name) is CancelResult.CHANGED
    record = store.get(name)
    assert record["done"] is False
    assert record["state"] == "RUNNING"
    assert record["cancelRequested"] is True


@pytest.mark.parametrize("state", ["running", "done"], ids=["while running", "once done"])
def test_a_second_cancel_writes_nothing(store, queued, state):
    name = queued()
    if state == "running":
        claim(store, name)
    cancel(store, name)
    before = store.get(name)
    writes = store.counter.writes
    assert cancel(store, name, who="bob@example.com") is CancelResult.UNCHANGED
    assert store.counter.writes == writes
    assert store.get(name) == before


def test_cancel_of_a_missing_operation_is_not_found(store, unique):
    assert cancel(store, f"projects/{unique}/locations/l/operations/none") is CancelResult.NOT_FOUND


def test_a_claim_takes_a_fenced_lease_and_a_duplicate_claim_gets_nothing(store, queued):
    name = queued()
    first = claim(store, name)
    assert first.lease.token == 1
    assert first.record["attempt"] == 1
    assert claim(store, name, owner="worker-b") is None


def test_an_expired_lease_is_taken_over_and_the_old_worker_can_write_nothing(store, queued):
    name = queued()
    old = claim(store, name, lease_seconds=0.001)
    new = claim(store, name, owner="worker-b", now=model.utcnow() + timedelta(seconds=1))
    assert new.lease.token == old.lease.token + 1
    assert new.record["attempt"] == 2

    def succeed(record):
        return model.succeeded_changes({"by": "old"}, now=model.utcnow(), retention=RETENTION)

    assert store.finish(name, old.lease, succeed) is False
    assert store.get(name)["done"] is False
    assert store.finish(name, new.lease, succeed) is True
    assert store.get(name)["response"] == {"by": "old"}


def test_a_done_operation_never_changes_again(store, queued):
    name = queued()
    held = claim(store, name)
    store.finish(name, held.lease,
                 lambda r: model.succeeded_changes({}, now=model.utcnow(), retention=RETENTION))
    done = store.get(name)
    assert cancel(store, name) is CancelResult.UNCHANGED
    assert store.finish(name, held.lease, lambda r: model.cancelled_changes(
        now=model.utcnow(), retention=RETENTION)) is False
    assert claim(store, name) is None
    assert store.get(name) == done


def test_progress_written_under_a_lost_lease_is_refused(store, queued):
    from lib.core.store import LeaseLost

    name = queued()
    held = claim(store, name)
    with pytest.raises(LeaseLost):
        store.update_running(name, Lease(held.lease.owner, held.lease.token + 7),
                             {"progressPercent": 50})
    assert store.get(name)["progressPercent"] == 0


def test_a_job_whose_publish_failed_is_discarded_unless_touched(store, queued):
    untouched, claimed = queued(), queued()
    claim(store, claimed)
    assert store.discard_unstarted(untouched) is None
    assert store.get(untouched) is None
    kept = store.discard_unstarted(claimed)
    assert kept is not None and kept["attempt"] == 1 and kept["state"] == "RUNNING"
    assert store.get(claimed) == kept
    assert store.discard_unstarted(untouched) is None  # already gone: still gone


def test_a_cancel_is_counted_one_read_and_one_write_plus_the_inbox_entry_when_running(
        store, queued):
    queued_name, running_name = queued(), queued()
    claim(store, running_name)
    for name, expected in ((queued_name, (1, 1)), (running_name, (1, 2))):
        reads, writes = store.counter.reads, store.counter.writes
        cancel(store, name)
        assert (store.counter.reads - reads, store.counter.writes - writes) == expected


def test_a_transaction_firestore_expired_is_run_again(store, queued, monkeypatch):
    """Firestore closes a transaction whose client stalled past the lock's idle
    timeout; the store runs the body again in a new one, so the caller sees the
    cancel succeed, not a 400 about a transaction it never saw."""
    name = queued()
    make_transaction, expired = store._client.transaction, []

    def first_one_expires(**options):
        transaction = make_transaction(**options)
        if not expired:
            begin = transaction._begin

            def begin_then_expire(retry_id=None):
                begin(retry_id=retry_id)
                expired.append(transaction._id)
                transaction._rollback()  # what Firestore does to it on expiry
                transaction._id = expired[0]

            transaction._begin = begin_then_expire
        return transaction

    monkeypatch.setattr(store._client, "transaction", first_one_expires)
    assert cancel(store, name) is CancelResult.CHANGED
    assert len(expired) == 1
    assert store.get(name)["error"]["code"] == 1
